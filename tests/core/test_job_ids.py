"""Job ids: short, typeable, no look-alike characters."""

from __future__ import annotations

from collections import Counter

from console.core.models import _ID_ALPHABET, new_job_id


def test_ids_are_six_typeable_characters_and_do_not_repeat() -> None:
    ids = [new_job_id() for _ in range(1000)]
    assert all(len(i) == 6 and set(i) <= set(_ID_ALPHABET) for i in ids)
    assert not set("01ilo") & set("".join(ids))
    assert len(set(ids)) >= len(ids) - 2  # 31**6 values: a repeat or two is just chance
    assert set("".join(ids)) == set(_ID_ALPHABET)  # every character is reachable
    assert len(new_job_id(10)) == 10


def test_every_character_is_equally_likely() -> None:
    ids = [new_job_id() for _ in range(60_000)]
    assert all(len(i) == 6 and set(i) <= set(_ID_ALPHABET) for i in ids)
    counts = Counter("".join(ids))
    expected = 6 * len(ids) / len(_ID_ALPHABET)
    # 4% is over four standard deviations; a modulo bias would put 8 characters 9% high.
    assert len(counts) == len(_ID_ALPHABET)
    assert all(abs(n - expected) < 0.04 * expected for n in counts.values()), counts
