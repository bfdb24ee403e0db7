"""Pre-flight gates as a pure function of a sample, the recent history and thresholds."""

from __future__ import annotations

from typing import Any

from console.core.signals import gates
from console.core.signals.gates import GB, Thresholds, evaluate, held_reason
from console.core.signals.predict import Fit
from console.core.signals.sources import GIB, fake_reading


def sample(at: float = 1000.0, **fields: Any) -> dict[str, Any]:
    s = {"at": at, **fake_reading(**fields)}
    s.setdefault("heavy", [])
    return s


def by_gate(results: list[gates.GateResult]) -> dict[str, gates.GateResult]:
    return {r.gate: r for r in results}


def test_calm_machine_passes_everything() -> None:
    earlier = sample(at=990.0, disk_free={"/data": 50 * GB})
    results = evaluate(sample(disk_free={"/data": 50 * GB}), [earlier], Thresholds())
    assert all(r.verdict == "pass" for r in results)
    assert {r.gate for r in results} == {"load", "disk", "swap", "swap_growth", "pressure", "heavy_process"}
    assert held_reason(results) is None


def test_load_per_core() -> None:
    r = by_gate(evaluate(sample(load1=9.6, cores=8), [], Thresholds()))["load"]
    assert r.verdict == "fail" and r.reading == 1.2 and r.threshold == 1.0
    assert r.message == "gate load: 1.20 per core > 1.00"
    assert by_gate(evaluate(sample(load1=8.0, cores=8), [], Thresholds()))["load"].ok


def test_swap_used() -> None:
    r = by_gate(evaluate(sample(swap_used=int(2.6 * GB)), [], Thresholds()))["swap"]
    assert r.message == "gate swap: 2.60 GB used > 2.0 GB"
    assert not r.ok
    assert by_gate(evaluate(sample(swap_used=int(1.9 * GB)), [], Thresholds(max_swap_gb=2.0)))["swap"].ok


def test_swap_growing_over_the_last_minute() -> None:
    history = [sample(at=1000 + i, swap_used=int(0.1 * GB) + i * 10_000_000) for i in range(30)]
    now = sample(at=1030, swap_used=int(0.1 * GB) + 300_000_000)
    r = by_gate(evaluate(now, history, Thresholds(swap_growth_mb=128)))["swap_growth"]
    assert not r.ok and r.reading == 300
    assert "swap grew 300 MB in the last minute > 128 MB" in r.message
    # One reading (no owner sampling, or a single sample in the last minute) says nothing
    # about growth: unknown, which never holds the lane.
    for history in ([], [sample(at=900, swap_used=0)]):
        alone = by_gate(evaluate(sample(at=1030, swap_used=3 * GIB), history, Thresholds()))["swap_growth"]
        assert (alone.verdict, alone.reading, alone.ok) == ("unknown", None, True)
        assert alone.message.startswith("gate swap_growth: unknown: needs two samples")
    # Growth older than a minute does not count.
    old = [sample(at=900, swap_used=0)] + [sample(at=1000 + i, swap_used=int(0.4 * GB)) for i in range(30)]
    assert by_gate(evaluate(sample(at=1030, swap_used=int(0.4 * GB)), old, Thresholds()))["swap_growth"].ok


def test_pressure_critical_holds_warning_does_not() -> None:
    crit = by_gate(evaluate(sample(pressure="critical", pressure_pct=80.0), [], Thresholds()))["pressure"]
    assert not crit.ok and crit.message == "gate pressure: memory pressure is critical (80%)"
    assert by_gate(evaluate(sample(pressure="warning"), [], Thresholds()))["pressure"].ok


