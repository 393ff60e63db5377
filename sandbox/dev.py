"""`make dev`: the local stack kept serving, with the API URL, key, test identities and curl examples.

`PORT` (default 3000) is the local API's port on 127.0.0.1 (`make dev PORT=3001`); a busy or invalid
port is one line on stderr and a non-zero exit, never a traceback. `ALLOWED_REDIRECT_HOSTS` replaces
the FaceID redirect hosts allowed locally (default `127.0.0.1,localhost`).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
from typing import Any

HOST = "127.0.0.1"
DEFAULT_PORT = 3000


def parse_port(raw: str) -> int:
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 65535:
        print(
            f"make dev: PORT must be a number from 1 to 65535, not {raw!r} (e.g. make dev PORT=3001)", file=sys.stderr
        )
        sys.exit(2)
    return int(raw)


def port_is_free(host: str, port: int) -> bool:
    """Whether the local API could bind the port (with SO_REUSEADDR, as http.server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def busy(port: int) -> None:
    print(
        f"make dev: port {port} on {HOST} is already in use (another make dev?); "
        f"stop that process or choose another port: make dev PORT={port + 1 if port < 65535 else 3001}",
        file=sys.stderr,
    )
    sys.exit(1)


def main() -> None:
    port = parse_port(os.environ.get("PORT") or str(DEFAULT_PORT))
    if not port_is_free(HOST, port):  # before the stack's few seconds of start-up
        busy(port)

    from sandbox.stack.local import LocalStack, StackOptions

    options = StackOptions(api_port=port, schedule_seconds=60)
    if os.environ.get("ALLOWED_REDIRECT_HOSTS"):
        options.allowed_redirect_hosts = os.environ["ALLOWED_REDIRECT_HOSTS"]
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack = LocalStack(options)
    try:
        stack.start()
    except OSError as error:
        stack.stop()  # whatever started before the API's bind failed
        if error.errno == errno.EADDRINUSE:  # taken between the check and the bind
            busy(port)
        raise
    except BaseException:
        stack.stop()
        raise
    with stack:
        from sandbox.providers import identities as people

        person = people.identity("match")
        print(f"API            {stack.api_url}")
        print(f"API key        {stack.api_key}")
        print(f"sandbox        {stack.sandbox.url if stack.sandbox else stack.options.provider_url}")
        print(f"emulated AWS   {stack.aws_url}")
        print(
            f"redirect hosts {stack.options.allowed_redirect_hosts} "
            "(FaceID redirect_url hosts allowed; ALLOWED_REDIRECT_HOSTS=... make dev to change)\n"
        )
        print("test identities (sandbox, synthetic):")
        for ident in people.IDENTITIES:
            print(f"  {ident.scenario:<22} {ident.name:<10} {ident.id_number}  {ident.mobile}  {ident.summary}")
        print("\ncurl examples:")
        sandbox_url = stack.sandbox.url if stack.sandbox else stack.options.provider_url
        print(f"  IMG=$(curl -s {sandbox_url}/_sandbox/identities/match/selfie.jpg | base64 -w0)")
        print(
            f"  curl -s {stack.api_url}/v1/compare -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' "
            f'-d \'{{"name": "{person.name}", "id_number": "{person.id_number}", "image": "\'$IMG\'", '
            f'"consent": {{"granted": true, "text_version": "v1"}}}}\''
        )
        print(
            f"  curl -s {stack.api_url}/v1/faceid/sessions -H 'x-api-key: {stack.api_key}' "
            f'-H \'content-type: application/json\' -d \'{{"name": "{person.name}", "id_number": '
            f'"{person.id_number}", "consent": {{"granted": true, "text_version": "v1"}}}}\''
        )
        print(f"  curl -s {stack.api_url}/v1/verifications/<verification_id> -H 'x-api-key: {stack.api_key}'")
        print(f"  curl -s '{stack.api_url}/v1/usage' -H 'x-api-key: {stack.api_key}'   # today's usage and spend")
        env = stack.env
        print(
            f"\nmoney controls   SUBJECT_DAILY_LIMIT={env.get('SUBJECT_DAILY_LIMIT')} "
            f"DEDUPE_WINDOW_SECONDS={env.get('DEDUPE_WINDOW_SECONDS')} "
            f"DAILY_SPEND_LIMIT={env.get('DAILY_SPEND_LIMIT') or '(no cap)'} (template defaults)"
        )
        print("\nCtrl-C stops everything (and prints today's usage).")
        stop.wait()
        print_usage(stack)
    print("stopped")


def print_usage(stack: Any) -> None:
    """Today's usage (GET /v1/usage), one line per check and provider, then the totals."""
    import requests

    try:
        report = requests.get(f"{stack.api_url}/v1/usage", headers={"x-api-key": stack.api_key}, timeout=10).json()
    except (requests.RequestException, ValueError):
        return
    print("\ntoday's usage (UTC+8):")
    for row in [*report.get("days", []), {"check": "total", "provider": "", **report.get("totals", {})}]:
        print(
            f"  {row['check']:<12} {row['provider']:<8} calls={row['provider_calls']} charged={row['charged_calls']}"
            f" unknown={row['unknown_charge_calls']} spend={row['spend']} CNY decisions={row['decisions']}"
        )


if __name__ == "__main__":
    main()
