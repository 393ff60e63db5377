"""`make dev`: the local stack kept serving, with the API URL, key, test identities and curl examples."""

from __future__ import annotations

import signal
import threading

from sandbox.stack.local import LocalStack, StackOptions


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack(StackOptions(api_port=3000, schedule_seconds=60)).start() as stack:
        from sandbox.providers import identities as people

        person = people.identity("match")
        print(f"API          {stack.api_url}")
        print(f"API key      {stack.api_key}")
        print(f"sandbox      {stack.sandbox.url if stack.sandbox else stack.options.provider_url}")
        print(f"emulated AWS {stack.aws_url}\n")
        print("test identities (sandbox, synthetic):")
        for ident in people.IDENTITIES:
            print(f"  {ident.scenario:<22} {ident.name:<10} {ident.id_number}  {ident.mobile}  {ident.summary}")
        print("\ncurl examples:")
        sandbox_url = stack.sandbox.url if stack.sandbox else stack.options.provider_url
        print(f"  IMG=$(curl -s {sandbox_url}/_sandbox/identities/match/selfie.jpg | base64 -w0)")
        print(
            f"  curl -s {stack.api_url}/v1/compare -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' "
            f"-d '{{\"name\": \"{person.name}\", \"id_number\": \"{person.id_number}\", \"image\": \"'$IMG'\", "
            f"\"consent\": {{\"granted\": true, \"text_version\": \"v1\"}}}}'"
        )
        print(
            f"  curl -s {stack.api_url}/v1/faceid/sessions -H 'x-api-key: {stack.api_key}' "
            f"-H 'content-type: application/json' -d '{{\"name\": \"{person.name}\", \"id_number\": "
            f"\"{person.id_number}\", \"consent\": {{\"granted\": true, \"text_version\": \"v1\"}}}}'"
        )
        print(f"  curl -s {stack.api_url}/v1/verifications/<verification_id> -H 'x-api-key: {stack.api_key}'")
        print("\nCtrl-C stops everything.")
        stop.wait()
    print("stopped")


if __name__ == "__main__":
    main()
