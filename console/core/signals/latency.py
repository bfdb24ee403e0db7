"""The gateway's feed of the ``latency_p95`` rule: each model's requests that shared their
upstream with other requests, against the same model's single-stream baseline.

A request is *single-stream* when no other gateway request to the same upstream ran at any
moment of it; otherwise it *shared*. Per (upstream, model, kind) the watch keeps the
end-to-end latencies (``meta.duration_ms``: the upstream call, queue wait excluded) of
the last ``BASELINE_KEPT`` single-stream requests and the last ``SHARED_KEPT`` shared
ones. Once it holds at least ``MIN_BASELINE`` and ``MIN_SHARED`` of them, a shared p95
above ``factor`` x the single-stream p95 is a breach, reported once until the p95 comes
back under. The local lane runs one job at a time, so its requests are single-stream
and never breach; the remote lane's concurrency is what this watches.

Pure bookkeeping, fed job events in the order the bus delivers them; the signals
extension turns a breach into a violation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from console.core.ladder.stats import percentile

BASELINE_KEPT = 50
SHARED_KEPT = 20
MIN_BASELINE = 5
MIN_SHARED = 10

Key = tuple[str, str, str]  # (upstream, model, kind)


@dataclass(frozen=True, slots=True)
class Breach:
    p95_ms: float
    baseline_ms: float
    job_ids: list[str]  # the shared requests slower than factor x baseline
    source: str


@dataclass(slots=True)
class _Series:
    baseline: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_KEPT))
    shared: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=SHARED_KEPT))
    breached: bool = False


class LatencyWatch:
    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._running: dict[str, str] = {}  # request job id -> upstream
        self._shared: set[str] = set()  # running requests that overlapped another
        self._series: dict[Key, _Series] = {}

    def started(self, job_id: str, upstream: str) -> None:
        """A request began (repeats, such as progress updates, are ignored)."""
        if job_id in self._running:
            return
        others = [j for j, u in self._running.items() if u == upstream]
        self._running[job_id] = upstream
        if others:
            self._shared.update(others)
            self._shared.add(job_id)

    def forget_running(self) -> None:
        """Events were lost (the subscriber lagged): start overlap tracking afresh."""
        self._running.clear()
        self._shared.clear()

    def ended(self, job_id: str, key: Key, latency_ms: float | None) -> Breach | None:
        """A request ended; ``latency_ms`` is None when it did not succeed (not counted)."""
        if self._running.pop(job_id, None) is None:
            return None  # never seen starting (the watch began mid-request)
        shared = job_id in self._shared
        self._shared.discard(job_id)
        if latency_ms is None:
            return None
        series = self._series.setdefault(key, _Series())
        if not shared:
            series.baseline.append(latency_ms)
            return None
        series.shared.append((latency_ms, job_id))
        if len(series.baseline) < MIN_BASELINE or len(series.shared) < MIN_SHARED:
            return None
        p95 = percentile([ms for ms, _ in series.shared], 95) or 0.0
        base = percentile(series.baseline, 95) or 0.0
        if p95 <= self.factor * base:
            series.breached = False
            return None
        if series.breached:
            return None
        series.breached = True
        upstream, model, kind = key
        slow = [j for ms, j in series.shared if ms > self.factor * base]
        return Breach(p95, base, slow,
                      f"gateway {kind} {model} on {upstream}: last {len(series.shared)} requests "
                      f"sharing the upstream vs {len(series.baseline)} alone")  # fmt: skip
