"""`python -m sandbox.providers.people`: the sandbox's test identities and their pictures on the command line.

python -m sandbox.providers.people list
python -m sandbox.providers.people selfie [SCENARIO] [--variant N]   # base64 JPEG on stdout
python -m sandbox.providers.people scenario-selfie face_mismatch     # the picture for that outcome
python -m sandbox.providers.people other --seed 3 --raw > other.jpg  # raw JPEG bytes
"""

from __future__ import annotations

import argparse
import base64
import json
import sys

from sandbox.providers import identities as registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.providers.people",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "what", choices=["list", "selfie", "scenario-selfie", "reference", "lookalike", "other", "no-face"]
    )
    parser.add_argument("scenario", nargs="?", default="match")
    parser.add_argument("--variant", type=int, default=0, help="selfie: which photo of the person")
    parser.add_argument("--seed", type=int, default=0, help="other: which stranger")
    parser.add_argument("--kind", default="landscape", help="no-face: landscape, gradient, noise or text")
    parser.add_argument("--raw", action="store_true", help="write JPEG bytes instead of base64")
    args = parser.parse_args(argv)
    if args.what == "list":
        json.dump(registry.registry_summary(), sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    try:
        data = {
            "selfie": lambda: registry.selfie_jpeg(registry.identity(args.scenario), args.variant),
            "scenario-selfie": lambda: registry.scenario_selfie_jpeg(args.scenario),
            "reference": lambda: registry.reference_jpeg(args.scenario),
            "lookalike": lambda: registry.lookalike_jpeg(registry.identity(args.scenario)),
            "other": lambda: registry.other_person_jpeg(args.seed),
            "no-face": lambda: registry.no_face_jpeg(args.kind),
        }[args.what]()
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if data is None:
        print(f"{args.scenario} has no registry photo", file=sys.stderr)
        return 1
    if args.raw:
        sys.stdout.buffer.write(data)
    else:
        print(base64.b64encode(data).decode("ascii"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
