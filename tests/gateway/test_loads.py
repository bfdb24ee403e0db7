"""``chat.loads``: json.loads at less cost, with the very same value or error for any bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.core.runners.chat import loads


def _outcome(fn: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return ("value", fn(raw))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        return (type(exc).__name__, str(exc))


_EDGES = [
    b'{"model": "m", "stream": false}',
    b'{"a": [1, 2.5, null, true, "\\u00e9"]}',
    b"  {\"padded\": 1}\r\n",  # whitespace around the value: json.loads' own path
    b'\xef\xbb\xbf{"bom": 1}',  # a UTF-8 BOM
    '{"utf16": 1}'.encode("utf-16-le"),  # '{' then NUL: json.loads sniffs UTF-16
    '{"utf16": 1}'.encode("utf-16"),
    '{"utf32": 1}'.encode("utf-32-be"),
    b'{"a": 1} {"b": 2}',  # extra data
    b'{"a": 1}x',
    b'{"a": ',  # cut short
    b"",
    b"[DONE]",
    b"\xff\xfe\xfd",  # not UTF-8
    b'{"s": "\xc3"}',  # a cut UTF-8 sequence inside a string
    b"NaN",
    b"1",
    b'"text"',
    b'{"ctl": "a\tb"}',  # a raw control character: strict mode refuses it
]


@pytest.mark.parametrize("raw", _EDGES)
def test_same_value_or_error_as_json_loads(raw: bytes) -> None:
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_json, st.sampled_from(["", " ", "\n", "\t \r\n"]), st.sampled_from(["", " ", "\n"]))
def test_any_document_decodes_as_json_loads_does(value: Any, before: str, after: str) -> None:
    raw = (before + json.dumps(value) + after).encode()
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


@given(st.binary(max_size=40))
def test_any_bytes_give_the_same_value_or_error(raw: bytes) -> None:
    assert _outcome(loads, raw) == _outcome(json.loads, raw)
