"""Per-request records and the per-step summary maths (percentiles, rates)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    """One measured request. Times are seconds; ``start`` is wall-clock (epoch)."""

    step: int
    concurrency: int
    seq: int
    worker: int
    start: float
    e2e: float = 0.0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int = 0
    status: int = 0
    error: str = ""
    response_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks
    (numpy's default), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _pcts(prefix: str, values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    return {f"{prefix}_p{q}": percentile(values, q) for q in qs}


def summarise_step(step: int, concurrency: int, records: Sequence[RequestRecord], wall: float) -> dict[str, Any]:
    """One row of ``steps.csv``: latency percentiles over successful requests, throughput
    over the step's wall time, and the error rate over every request sent."""
    ok = [r for r in records if r.ok]
    total = len(records)
    tokens_out = sum(r.tokens_out for r in ok)
    tokens_in = [r.tokens_in for r in ok if r.tokens_in is not None]
    itl = [gap for r in ok for gap in r.itl]
    row: dict[str, Any] = {
        "step": step,
        "concurrency": concurrency,
        "requests": total,
        "ok": len(ok),
        "errors": total - len(ok),
        "error_rate": (total - len(ok)) / total if total else 0.0,
        "wall_s": wall,
        **_pcts("ttft", [r.ttft for r in ok if r.ttft is not None]),
        **_pcts("e2e", [r.e2e for r in ok]),
        **_pcts("itl", itl, (50, 95)),
        "tokens_in": sum(tokens_in) if tokens_in else None,
        "tokens_out": tokens_out,
        "tokens_per_s": tokens_out / wall if wall > 0 else None,
        "requests_per_s": len(ok) / wall if wall > 0 else None,
    }
    return row
