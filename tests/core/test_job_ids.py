"""Job ids: short, typeable, no look-alike characters."""

from __future__ import annotations

from console.core.models import _ID_ALPHABET, new_job_id


def test_ids_are_six_typeable_characters_and_do_not_repeat() -> None:
    ids = [new_job_id() for _ in range(1000)]
    assert all(len(i) == 6 and set(i) <= set(_ID_ALPHABET) for i in ids)
    assert not set("01ilo") & set("".join(ids))
    assert len(set(ids)) >= len(ids) - 2  # 31**6 values: a repeat or two is just chance
    assert set("".join(ids)) == set(_ID_ALPHABET)  # every character is reachable
    assert len(new_job_id(10)) == 10
