"""`make bench`: performance figures of the gateway, each measured side by side with its baseline.

Run `python -m bench.run` (see `bench/run.py` and `docs/performance.md`).
"""
