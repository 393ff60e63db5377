"""`python -m sandbox.providers --port 8701`: run the provider sandbox in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from sandbox.providers.config import SandboxConfig
from sandbox.providers.identities import IDENTITIES, expected
from sandbox.providers.server import ProviderSandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.providers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8701, help="port (0 = any free port; default 8701)")
    parser.add_argument("--public-url", default=None, help="base of verify_url/img URLs (default: the listen URL)")
    parser.add_argument("--quiet", action="store_true", help="print only the URL")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    overrides = {"public_url": args.public_url} if args.public_url else {}
    sandbox = ProviderSandbox(args.host, args.port, SandboxConfig.from_env(**overrides), verbose=args.verbose).start()
    cfg = sandbox.config
    print(f"provider sandbox listening on {sandbox.url}", flush=True)
    if not args.quiet:
        print(f"  JUHE_BASE_URL={sandbox.url}  APETIME_BASE_URL={sandbox.url}")
        print(
            f"  juhe keys: verifyface={cfg.juhe_verifyface_key} four_factor={cfg.juhe_four_factor_key} "
            f"faceid={cfg.juhe_faceid_key} openid={cfg.juhe_openid}"
        )
        print(f"  apetime: app_key={cfg.apetime_app_key} app_secret={cfg.apetime_app_secret}")
        print(f"  control: {sandbox.url}/_sandbox/ (ledger, stats, faults, identities, reset)\n")
        columns = "verifyface / four_factor / apetime / faceid"
        print(f"  {'scenario':22} {'name':10} {'id_number':18}  {'mobile':11}  {columns}")
        for ident in IDENTITIES:
            e = expected(ident)
            print(
                f"  {ident.scenario:22} {ident.name:10} {ident.id_number}  {ident.mobile}  "
                f"{e['verifyface']} / {e['four_factor']} / {e['apetime']} / {e['faceid']}"
            )
        sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
