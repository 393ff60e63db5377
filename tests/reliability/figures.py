"""The figures the reliability suites end in: each suite records what it ran and counted here, and
the session prints them at the end (`pytest_terminal_summary` in this package's conftest).

Set RELIABILITY_FIGURES=path to also write them as JSON (docs/reliability.md quotes such a run).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()


def record(suite: str, **values: Any) -> None:
    """Set figures of a suite (later values replace earlier ones of the same name)."""
    with _LOCK:
        FIGURES.setdefault(suite, {}).update(values)


def add(suite: str, name: str, amount: int = 1) -> None:
    """Add to a counting figure of a suite."""
    with _LOCK:
        figures = FIGURES.setdefault(suite, {})
        figures[name] = figures.get(name, 0) + amount


def render() -> list[str]:
    lines = []
    for suite in sorted(FIGURES):
        values = ", ".join(f"{k}={_show(v)}" for k, v in FIGURES[suite].items())
        lines.append(f"{suite}: {values}")
    return lines


def write(path: str | None = None) -> None:
    path = path or os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(FIGURES, out, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            out.write("\n")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple, set)):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)
