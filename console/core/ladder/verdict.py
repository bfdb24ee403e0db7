"""The knee: which SLO a step broke, and the final verdict per SLO. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from console.core.ladder.plan import Slo

GB = 1024.0**3


@dataclass(frozen=True, slots=True)
class Breach:
    """A step broke an SLO: ``reading`` against ``threshold`` (same units)."""

    rule: str
    reading: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def p95_ratio(row: dict[str, Any], baseline: dict[str, Any] | None) -> float | None:
    """This step's p95 end-to-end over the baseline step's (None if either is missing)."""
    if baseline is None:
        return None
    base, now = baseline.get("e2e_p95"), row.get("e2e_p95")
    if not base or now is None:
        return None
    return float(now) / float(base)


def breaches(row: dict[str, Any], baseline: dict[str, Any] | None, slo: Slo,
             swap_growth_bytes: float | None) -> list[Breach]:
    """Every SLO this step broke, worst first in the order the report explains them.

    ``baseline`` is the first step's row (None while measuring the first step itself);
    ``swap_growth_bytes`` is how much swap grew since the ladder started (None when the
    server is not on this machine, so swap says nothing about it).
    """
    found: list[Breach] = []
    c = row["concurrency"]
    if row["requests"] and row["error_rate"] > slo.error_rate:
        found.append(Breach(
            "error_rate", row["error_rate"], slo.error_rate,
            f"{row['errors']}/{row['requests']} requests failed at concurrency {c} "
            f"({row['error_rate']:.1%} > {slo.error_rate:.1%})",
        ))  # fmt: skip
    ratio = p95_ratio(row, baseline)
    if ratio is not None and ratio > slo.p95_ratio:
        found.append(Breach(
            "p95_ratio", ratio, slo.p95_ratio,
            f"p95 end-to-end {row['e2e_p95']:.3f}s at concurrency {c} is {ratio:.2f}x the "
            f"baseline {baseline['e2e_p95']:.3f}s (limit {slo.p95_ratio:g}x)",  # type: ignore[index]
        ))  # fmt: skip
    if swap_growth_bytes is not None and swap_growth_bytes / GB > slo.swap_gb:
        found.append(Breach(
            "swap_gb", swap_growth_bytes / GB, slo.swap_gb,
            f"swap grew {swap_growth_bytes / GB:.2f} GB by concurrency {c} (limit {slo.swap_gb:g} GB)",
        ))  # fmt: skip
    return found


def step_breaches(rows: Sequence[dict[str, Any]], slo: Slo) -> list[list[Breach]]:
    """Per step, the SLOs it broke: the same check the ladder makes after each step
    (against the first step's p95, and swap growth since the start)."""
    baseline = rows[0] if rows else None
    out = []
    for index, row in enumerate(rows):
        growth = row.get("swap_growth_mb")
        out.append(breaches(row, baseline if index else None, slo,
                            None if growth is None else growth * 1024.0 * 1024.0))  # fmt: skip
    return out


def slo_verdicts(rows: Sequence[dict[str, Any]], slo: Slo, knee: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per SLO: the limit, the worst reading over the steps run, and pass/fail/n/a."""
    baseline = rows[0] if rows else None
    ratios = [r for r in (p95_ratio(row, baseline) for row in rows) if r is not None]
    errors = [row["error_rate"] for row in rows if row["requests"]]
    swaps = [row["swap_growth_mb"] / 1024.0 for row in rows if row.get("swap_growth_mb") is not None]
    broken = {b["rule"] for b in (knee or {}).get("breaches", [])}

    def verdict(rule: str, worst: float | None, limit: float, unit: str) -> dict[str, Any]:
        state = "n/a" if worst is None else ("fail" if rule in broken or worst > limit else "pass")
        return {"rule": rule, "threshold": limit, "worst": worst, "unit": unit, "verdict": state}

    return [
        verdict("p95_ratio", max(ratios) if ratios else None, slo.p95_ratio, "x baseline"),
        verdict("error_rate", max(errors) if errors else None, slo.error_rate, "fraction"),
        verdict("swap_gb", max(swaps) if swaps else None, slo.swap_gb, "GB"),
    ]
