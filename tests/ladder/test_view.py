"""What the console's ladder view reads: progress while a run goes, the run folder at
any stage, each step's gate, and the terminal chart at a given height."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.core.errors import UserError
from console.core.ladder.plan import LadderSpec, Slo, validate
from console.core.ladder.report import (
    PROGRESS_FILE,
    load_run,
    progress_view,
    terminal_chart,
    write_progress,
    write_report,
)  # fmt: skip
from console.core.ladder.run import LadderResult, run_ladder
from console.core.ladder.verdict import step_breaches
from tests.fakes.upstream import FakeUpstream


def row(c: int, p95: float, *, errors: int = 0, swap: float | None = None) -> dict:
    return {"step": c, "concurrency": c, "requests": 4, "ok": 4 - errors, "errors": errors,
            "error_rate": errors / 4, "e2e_p50": p95 / 2, "e2e_p95": p95, "e2e_p99": p95 * 1.1,
            "ttft_p95": p95 / 4, "tokens_per_s": 10.0 * c, "requests_per_s": 1.0 * c,
            "swap_growth_mb": swap}  # fmt: skip


def test_step_breaches_judges_each_step_like_the_ladder_does() -> None:
    rows = [row(1, 1.0), row(2, 2.0), row(4, 3.5, errors=1), row(8, 2.0, swap=3 * 1024)]
    gates = step_breaches(rows, Slo(p95_ratio=3, error_rate=0.01, swap_gb=2))
    assert [[b.rule for b in g] for g in gates] == [[], [], ["error_rate", "p95_ratio"], ["swap_gb"]]
    assert step_breaches([], Slo()) == []


def test_terminal_chart_draws_the_requested_height() -> None:
    summary = {"model": "m", "steps": [row(1, 1.0), row(2, 2.0), row(4, 5.0)],
               "slo": {"p95_ratio": 3.0}, "knee": {"concurrency": 4}}  # fmt: skip
    for height in (4, 12):
        lines = terminal_chart(summary, height).splitlines()
        # plot rows, axis, x labels, knee marker, legend
        assert len(lines) == height + 4
        assert "▲ knee" in lines[-2] and "e2e p95" in lines[-1]
    assert terminal_chart({**summary, "steps": []}) == "(no successful requests to chart)"


def spec_for(url: str, out: Path, **kw) -> LadderSpec:
    base = {"url": url, "model": "llama3.2:1b", "steps": [1, 2, 4], "out": str(out), "requests": 4,
            "max_tokens": 8, "sample_interval": 0.05}  # fmt: skip
    return validate(LadderSpec(**{**base, **kw}))


def test_load_run_of_a_queued_run_is_its_plan(tmp_path: Path) -> None:
    spec = spec_for("http://127.0.0.1:9", tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    view = load_run(tmp_path)
    assert (view["finished"], view["planned"], view["steps"], view["model"]) == (False, [1, 2, 4], [], "llama3.2:1b")
    assert view["server"]["url"] == "http://127.0.0.1:9" and view["stopped"] == "not started"


def test_load_run_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds no ladder run"):
        load_run(tmp_path)
    (tmp_path / PROGRESS_FILE).write_text("{not json")
    with pytest.raises(UserError, match="re-run the ladder"):
        load_run(tmp_path)


async def test_progress_follows_every_request_then_the_summary_takes_over(tmp_path: Path) -> None:
    fake = await FakeUpstream(kind="openai").start()
    try:
        spec = spec_for(fake.url, tmp_path, slo=Slo(p95_ratio=1000))
        result = LadderResult(spec)
        seen: list[tuple[int, int, int, int | None]] = []
        views: list[dict] = []

        def progress(step: int, c: int, done: int, total: int | None) -> None:
            seen.append((step, c, done, total))
            write_progress(tmp_path, progress_view(result, {"step": step, "concurrency": c,
                                                            "done": done, "total": total}))  # fmt: skip
            views.append(load_run(tmp_path))

        await run_ladder(spec, result, log=lambda _: None, progress=progress)
    finally:
        await fake.stop()
    for step, c in ((1, 1), (2, 2), (3, 4)):
        assert [s[2] for s in seen if s[0] == step] == [0, 1, 2, 3, 4], (step, c)
        assert {s[1:4:2] for s in seen if s[0] == step} == {(c, 4)}
    # While step 3 ran, the view had steps 1 and 2 measured and step 3 current.
    mid = next(v for v in views if v["current"]["step"] == 3)
    assert [s["concurrency"] for s in mid["steps"]] == [1, 2] and not mid["finished"]
    assert mid["planned"] == [1, 2, 4] and mid["server"]["url"] == fake.url
    write_report(result, tmp_path)
    done = load_run(tmp_path)  # summary.json wins over a left-over progress.json
    assert done["finished"] and [s["concurrency"] for s in done["steps"]] == [1, 2, 4]
    assert done["planned"] == [1, 2, 4] and done["current"] is None
