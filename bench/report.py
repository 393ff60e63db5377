"""The table `make bench` prints, from the results dictionary."""

from __future__ import annotations

from typing import Any


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for name in ("coldstart", "warm", "images", "uploads", "connections"):
        if isinstance(results.get(name), dict) and "error" in results[name]:
            rows.append((name, "FAILED", "", "", results[name]["error"][:100]))
            results = {k: v for k, v in results.items() if k != name}
    cold = results.get("coldstart")
    if cold:
        for name, f in cold["functions"].items():
            floor = f" floor {f['floor_ratio']}x" if "floor_ratio" in f else ""
            rows.append(
                (
                    f"1 cold start {name}",
                    f"{f['cold_ms']} ms (import {f['import_ms']} + 1st call {f['first_invoke_ms']})",
                    f"{f['baseline_cold_ms']} ms",
                    f"{f['ratio']}x (import {f['import_ratio']}x,{floor})",
                    f"<=1.3x: {_mark(f['met'])}",
                )
            )
            if "same_work_ratio" in f:
                rows.append(
                    (
                        f"  same-work baseline {name}",
                        f"{f['cold_ms']} ms",
                        f"{f['same_work_cold_ms']} ms (hand-written check)",
                        f"{f['same_work_ratio']}x",
                        f"<=1.3x: {_mark(f['same_work_met'])}",
                    )
                )
            if f.get("other_revision"):
                o = f["other_revision"]
                rows.append(
                    (
                        f"  (other revision) {name}",
                        f"{o['cold_ms']} ms (import {o['import_ms']} + 1st call {o['first_invoke_ms']})",
                        f"{f['baseline_cold_ms']} ms",
                        f"{o['ratio']}x",
                        o["root"],
                    )
                )
        for name, error in cold.get("errors", {}).items():
            rows.append((f"1 cold start {name}", "error", "", "", error.splitlines()[-1][:80] if error else ""))
    warm = results.get("warm")
    if warm:
        for label, key in (("with image prep", "with_image_prep"), ("w/o image prep", "without_image_prep")):
            v = warm["overhead_ms"][key]
            d = warm["direct_overhead_ms"][key]
            rows.append(
                (
                    f"2 warm overhead {label}",
                    f"handler p50 {warm['handler_ms']['p50']} ms;"
                    f" diff p50 {v['total']['p50']}, p99 {v['total']['p99']}",
                    f"requests.post p50 {warm['baseline_ms']['p50']} ms",
                    f"excl. AWS p50 {v['excluding_aws']['p50']}, p99 {v['excluding_aws']['p99']} ms"
                    f" (direct {d['p50']}/{d['p99']})",
                    f"<=3 ms: {_mark(v['excluding_aws']['p50'] <= 3)}"
                    if key == "without_image_prep"
                    else f"(prep p50 {warm['image_prep_ms']['p50']} ms, AWS p50 {warm['aws_ms']['p50']} ms)",
                )
            )
        keyed = warm.get("keyed")
        if keyed:
            budget = warm["round_trip_budget"]
            rows.append(
                (
                    "2 AWS round trips per warm check",
                    f"without key {warm['aws_calls_per_request']}, with key {keyed['aws_calls_per_request']}",
                    "before: 2 without, 4 with",
                    f"keyed direct p50 {keyed['direct_overhead_ms']['p50']} ms",
                    f"<= {budget['without_key']} / {budget['with_key']}: {_mark(warm['round_trips_met'])}",
                )
            )
    images = results.get("images")
    if images:
        t = images["targets"]
        rows.append(
            (
                "3 image pipeline (12 MP, 4 MB)",
                f"prepare_image p50 {images['prepare_image_ms']['p50']} ms, "
                f"+{images['memory']['prepare_image']['rss_peak_delta_mb']} MB, "
                f"{images['output']['prepare_image']['bytes']} B",
                f"naive p50 {images['naive_ms']['p50']} ms, +{images['memory']['naive']['rss_peak_delta_mb']} MB, "
                f"{images['output']['naive']['bytes']} B",
                f"{images['speedup']}x faster (decode alone at 1/4: {images['decode_only_ms']['1/4']} ms)",
                f">=3x: {_mark(t['speedup_ge_3x'])}; <=60 ms: {_mark(t['p50_le_60ms'])}; "
                f"16-20 KB: {_mark(t['output_in_window'])}",
            )
        )
        hostile = images.get("hostile_battery")
        if hostile:
            rows.append(
                (
                    f"3 hostile images ({len(hostile['items'])}), peak RSS",
                    f"max {hostile['max_peak_rss_mb']} MB ({hostile['worst']})",
                    "",
                    f"untyped errors: {len(hostile['untyped_errors'])}",
                    f"<={hostile['limit_mb']} MB: {_mark(t.get('hostile_peak_rss_le_256mb', False))}",
                )
            )
    up = results.get("uploads")
    if up:
        rows.append(
            (
                f"4 upload throughput ({up['count']})",
                f"{up['completed']} completed in {up['seconds']} s ({up['rate_per_s']}/s)",
                f"direct provider calls {up['baseline_rate_per_s']}/s",
                f"ledger {up['ledger_charges']} charges, {up['double_charges']} double"
                + (f", {up['upload_failures']} uploads failed" if up.get("upload_failures") else ""),
                f"all done, 0 double: {_mark(up['met'])}",
            )
        )
    conn = results.get("connections")
    if conn:
        rows.append(
            (
                "5 connection reuse",
                f"{conn['gateway_new_connections']} TCP connection for {conn['calls']} calls",
                f"requests.post: {conn['baseline_new_connections']}",
                "",
                f"one connection: {_mark(conn['met'])}",
            )
        )
    return rows


def table(results: dict[str, Any]) -> str:
    header = ("benchmark", "gateway", "baseline", "ratio / difference", "target")
    rows = [header, *_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The summary and the cold-start details as Markdown tables (for docs/performance.md)."""
    out = ["| benchmark | gateway | baseline | ratio / difference | target |", "|---|---|---|---|---|"]
    for row in _rows(results):
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    cold = results.get("coldstart")
    if isinstance(cold, dict) and cold.get("functions"):
        out += [
            "",
            "| function | import | 1st call | cold | baseline | ratio | before (ratio) | inherent 1st-call"
            " work | floor ratio | own cost over floor |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, f in cold["functions"].items():
            before = f.get("other_revision")
            out.append(
                f"| {name} | {f['import_ms']} | {f['first_invoke_ms']} | {f['cold_ms']} | {f['baseline_cold_ms']}"
                f" | {f['ratio']}x | {before['cold_ms'] if before else '-'}"
                f" ({before['ratio'] if before else '-'}x) | {f.get('inherent_first_call_ms', '-')}"
                f" | {f.get('floor_ratio', '-')}x | {f.get('own_ms', '-')} |"
            )
        out += [
            "",
            "| function | imported at start-up (top packages, ms self) | imported by the first call |",
            "|---|---|---|",
        ]
        for name, it in cold.get("importtime", {}).items():
            top = ", ".join(f"{p} {ms}" for p, ms in it["start_up"]["top_packages_ms"][:6])
            if name == "baseline":
                out.append(f"| baseline | {top} | - |")
                continue
            later = ", ".join(it.get("roots_at_invoke", []))
            out.append(f"| {name} | {top} | {later} |")
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys

    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"
    with open(path, encoding="utf-8") as fh:
        print(markdown(json.load(fh)))
