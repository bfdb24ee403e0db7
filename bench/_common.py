"""Small shared pieces for the benchmarks: timing stats and a throw-away data dir."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path


def temp_home(prefix: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=f"twolane-bench-{prefix}-"))
    os.environ["TWOLANE_HOME"] = str(home)
    os.environ.setdefault("TWOLANE_CONFIG", str(home / "config.toml"))
    return home


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def line(label: str, seconds: float, unit: str = "s") -> str:
    if unit == "ms":
        return f"{label:<44} {seconds * 1000:9.2f} ms"
    return f"{label:<44} {seconds:9.3f} s"