def test_disk_on_every_path_and_pull_size() -> None:
    s = sample(disk_free={"/data": 50 * GB, "/models": 8 * GB})
    results = [r for r in evaluate(s, [], Thresholds()) if r.gate == "disk"]
    assert [(r.subject, r.verdict) for r in results] == [("/data", "pass"), ("/models", "fail")]
    assert results[1].message == "gate disk: 8.00 GB free on /models < 10.0 GB"
    # A pull of a 45 GB model needs its size plus the margin.
    need = {"/data": 10 * GB, "/models": 45 * GB + 10 * GB}
    s = sample(disk_free={"/data": 50 * GB, "/models": 50 * GB})
    pulled = [r for r in evaluate(s, [], Thresholds(), disk_need=need) if r.gate == "disk"]
    assert [r.verdict for r in pulled] == ["pass", "fail"]


def proc(pid: int, argv: list[str], rss: int = 100 * 1024**2, pgid: int | None = None) -> dict[str, Any]:
    return {"pid": pid, "pgid": pgid or pid, "name": argv[0], "argv": argv,
            "cmdline": " ".join(argv), "rss": rss}  # fmt: skip


def test_heavy_processes_by_pattern_and_memory_share() -> None:
    th = Thresholds()
    procs = [proc(10, ["ollama", "pull", "llama3"]), proc(11, ["bash"]),
             proc(12, ["java", "-jar", "big.jar"], rss=5 * GIB), proc(13, ["ollama", "serve"])]  # fmt: skip
    heavy = gates.heavy_processes(procs, th, mem_total=16 * GIB)
    assert [(h["pid"], h["why"]) for h in heavy] == [(10, "matches 'ollama pull'"), (12, "uses 31% of memory > 25%")]


def test_twolane_jobs_and_the_owner_are_not_heavy() -> None:
    procs = [proc(20, ["ollama", "run", "x"], pgid=20), proc(21, ["llama-cli"], pgid=20), proc(30, ["ollama", "run"])]
    heavy = gates.heavy_processes(procs, Thresholds(), 16 * GIB, exclude_pgids=[20], exclude_pids=[30])
    assert heavy == []


def test_heavy_gate_names_the_process() -> None:
    s = sample()
    s["heavy"] = gates.heavy_processes([proc(42, ["lms", "load", "qwen"])], Thresholds(), s["mem_total"])
    r = by_gate(evaluate(s, [], Thresholds()))["heavy_process"]
    assert not r.ok
    assert r.message == "gate heavy_process: lms load qwen (pid 42, matches 'lms load') running outside twolane"
    # The same process inside a running twolane job's group passes.
    assert by_gate(evaluate(s, [], Thresholds(), exclude_pgids=[42]))["heavy_process"].ok


def test_model_gate() -> None:
    fit = Fit(False, int(9 * GB), int(10 * GB), int(2 * GB))
    r = by_gate(evaluate(sample(), [], Thresholds(), model="qwen:7b", fit=fit))["model"]
    assert not r.ok and (r.reading, r.threshold) == (9.0, 8.0)
    assert r.message == "gate model: qwen:7b needs 9.00 GB > 8.00 GB budget (10.0 GB available - 2.00 GB headroom)"
    unknown = by_gate(evaluate(sample(), [], Thresholds(), model="x", model_error="Ollama down"))["model"]
    assert unknown.verdict == "unknown" and unknown.ok


def test_held_reason_lists_every_failing_gate() -> None:
    results = evaluate(sample(load1=16.0, swap_used=3 * GIB), [], Thresholds())
    reason = held_reason(results)
    assert reason is not None
    assert reason.startswith("gate load: 2.00 per core > 1.00; gate swap: 3.22 GB used > 2.0 GB")


def test_thresholds_from_config() -> None:
    from console.core import config

    cfg = config.load(environ={"TWOLANE__GATES__MAX_SWAP_GB": "4.5"})
    th = Thresholds.from_config(cfg)
    assert th.max_swap_gb == 4.5 and th.max_load_per_core == 1.0
    assert "ollama pull" in th.heavy_process_patterns
    assert th.for_sample() == {"max_swap_gb": 4.5, "max_load_per_core": 1.0,
                               "memory_headroom_gb": 2.0, "min_free_disk_gb": 10.0}  # fmt: skip
