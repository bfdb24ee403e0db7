"""The row encoding: ``schema.dumps`` writes exactly what ``json.dumps`` writes."""

from __future__ import annotations

import json
import math

import pytest

from console.core import jobs
from console.core.schema import dumps, end_params, job_params


@pytest.mark.parametrize("value", [
    {}, [], {"argv": [], "shell": None, "cwd": None, "env": {}, "timeout": None,
             "extra": {"model": "gpt-4o", "upstream": "cloud"}},
    {"ttfb_ms": 1.2, "duration_ms": 1e-7, "big": 10**30, "neg": -3, "ok": True, "no": False},
    {"text": "naïve — ünïcödé ✓ \\u0000 \"quoted\" \n\t", "emoji": "🙂", 3: "int key"},
    {"nested": [[1, [2, {"a": [None]}]], {"b": {"c": 1.5}}]},
    {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
])  # fmt: skip
def test_dumps_writes_what_json_dumps_writes(value: object) -> None:
    assert dumps(value) == json.dumps(value)


def test_a_job_row_holds_its_spec_and_meta_as_json() -> None:
    job = jobs.new_job([], lane="remote", kind="chat", extra={"model": "m"},
                       meta={"client": "127.0.0.1:1", "ttfb_ms": 0.5})  # fmt: skip
    params = job_params(job)
    assert json.loads(params[7]) == job.spec.to_dict() and json.loads(params[-1]) == job.meta
    assert json.loads(end_params(job)[6]) == job.meta


def test_what_json_cannot_write_is_refused_as_before() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
