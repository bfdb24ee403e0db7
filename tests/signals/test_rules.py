"""The rules engine: violations from samples over (sample) time, with fake readings."""

from __future__ import annotations

from typing import Any

from console.core import rules
from console.core.models import Job, JobSpec, Lane, Severity
from console.core.rules import RuleLimits, Rules
from console.core.signals.gates import GB, GateResult, Thresholds
from console.core.signals.sources import GIB, fake_reading


def sample(at: float, **fields: Any) -> dict[str, Any]:
    return {"at": at, "heavy": [], **fake_reading(**fields)}


def job(id: str, lane: Lane = Lane.LOCAL, pid: int | None = None) -> Job:
    return Job(id=id, name=f"job {id}", lane=lane, kind="shell", spec=JobSpec(argv=["x"]), pid=pid)


def run(engine: Rules, samples: list[dict[str, Any]], running: list[Job] | None = None,
        cross_mix: bool = False) -> list[Any]:  # fmt: skip
    out = []
    for s in samples:
        out += engine.observe(s, running or [], cross_mix)
    return out


def test_swap_high_only_after_thirty_seconds_and_once() -> None:
    engine = Rules(Thresholds(max_swap_gb=2.0))
    high = int(2.5 * GB)
    assert run(engine, [sample(t, swap_used=high) for t in range(0, 31)]) == []  # exactly 30 s
    [v] = run(engine, [sample(t, swap_used=high) for t in range(31, 90)])
    assert v.rule == "swap_high" and v.reading == 2.5 and v.threshold == 2.0
    assert "above 2.0 GB for over 30 s" in v.message
    # It dropped, then came back: a new episode is a new violation.
    run(engine, [sample(90, swap_used=0)])
    assert [v.rule for v in run(engine, [sample(t, swap_used=high) for t in range(91, 130)])] == ["swap_high"]


def test_load_high_after_a_minute() -> None:
    engine = Rules(Thresholds(max_load_per_core=1.0))
    busy = [sample(t, load1=12.0, cores=8) for t in range(0, 61)]
    assert run(engine, busy) == []
    [v] = run(engine, [sample(61.5, load1=12.0, cores=8)], [job("a")])
    assert v.rule == "load_high" and v.reading == 1.5 and v.job_ids == ["a"]


def test_custom_limits() -> None:
    engine = Rules(Thresholds(), RuleLimits(swap_high_seconds=5))
    assert [v.rule for v in run(engine, [sample(t, swap_used=3 * GIB) for t in range(7)])] == ["swap_high"]


def test_swap_growth_during_a_local_job() -> None:
    engine = Rules(Thresholds(max_swap_gb=100))
    a = job("a")
    run(engine, [sample(0, swap_used=int(0.5 * GB))], [a])
    assert run(engine, [sample(1, swap_used=int(1.4 * GB))], [a]) == []
    [v] = run(engine, [sample(2, swap_used=int(1.6 * GB))], [a])
    assert v.rule == "swap_growth" and v.job_ids == ["a"] and v.reading == 1.1
    assert run(engine, [sample(3, swap_used=int(3 * GB))], [a]) == []  # once per job
    # Remote jobs do not use this machine's memory: no swap rule for them.
    assert run(engine, [sample(t, swap_used=t * GIB) for t in range(5)], [job("r", Lane.REMOTE)]) == []


def heavy(pid: int, argv: list[str]) -> dict[str, Any]:
    return {"pid": pid, "pgid": pid, "name": argv[0], "cmdline": " ".join(argv), "rss": GIB,
            "why": "matches"}  # fmt: skip


def test_heavy_process_outside_twolane_once_while_it_lives() -> None:
    engine = Rules(Thresholds())
    s = sample(0)
    s["heavy"] = [heavy(7, ["ollama", "pull", "x"])]
    [v] = run(engine, [s])
    assert v.rule == "heavy_process" and "ollama pull x (pid 7" in v.message
    assert run(engine, [s, s]) == []
    run(engine, [sample(5)])  # it ended
    assert [v.rule for v in run(engine, [s])] == ["heavy_process"]


def test_cross_mix_with_an_outside_process() -> None:
    engine = Rules(Thresholds())
    s = sample(0)
    s["heavy"] = [heavy(7, ["ollama", "run", "x"])]
    found = run(engine, [s], [job("r1", Lane.REMOTE), job("r2", Lane.REMOTE)])
    mixed = [v for v in found if v.rule == "lanes_cross_mixed"]
    assert len(mixed) == 1 and mixed[0].severity is Severity.CRITICAL
    assert mixed[0].job_ids == ["r1", "r2"] and "ran while 2 remote job(s) ran" in mixed[0].message
    assert run(engine, [s], [job("r1", Lane.REMOTE)]) == []  # same episode


def test_cross_mix_of_twolane_jobs_unless_allowed() -> None:
    both = [job("l", Lane.LOCAL), job("r", Lane.REMOTE)]
    [v] = run(Rules(Thresholds()), [sample(0)], both)
    assert v.rule == "lanes_cross_mixed" and v.job_ids == ["l", "r"]
    assert run(Rules(Thresholds()), [sample(0)], both, cross_mix=True) == []


def test_heavy_process_of_a_running_job_is_not_outside() -> None:
    engine = Rules(Thresholds())
    s = sample(0)
    s["heavy"] = [heavy(7, ["ollama", "run", "x"])]
    assert run(engine, [s], [job("l", pid=7)]) == []


def test_gate_forced_names_what_was_skipped() -> None:
    failing = GateResult("swap", "fail", 2.6, 2.0, "gate swap: 2.60 GB used > 2.0 GB")
    v = rules.gate_forced(job("f"), [failing], at=5.0)
    assert v.rule == "gate_forced" and v.job_ids == ["f"] and v.severity is Severity.WARNING
    assert v.message == "job f (job f) started with --force; skipped failing gates: gate swap: 2.60 GB used > 2.0 GB"
    assert (v.reading, v.threshold) == (2.6, 2.0)
    calm = rules.gate_forced(job("g"), [GateResult("load", "pass", 0.1, 1.0, "gate load: ok")], 5.0)
    assert calm.severity is Severity.INFO and "would have passed" in calm.message


def test_latency_rule() -> None:
    assert rules.latency(290, 100, 3.0, ["a"], 1.0) is None
    v = rules.latency(450, 100, 3.0, ["a"], 1.0, "ladder")
    assert v is not None and v.rule == "latency_p95" and v.reading == 4.5 and v.threshold == 3.0
    assert "(ladder)" in v.message
    assert rules.latency(float("nan"), 100, 3.0, [], 1.0) is None
    assert rules.latency(900, 0, 3.0, [], 1.0) is None
