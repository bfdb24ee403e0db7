"""The signals extension inside a real owner: gates hold the local lane and release it,
--force is recorded, a declared model that does not fit holds with its numbers, rules
record violations, and the control routes answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.core import config, jobs
from console.core.models import JobState
from console.core.signals.extension import SignalsExtension
from console.core.signals.sources import GIB, FakeSource
from tests.helpers import until
from tests.signals.conftest import llama_like


@pytest.fixture
async def rig(home: Path) -> AsyncIterator[tuple[Any, FakeSource]]:
    from console.owner import Owner

    cfg = config.load()
    cfg.set("signals.interval", 0.05)
    for key in ("gates.max_load_per_core", "gates.max_swap_gb", "gates.memory_headroom_gb",
                "gates.min_free_disk_gb", "gates.swap_growth_mb"):
        cfg.set(key, config.DEFAULTS[key])  # whatever the environment says, test the defaults
    source = FakeSource(disk_free={str(home): 100 * 10**9})
    own = Owner(home, cfg, extensions=[SignalsExtension(cfg, source=source)])
    await own.start()
    try:
        yield own, source
    finally:
        await own.stop()


async def settle(owner: Any, source: FakeSource, **fields: Any) -> None:
    """Change the readings and wait until the sampler has seen them (gates read samples)."""
    source.set(**fields)
    await until(lambda: all((owner.sampler.latest() or {}).get(k) == v for k, v in fields.items()),
                what=f"a sample with {fields}")  # fmt: skip


def local_job(*argv: str, **kw: Any):  # type: ignore[no-untyped-def]
    return jobs.new_job(list(argv) or ["true"], lane="local", **kw)


async def test_contract_for_the_console(rig: tuple[Any, FakeSource]) -> None:
    owner, _ = rig
    await until(lambda: len(owner.sampler.history(600)) >= 2, what="samples")
    latest = owner.sampler.latest()
    assert latest is not None and latest["swap_used"] == 0
    assert owner.scheduler.gate is not None


async def test_held_job_starts_once_its_gate_passes(rig: tuple[Any, FakeSource]) -> None:
    owner, source = rig
    await settle(owner, source, swap_used=int(2.6e9))
    job = await owner.scheduler.submit(local_job())
    await until(lambda: owner.scheduler.status()["local"]["held"] is not None, what="held")
    assert job.state is JobState.QUEUED
    assert job.held_reason.startswith("gate swap: 2.60 GB used > 2.0 GB")
    stored = await owner.store.get_job(job.id)
    assert stored.held_reason == job.held_reason  # visible to `twolane ls` with no owner too
    source.set(swap_used=0)
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED and done.held_reason is None
    assert owner.scheduler.status()["local"]["held"] is None


async def test_force_skips_gates_and_is_recorded(rig: tuple[Any, FakeSource]) -> None:
    owner, source = rig
    await settle(owner, source, load1=40.0)
    job = await owner.scheduler.submit(local_job(force=True))
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED

    async def forced() -> list[Any]:
        return [v for v in await owner.store.list_violations() if v.rule == "gate_forced"]

    await until(lambda: _truthy(forced()), what="gate_forced violation")
    [v] = await forced()
    assert v.job_ids == [job.id] and "gate load: 5.00 per core > 1.00" in v.message


async def _truthy(coro: Any) -> bool:
    return bool(await coro)


async def test_declared_model_that_does_not_fit_holds_with_numbers(
    rig: tuple[Any, FakeSource], tmp_path: Path
) -> None:
    owner, source = rig
    # ~2.2 GB of f16 weights; with 3 GB available and 2 GB headroom it cannot fit.
    model = llama_like(tmp_path / "big.gguf", n_layer=16, n_embd=4096, n_ff=4096, ttype=1)
    await settle(owner, source, mem_available=3 * GIB)
    job = local_job(extra={"model": str(model), "ctx": 8192})
    await owner.prepare_job(job)
    assert job.meta["footprint"]["kv_bytes"] == 16 * 8192 * 2 * (512 + 512) * 2
    await owner.scheduler.submit(job)
    await until(lambda: job.held_reason is not None, what="held on the model")
    assert job.held_reason.startswith(f"gate model: {model} needs ")
    assert "budget (3.22 GB available - 2.00 GB headroom)" in job.held_reason
    source.set(mem_available=64 * GIB)
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED


async def test_bad_model_declarations_are_refused(rig: tuple[Any, FakeSource], tmp_path: Path) -> None:
    from console.core.errors import UserError

    owner, _ = rig
    with pytest.raises(UserError, match="no such GGUF file"):
        await owner.prepare_job(local_job(extra={"model": str(tmp_path / "missing.gguf")}))
    with pytest.raises(UserError, match="ctx must be"):
        await owner.prepare_job(local_job(extra={"model": "x.gguf", "ctx": -1}))
    # An Ollama name while Ollama is away: accepted, the footprint stays unknown.
    owner.config.set("signals.ollama_url", "http://127.0.0.1:9")
    job = local_job(extra={"model": "llama3:8b"})
    await owner.prepare_job(job)
    assert "start Ollama" in job.meta["footprint_error"]


async def test_rules_record_violations(rig: tuple[Any, FakeSource]) -> None:
    owner, source = rig
    source.set(processes=[{"pid": 999_999, "pgid": 999_999, "name": "ollama",
                           "argv": ["ollama", "pull", "big"], "cmdline": "ollama pull big",
                           "rss": 1}])  # fmt: skip

    async def rules_seen() -> set[str]:
        return {v.rule for v in await owner.store.list_violations()}

    await until(lambda: _has(rules_seen(), "heavy_process"), what="heavy_process violation")
    gates = await owner.signals.gates_report()
    assert not gates["ok"]
    assert any(g["gate"] == "heavy_process" and g["verdict"] == "fail" for g in gates["gates"])


async def _has(coro: Any, rule: str) -> bool:
    return rule in await coro


async def test_control_routes(rig: tuple[Any, FakeSource]) -> None:
    from console.client import AsyncControlClient
    from console.core import paths
    from console.core.errors import UserError

    owner, source = rig
    client = AsyncControlClient(paths.socket_path(owner.home))
    try:
        await until(lambda: len(owner.sampler.history()) >= 2, what="samples")
        history = await client.request("GET", "/signals/history?seconds=600")
        assert len(history) >= 2 and history[-1]["cores"] == 8
        report = await client.request("GET", "/gates")
        assert report["ok"] is True and {g["gate"] for g in report["gates"]} >= {"load", "swap"}
        found = await client.request("POST", "/signals/latency", {"p95_ms": 900, "baseline_ms": 100,
                                                                  "job_ids": ["x"]})  # fmt: skip
        assert found["violation"]["rule"] == "latency_p95"
        assert (await client.request("POST", "/signals/latency", {"p95_ms": 200, "baseline_ms": 100}))["violation"] is None
        for body, message in (
            ([1], "send a JSON object"),
            ({"p95_ms": "nan", "baseline_ms": 100}, "p95_ms must be a number of milliseconds"),
            ({"p95_ms": 900, "baseline_ms": -1}, "baseline_ms must be a number of milliseconds above 0"),
            ({"p95_ms": 900, "baseline_ms": 100, "job_ids": "abc"}, "job_ids must be a list"),
        ):  # fmt: skip
            with pytest.raises(UserError, match=message):
                await client.request("POST", "/signals/latency", body)
        with pytest.raises(UserError, match="seconds must be a number"):
            await client.request("GET", "/signals/history?seconds=abc")
    finally:
        await client.aclose()


async def test_ollama_model_too_big_is_held_until_ollama_has_it_loaded(rig: tuple[Any, FakeSource]) -> None:
    from tests.signals.conftest import FakeOllama

    owner, source = rig
    with FakeOllama() as ollama:
        owner.config.set("signals.ollama_url", ollama.url)
        ollama.shows["huge:70b"] = {"modelfile": "FROM /not/here\n", "model_info": {
            "general.architecture": "llama", "llama.block_count": 80, "llama.embedding_length": 8192,
            "llama.attention.head_count": 64, "llama.attention.head_count_kv": 8}}  # fmt: skip
        ollama.tags = [{"name": "huge:70b", "size": 40 * 10**9}]
        job = local_job(extra={"model": "huge:70b"})
        await owner.prepare_job(job)
        assert job.meta["footprint"]["weights_bytes"] == 40 * 10**9
        await owner.scheduler.submit(job)
        await until(lambda: (job.held_reason or "").startswith("gate model: huge:70b needs "),
                    what="held on the model")  # fmt: skip
        # Already resident in Ollama: its memory is counted as used; loading costs nothing new.
        ollama.loaded = [{"name": "huge:70b", "size": 40 * 10**9}]
        done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
        assert done.state is JobState.SUCCEEDED


async def test_a_bad_declaration_written_without_an_owner_does_not_wedge_the_lane(
    rig: tuple[Any, FakeSource], tmp_path: Path
) -> None:
    owner, _ = rig
    model = llama_like(tmp_path / "m.gguf")
    job = local_job(extra={"model": str(model), "ctx": "lots"})  # never went through prepare_job
    results = {r.gate: r for r in await owner.signals.evaluate(job)}
    assert results["model"].verdict == "unknown" and "ctx must be" in results["model"].message
    await owner.scheduler.submit(job)
    done = await asyncio.wait_for(owner.scheduler.wait_done(job.id), 30)
    assert done.state is JobState.SUCCEEDED


async def test_gate_now_answers_from_what_is_at_hand(rig: tuple[Any, FakeSource], tmp_path: Path) -> None:
    """The scheduler starts the next local job in the same commit as the end before it
    only when the gate can say yes without reading anything new."""
    owner, source = rig
    ext = owner.signals
    await settle(owner, source, load1=0.0, swap_used=0)
    assert ext.gate_now(local_job()) is True
    await settle(owner, source, load1=40.0)  # the load gate fails
    assert ext.gate_now(local_job()) is False
    assert (await ext.gate(local_job())) is not None
    await settle(owner, source, load1=0.0)

    model = llama_like(tmp_path / "m.gguf")
    declared = local_job(extra={"model": str(model), "ctx": 2048})
    assert ext.gate_now(declared) is False  # no prediction yet: the async gate makes one
    assert (await ext.gate(declared)) is None
    assert ext.gate_now(declared) is True  # now cached
    big = llama_like(tmp_path / "big.gguf", n_layer=16, n_embd=4096, n_ff=4096, ttype=1)
    too_big = local_job(extra={"model": str(big), "ctx": 8192})
    await settle(owner, source, mem_available=3 * GIB)
    assert (await ext.gate(too_big)) is not None
    assert ext.gate_now(too_big) is False  # cached, and it does not fit

    sample = owner.sampler.latest()
    await owner.sampler.stop()  # no new samples: the last one grows stale
    from console.core.signals.extension import STALE_INTERVALS

    age = STALE_INTERVALS * owner.sampler.interval
    await until(lambda: owner.clock.now() - sample["at"] > age, what="the sample to grow stale")
    assert ext.gate_now(local_job()) is False


async def test_a_failing_gate_holds_the_next_local_job_after_a_hand_off(
    rig: tuple[Any, FakeSource], tmp_path: Path
) -> None:
    """A job ending hands its lane to the next one only through the gate: with the load
    gate failing the next job is held with the reading, then starts once it passes."""
    owner, source = rig
    go = tmp_path / "go"
    first = await owner.scheduler.submit(
        local_job("/bin/sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"))
    second = await owner.scheduler.submit(local_job())
    await until(lambda: first.state is JobState.RUNNING, what="first running")
    await settle(owner, source, load1=40.0)
    go.touch()
    await until(lambda: second.held_reason is not None, what="second held")
    assert second.state is JobState.QUEUED and second.held_reason.startswith("gate load:")
    source.set(load1=0.0)
    done = await asyncio.wait_for(owner.scheduler.wait_done(second.id), 30)
    assert done.state is JobState.SUCCEEDED
async def test_a_held_lane_is_rechecked_with_back_off_and_starts_when_the_gate_passes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-checks follow the owner's (manual) clock: 0.5 s after the hold, then doubling to
    10 s; the job starts at the first re-check after the reading clears."""
    from console.core import scheduler as scheduler_mod
    from console.core.clock import ManualClock
    from console.owner import Owner

    monkeypatch.setattr(scheduler_mod, "HOUSEKEEPING_INTERVAL", 0.01)  # look often, real time
    clock = ManualClock()
    cfg = config.load()
    cfg.set("signals.interval", 0.05)
    for key in ("gates.max_load_per_core", "gates.max_swap_gb", "gates.min_free_disk_gb"):
        cfg.set(key, config.DEFAULTS[key])
    source = FakeSource(disk_free={str(home): 100 * 10**9}, swap_used=int(2.6e9))
    owner = Owner(home, cfg, clock=clock, extensions=[SignalsExtension(cfg, source=source)])
    await owner.start()
    try:
        sched = owner.scheduler
        checked: list[float] = []  # the manual clock at each gate check
        gate, housekeeping = sched.gate, sched._housekeeping
        ticks = 0

        async def counted_gate(job: Any) -> str | None:
            checked.append(clock.monotonic())
            return await gate(job)

        async def counted_housekeeping() -> None:
            nonlocal ticks
            await housekeeping()
            ticks += 1

        sched.gate, sched._housekeeping = counted_gate, counted_housekeeping

        async def step(seconds: float) -> None:
            """Move the clock, then let housekeeping look at it twice (a whole pass)."""
            clock.advance(seconds)
            seen = ticks
            await until(lambda: ticks >= seen + 2, what="two housekeeping passes")

        job = await sched.submit(local_job())
        await until(lambda: job.held_reason is not None, what="held on swap")
        assert job.held_reason.startswith("gate swap: 2.60 GB used > 2.0 GB")
        for _ in range(80):  # 40 s of owner time in half seconds
            await step(0.5)
        assert sorted(set(checked)) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5, 35.5]
        assert job.state is JobState.QUEUED
        await settle(owner, source, swap_used=0)
        while job.state is JobState.QUEUED:
            await step(0.5)
            assert clock.monotonic() <= 45.5, "not started at the first re-check after the gate cleared"
        assert checked[-1] == 45.5
        done = await asyncio.wait_for(sched.wait_done(job.id), 30)
        assert done.state is JobState.SUCCEEDED and done.held_reason is None
    finally:
        await owner.stop()


