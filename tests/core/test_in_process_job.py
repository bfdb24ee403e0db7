"""``jobs.in_process_job``: the job ``new_job([], ...)`` makes, without its shell-job checks."""

from __future__ import annotations

import pytest

from console.core import jobs
from console.core.errors import UserError
from console.core.models import Lane


@pytest.mark.parametrize("lane", list(Lane))
@pytest.mark.parametrize("name", ["chat llama3.2:1b", "  embed  padded  ", " "])
def test_the_same_job_as_new_job(lane: Lane, name: str) -> None:
    extra = {"model": "m", "upstream": "local", "ctx": 8192}
    meta = {"model": "m", "client": "127.0.0.1:1", "stream": False}
    made = jobs.new_job([], lane=lane, kind="chat", name=name, priority=10, extra=dict(extra),
                        meta=dict(meta), now=123.5)  # fmt: skip
    fast = jobs.in_process_job(lane, "chat", name, 10, dict(extra), dict(meta), 123.5)
    assert len(fast.id) == len(made.id) and fast.id != made.id
    assert {**fast.to_dict(), "id": made.id} == made.to_dict()


def test_a_name_too_long_is_refused_as_new_job_refuses_it() -> None:
    name = "chat " + "m" * 200
    with pytest.raises(UserError) as slow:
        jobs.new_job([], kind="chat", name=name)
    with pytest.raises(UserError) as fast:
        jobs.in_process_job(Lane.LOCAL, "chat", name, 0, {}, {}, 0.0)
    assert str(fast.value) == str(slow.value)
