"""The ladder's pure pieces: plan parsing, percentile maths, knee verdicts, charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from console.core.errors import UserError
from console.core.ladder.chart import Series, svg_chart, text_chart
from console.core.ladder.machine import MB, MachineSample, summarise_samples
from console.core.ladder.plan import (
    LadderSpec,
    Slo,
    parse_slo,
    parse_steps,
    prompt_for,
    prompts_from_text,
    requests_for_step,
    validate,
)  # fmt: skip
from console.core.ladder.stats import RequestRecord, percentile, summarise_step
from console.core.ladder.verdict import GB, breaches, p95_ratio, slo_verdicts


def spec(**kw) -> LadderSpec:
    base = {"url": "http://127.0.0.1:1", "model": "m", "steps": [1, 2], "out": "/tmp/x"}
    return LadderSpec(**{**base, **kw})


# ---- plan -------------------------------------------------------------------------------


def test_parse_steps_accepts_increasing_positive_numbers() -> None:
    assert parse_steps("1,2,4,8") == [1, 2, 4, 8]
    assert parse_steps(" 3 , 5,") == [3, 5]


@pytest.mark.parametrize("text, words", [
    ("1,x", "whole numbers"), ("", "at least one"), ("0,1", "at least 1"), ("2,2", "must increase"),
    ("4,2", "must increase"),
])  # fmt: skip
def test_parse_steps_rejects_bad_input_naming_the_fix(text: str, words: str) -> None:
    with pytest.raises(UserError, match=words):
        parse_steps(text)


def test_parse_slo_overrides_only_given_keys() -> None:
    assert parse_slo("p95_ratio=2.5") == Slo(p95_ratio=2.5, error_rate=0.01, swap_gb=2.0)
    assert parse_slo("swap_gb=0.5", Slo(p95_ratio=4)) == Slo(p95_ratio=4, error_rate=0.01, swap_gb=0.5)
    assert parse_slo("") == Slo()


@pytest.mark.parametrize("text, words", [
    ("latency=3", "takes p95_ratio=N"), ("p95_ratio", "takes"), ("p95_ratio=abc", "must be a number"),
    ("p95_ratio=0.5", "at least 1"), ("error_rate=2", "fraction"), ("swap_gb=-1", "non-negative"),
    ("swap_gb=nan", "non-negative"),
])  # fmt: skip
def test_parse_slo_rejects_bad_input(text: str, words: str) -> None:
    with pytest.raises(UserError, match=words):
        parse_slo(text)


@pytest.mark.parametrize("kw, words", [
    ({"url": "ftp://x"}, "http"), ({"url": "127.0.0.1:11434"}, "http"), ({"model": " "}, "--model"),
    ({"requests": None}, "either"), ({"requests": 3, "duration": 2.0}, "either"),
    ({"requests": 0}, "at least 1"), ({"requests": None, "duration": 0.0}, "positive"),
    ({"max_tokens": 0}, "max-tokens"), ({"prompts": []}, "no prompts"), ({"api": "grpc"}, "--api"),
    ({"server_pid": 0}, "server-pid"),
])  # fmt: skip
def test_validate_rejects_bad_specs(kw: dict, words: str) -> None:
    with pytest.raises(UserError, match=words):
        validate(spec(**kw))


def test_spec_round_trips_through_json_dict() -> None:
    s = validate(spec(slo=Slo(p95_ratio=5), server_pid=42, stream=False))
    assert LadderSpec.from_dict(s.to_dict()) == s


def test_requests_per_step_is_at_least_the_concurrency() -> None:
    assert requests_for_step(spec(requests=16), 4) == 16
    assert requests_for_step(spec(requests=2), 8) == 8
    assert requests_for_step(spec(requests=None, duration=3.0), 8) is None


def test_prompts_file_and_round_robin() -> None:
    prompts = prompts_from_text("# comment\nfirst\n\n  second  \n")
    assert prompts == ["first", "second"]
    s = spec(prompts=prompts)
    assert [prompt_for(s, i) for i in range(3)] == ["first", "second", "first"]


# ---- stats ------------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of arrival does not matter


def rec(e2e: float, ttft: float | None = 0.1, tokens: int = 10, status: int = 200, error: str = "",
        itl: list[float] | None = None) -> RequestRecord:  # fmt: skip
    return RequestRecord(step=1, concurrency=2, seq=0, worker=0, start=0.0, e2e=e2e, ttft=ttft,
                         itl=itl or [], tokens_in=5, tokens_out=tokens, status=status, error=error)  # fmt: skip


def test_summarise_step_uses_successes_for_latency_and_everything_for_errors() -> None:
    records = [rec(1.0, itl=[0.1, 0.3]), rec(2.0), rec(3.0), rec(9.0, status=503, error="overloaded", tokens=0)]
    row = summarise_step(1, 2, records, wall=2.0)
    assert (row["requests"], row["ok"], row["errors"]) == (4, 3, 1)
    assert row["error_rate"] == 0.25
    assert row["e2e_p50"] == 2.0 and row["e2e_p99"] == pytest.approx(2.98)
    assert row["ttft_p95"] == pytest.approx(0.1)
    assert row["itl_p50"] == pytest.approx(0.2)
    assert row["tokens_out"] == 30 and row["tokens_in"] == 15
    assert row["tokens_per_s"] == 15.0 and row["requests_per_s"] == 1.5


def test_summarise_step_with_no_success_has_no_latency() -> None:
    row = summarise_step(1, 1, [rec(1.0, status=0, error="ConnectError")], wall=1.0)
    assert row["e2e_p95"] is None and row["ttft_p50"] is None and row["error_rate"] == 1.0


# ---- verdicts ---------------------------------------------------------------------------


def row(c: int, p95: float | None, err: float = 0.0, swap_mb: float | None = None) -> dict:
    return {"step": c, "concurrency": c, "requests": 10, "errors": int(err * 10), "error_rate": err,
            "e2e_p95": p95, "swap_growth_mb": swap_mb}  # fmt: skip


def test_no_breach_inside_the_slos() -> None:
    base = row(1, 1.0)
    assert breaches(base, None, Slo(), 0.0) == []
    assert breaches(row(2, 2.9), base, Slo(), 0.0) == []


def test_p95_over_the_ratio_is_the_knee() -> None:
    base = row(1, 1.0)
    (b,) = breaches(row(4, 3.5), base, Slo(p95_ratio=3), None)
    assert b.rule == "p95_ratio" and b.reading == 3.5 and b.threshold == 3
    assert "concurrency 4" in b.message and "3.50x" in b.message


def test_errors_and_swap_breach_too() -> None:
    base = row(1, 1.0)
    found = breaches(row(2, 1.0, err=0.2, swap_mb=3 * 1024), base, Slo(), 3 * GB)
    assert [b.rule for b in found] == ["error_rate", "swap_gb"]
    assert found[1].reading == pytest.approx(3.0)


def test_first_step_has_no_ratio_and_missing_p95_gives_none() -> None:
    assert p95_ratio(row(1, 1.0), None) is None
    assert p95_ratio(row(2, None), row(1, 1.0)) is None
    assert p95_ratio(row(2, 1.0), row(1, None)) is None


def test_slo_verdicts_report_worst_reading_and_na_without_swap() -> None:
    rows = [row(1, 1.0), row(2, 1.5), row(4, 4.0)]
    knee = {"concurrency": 4, "breaches": [{"rule": "p95_ratio"}]}
    verdicts = {v["rule"]: v for v in slo_verdicts(rows, Slo(), knee)}
    assert verdicts["p95_ratio"]["verdict"] == "fail" and verdicts["p95_ratio"]["worst"] == 4.0
    assert verdicts["error_rate"]["verdict"] == "pass"
    assert verdicts["swap_gb"]["verdict"] == "n/a"


# ---- machine samples --------------------------------------------------------------------


def sample(at: float, rss: int | None, swap: int, load: float, pressure: float | None = None) -> MachineSample:
    return MachineSample(at=at, rss=rss, swap_used=swap, mem_used_pct=50.0 + at, pressure=pressure, load1=load)


def test_summarise_samples_peaks_and_deltas() -> None:
    samples = [sample(0, 100 * int(MB), 10 * int(MB), 1.0), sample(1, 300 * int(MB), 50 * int(MB), 3.0, 2.5),
               sample(2, None, 30 * int(MB), 2.0)]  # fmt: skip
    out = summarise_samples(samples, ladder_start_swap=0)
    assert out["server_rss_peak_mb"] == 300.0
    assert out["swap_delta_mb"] == 20.0 and out["swap_growth_mb"] == 50.0
    assert out["load_peak"] == 3.0 and out["mem_pressure_peak"] == 2.5 and out["mem_used_pct_peak"] == 52.0
    assert summarise_samples([], 0) == {}


# ---- charts -----------------------------------------------------------------------------


def test_text_chart_places_markers_slo_line_and_knee() -> None:
    series = [Series("p95", "●", {1: 1.0, 2: 1.2, 4: 5.0}), Series("p50", "○", {1: 0.5, 2: 0.6, 4: 2.0})]
    text = text_chart(series, limit=("SLO", 3.0), knee=4, height=10, spacing=6)
    lines = text.splitlines()
    top = next(line for line in lines if "●" in line)
    assert top.index("●") == max(line.find("●") for line in lines)  # the highest point is at c=4
    assert any("┄" in line and "3.000s" in line for line in lines)
    knee_line = next(line for line in lines if "knee" in line)
    axis = next(line for line in lines if "concurrency" in line)
    assert abs(knee_line.index("▲") - axis.index("4")) <= 2
    assert "● p95" in lines[-1] and "┄ SLO" in lines[-1]


def test_text_chart_without_data_says_so() -> None:
    assert "no successful" in text_chart([Series("p95", "●", {})])


def test_svg_chart_is_well_formed() -> None:
    svg = svg_chart([Series("p95 <e2e>", "●", {1: 1.0, 8: 2.0})], limit=("SLO", 3.0), knee=8, title="a & b")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}circle")) == 2