async def test_a_gateway_request_is_predicted_through_its_own_upstream(rig: tuple[Any, FakeSource]) -> None:
    """A chat request names its upstream: its model is asked of that Ollama (not of
    signals.ollama_url), and a model behind an OpenAI-style upstream is 'unknown'."""
    from tests.signals.conftest import FakeOllama

    owner, source = rig
    owner.config.set("signals.ollama_url", "http://127.0.0.1:9")  # nobody there
    with FakeOllama() as ollama:
        owner.config.set("upstreams", [
            {"name": "box", "kind": "ollama", "base_url": ollama.url, "lane": "local", "models": ["*"]},
            {"name": "llamacpp", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "lane": "local",
             "models": ["gguf-model"]}])  # fmt: skip
        ollama.shows["huge:70b"] = {"modelfile": "FROM /not/here\n", "model_info": {
            "general.architecture": "llama", "llama.block_count": 80, "llama.embedding_length": 8192,
            "llama.attention.head_count": 64, "llama.attention.head_count_kv": 8}}  # fmt: skip
        ollama.tags = [{"name": "huge:70b", "size": 40 * 10**9}]
        request = jobs.new_job([], lane="local", kind="chat", extra={"model": "huge:70b", "upstream": "box"})
        results = {r.gate: r for r in await owner.signals.evaluate(request)}
        assert results["model"].verdict == "fail"
        assert results["model"].message.startswith("gate model: huge:70b needs ")
        assert ("/api/show", {"model": "huge:70b"}) in ollama.requests
    other = jobs.new_job([], lane="local", kind="chat", extra={"model": "gguf-model", "upstream": "llamacpp"})
    results = {r.gate: r for r in await owner.signals.evaluate(other)}
    assert results["model"].verdict == "unknown"
    assert "served by upstream 'llamacpp' (openai), which cannot say its size" in results["model"].message


