"""Rules: what broke which rule, when. ``Rules.observe`` is fed every sample with the jobs
running at that moment and returns the violations that sample completes; the signals
extension records them through ``scheduler.record_violation`` (persisted, published,
listed by ``twolane violations``). Time comes from the samples, so tests drive it.

Rules (names as stored):
- ``lanes_cross_mixed``: a heavy local process ran while remote jobs ran (a twolane local
  job when the policy forbids mixing, or a heavy process started outside twolane).
- ``gate_forced``: a local job started with ``--force``, skipping the gates.
- ``swap_high``: swap above ``gates.max_swap_gb`` for more than ``rules.swap_high_seconds``.
- ``swap_growth``: swap grew by more than ``rules.swap_growth_gb`` during a local job.
- ``load_high``: load per core above ``gates.max_load_per_core`` for more than
  ``rules.load_high_seconds``.
- ``heavy_process``: a heavy process running outside the console.
- ``latency_p95``: p95 latency above ``rules.latency_factor`` x the single-stream baseline
  (the gateway's requests through ``signals.latency``; anyone through
  ``POST /signals/latency``; the ladder records its own ``ladder.p95_ratio``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from console.core.models import Job, Lane, Severity, Violation
from console.core.signals.gates import GB, GateResult, Thresholds, from_section, heavy_processes


@dataclass(slots=True)
class RuleLimits:
    swap_high_seconds: float = 30.0
    load_high_seconds: float = 60.0
    swap_growth_gb: float = 1.0
    latency_factor: float = 3.0

    @classmethod
    def from_config(cls, cfg: Any) -> RuleLimits:
        return from_section(cls, cfg, "rules")  # type: ignore[no-any-return]


class _Sustained:
    """A condition that must hold for a while before it counts; fires once per episode."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.fired = False

    def update(self, active: bool, at: float, hold: float) -> bool:
        if not active:
            self.since, self.fired = None, False
            return False
        if self.since is None:
            self.since = at
        if not self.fired and at - self.since > hold:
            self.fired = True
            return True
        return False