async def test_gate_now_keeps_a_verdict_only_while_what_it_read_holds(home: Path, tmp_path: Path) -> None:
    """gate_now keeps its verdicts for the sample they were read from: a new sample, a
    different model, or a change in the running jobs' process groups asks the gates again;
    a sample grown stale answers False whatever was kept."""
    from console.core.clock import ManualClock
    from console.core.signals.extension import STALE_INTERVALS
    from console.owner import Owner

    clock = ManualClock()
    cfg = config.load()
    for key in ("gates.max_load_per_core", "gates.max_swap_gb", "gates.memory_headroom_gb",
                "gates.min_free_disk_gb", "gates.swap_growth_mb"):
        cfg.set(key, config.DEFAULTS[key])
    source = FakeSource(disk_free={str(home): 100 * 10**9}, load1=0.0, mem_available=3 * GIB)
    owner = Owner(home, cfg, clock=clock, extensions=[SignalsExtension(cfg, source=source)])
    await owner.start()
    try:
        await owner.sampler.stop()  # samples only when the test takes one
        ext = owner.signals

        async def sample(**fields: Any) -> None:
            source.set(**fields)
            await owner.sampler.sample_once()

        assert ext.gate_now(local_job()) is True
        assert ext.gate_now(local_job()) is True  # kept
        await sample(load1=40.0)  # a new sample says hold
        assert ext.gate_now(local_job()) is False
        await sample(load1=0.0)
        assert ext.gate_now(local_job()) is True

        small = local_job(extra={"model": str(llama_like(tmp_path / "m.gguf")), "ctx": 2048})
        big_model = llama_like(tmp_path / "big.gguf", n_layer=16, n_embd=4096, n_ff=4096, ttype=1)
        big = local_job(extra={"model": str(big_model), "ctx": 8192})
        assert await ext.gate(small) is None and await ext.gate(big) is not None  # predicted
        assert ext.gate_now(small) is True
        assert ext.gate_now(big) is False  # same sample, another model
        assert ext.gate_now(small) is True
        bigger_ctx = local_job(extra={"model": str(llama_like(tmp_path / "m.gguf")), "ctx": 2048 * 64})
        assert ext.gate_now(bigger_ctx) is False  # not predicted at that size yet

        # A heavy process in a running job's own process group is not held against it.
        heavy = {"pid": 4242, "pgid": 4242, "name": "ollama", "argv": ["ollama", "run", "m"],
                 "cmdline": "ollama run m", "rss": 10**6}  # fmt: skip
        await sample(processes=[heavy])
        ext._job_pgids = lambda: [4242]  # type: ignore[method-assign]
        assert ext.gate_now(local_job()) is True
        ext._job_pgids = lambda: []  # type: ignore[method-assign]
        assert ext.gate_now(local_job()) is False  # same sample: the job is gone
        await sample(processes=[])

        assert ext.gate_now(local_job()) is True
        clock.advance(STALE_INTERVALS * owner.sampler.interval + 1)
        assert ext.gate_now(local_job()) is False  # stale: the kept verdict is not used
    finally:
        await owner.stop()