class Rules:
    def __init__(self, thresholds: Thresholds, limits: RuleLimits | None = None) -> None:
        self.th = thresholds
        self.limits = limits or RuleLimits()
        self._swap_high = _Sustained()
        self._load_high = _Sustained()
        self._job_swap: dict[str, int] = {}  # local job id -> swap used when first seen running
        self._swap_fired: set[str] = set()
        self._heavy_seen: set[tuple[int, str]] = set()
        self._mixed_seen: set[Any] = set()

    def observe(self, sample: dict[str, Any], running: list[Job], cross_mix: bool = False) -> list[Violation]:
        """The violations this sample completes, given the jobs running at the time."""
        at = sample["at"]
        out: list[Violation] = []
        th, lim = self.th, self.limits
        swap = sample["swap_used"]
        if self._swap_high.update(swap > th.max_swap_gb * GB, at, lim.swap_high_seconds):
            out.append(Violation(
                rule="swap_high", severity=Severity.WARNING, at=at,
                message=f"swap {swap / GB:.2f} GB above {th.max_swap_gb} GB for over {lim.swap_high_seconds:.0f} s",
                reading=round(swap / GB, 3), threshold=th.max_swap_gb,
                job_ids=[j.id for j in running],
            ))  # fmt: skip
        per_core = sample["load1"] / max(1, sample["cores"])
        if self._load_high.update(per_core > th.max_load_per_core, at, lim.load_high_seconds):
            out.append(Violation(
                rule="load_high", severity=Severity.WARNING, at=at,
                message=f"load {per_core:.2f} per core above {th.max_load_per_core} for over {lim.load_high_seconds:.0f} s",
                reading=round(per_core, 3), threshold=th.max_load_per_core,
                job_ids=[j.id for j in running],
            ))  # fmt: skip
        out += self._swap_growth(sample, running)
        out += self._heavy(sample, running, cross_mix)
        return out

    def _swap_growth(self, sample: dict[str, Any], running: list[Job]) -> list[Violation]:
        out = []
        local = [j for j in running if j.lane is Lane.LOCAL]
        ids = {j.id for j in local}
        for gone in set(self._job_swap) - ids:
            del self._job_swap[gone]
            self._swap_fired.discard(gone)
        limit = self.limits.swap_growth_gb * GB
        for job in local:
            base = self._job_swap.setdefault(job.id, sample["swap_used"])
            grew = sample["swap_used"] - base
            if grew > limit and job.id not in self._swap_fired:
                self._swap_fired.add(job.id)
                out.append(Violation(
                    rule="swap_growth", severity=Severity.WARNING, at=sample["at"],
                    message=f"swap grew {grew / GB:.2f} GB during job {job.id} ({job.name}) > {self.limits.swap_growth_gb} GB",
                    reading=round(grew / GB, 3), threshold=self.limits.swap_growth_gb, job_ids=[job.id],
                ))  # fmt: skip
        return out

    def _heavy(self, sample: dict[str, Any], running: list[Job], cross_mix: bool) -> list[Violation]:
        out = []
        at = sample["at"]
        pgids = [j.pid for j in running if j.pid]
        heavy = heavy_processes(sample.get("heavy", []), self.th, sample["mem_total"], pgids)
        keys = {(h["pid"], h["name"]) for h in heavy}
        for h in heavy:
            if (h["pid"], h["name"]) not in self._heavy_seen:
                out.append(Violation(
                    rule="heavy_process", severity=Severity.WARNING, at=at,
                    message=f"heavy process outside twolane: {h['cmdline'][:80] or h['name']} (pid {h['pid']}, {h['why']})",
                    reading=round(h["rss"] / GB, 3), threshold=None,
                ))  # fmt: skip
        self._heavy_seen = keys
        remote = [j for j in running if j.lane is Lane.REMOTE]
        if not remote:
            self._mixed_seen.clear()
            return out
        remote_ids = [j.id for j in remote]
        for h in heavy:
            key = ("pid", h["pid"])
            if key not in self._mixed_seen:
                self._mixed_seen.add(key)
                out.append(Violation(
                    rule="lanes_cross_mixed", severity=Severity.CRITICAL, at=at,
                    message=f"{h['cmdline'][:80] or h['name']} (pid {h['pid']}, outside twolane) ran while {len(remote)} remote job(s) ran",
                    reading=round(h["rss"] / GB, 3), job_ids=remote_ids,
                ))  # fmt: skip
        if not cross_mix:
            for job in running:
                key = ("job", job.id)
                if job.lane is Lane.LOCAL and key not in self._mixed_seen:
                    self._mixed_seen.add(key)
                    out.append(Violation(
                        rule="lanes_cross_mixed", severity=Severity.CRITICAL, at=at,
                        message=f"local job {job.id} ({job.name}) ran while {len(remote)} remote job(s) ran",
                        job_ids=[job.id, *remote_ids],
                    ))  # fmt: skip
        return out


def gate_forced(job: Job, results: list[GateResult], at: float) -> Violation:
    """The record of a local job that started with ``--force``: which gates it skipped."""
    failing = [r for r in results if not r.ok]
    if failing:
        detail = "skipped failing gates: " + "; ".join(r.message for r in failing)
    else:
        detail = "the gates would have passed"
    first = failing[0] if failing else None
    return Violation(
        rule="gate_forced", severity=Severity.WARNING if failing else Severity.INFO, at=at,
        message=f"job {job.id} ({job.name}) started with --force; {detail}",
        reading=first.reading if first and isinstance(first.reading, int | float) else None,
        threshold=first.threshold if first and isinstance(first.threshold, int | float) else None,
        job_ids=[job.id],
    )  # fmt: skip


def latency(p95_ms: float, baseline_ms: float, factor: float, job_ids: list[str], at: float,
            source: str = "") -> Violation | None:
    """A ``latency_p95`` violation when p95 exceeds ``factor`` x the single-stream baseline."""
    if not (math.isfinite(p95_ms) and math.isfinite(baseline_ms)) or baseline_ms <= 0:
        return None  # no measurement to compare (a NaN would compare as "slow")
    if p95_ms <= factor * baseline_ms:
        return None
    where = f" ({source})" if source else ""
    return Violation(
        rule="latency_p95", severity=Severity.WARNING, at=at,
        message=f"p95 latency {p95_ms:.0f} ms > {factor:g} x single-stream baseline {baseline_ms:.0f} ms{where}",
        reading=round(p95_ms / baseline_ms, 3), threshold=factor, job_ids=list(job_ids),
    )  # fmt: skip
