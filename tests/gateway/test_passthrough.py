"""What the gateway sends on: the client's own bytes when it has nothing to change, and
a whole answer in one piece with its length."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import GatewayFactory


def remote(fake: FakeUpstream) -> dict[str, Any]:
    return {"name": "cloud", "kind": "openai", "base_url": fake.url, "lane": "remote",
            "models": ["gpt-*"]}  # fmt: skip


# Spacing, key order and escapes a re-encoding would not keep.
ODD = b'{ "messages":[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],\n  "model" : "gpt-fake","stream":false }'


async def test_an_unchanged_body_reaches_the_upstream_byte_for_byte(
    make_gateway: GatewayFactory, fake_openai: FakeUpstream
) -> None:
    own = await make_gateway([remote(fake_openai)])
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        resp = await http.post("/v1/chat/completions", content=ODD,
                               headers={"Content-Type": "application/json"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert fake_openai.raw == [ODD]


async def test_a_body_the_gateway_changes_is_sent_re_encoded(
    make_gateway: GatewayFactory, fake_openai: FakeUpstream
) -> None:
    own = await make_gateway([remote(fake_openai)])
    body = json.loads(ODD) | {"priority": 3}
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert json.loads(fake_openai.raw[0]) == json.loads(ODD)  # same content, no "priority"


async def test_a_whole_answer_has_a_length_and_a_stream_is_chunked(
    make_gateway: GatewayFactory, fake_openai: FakeUpstream
) -> None:
    own = await make_gateway([remote(fake_openai)])
    msg = [{"role": "user", "content": "hi"}]
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        whole = await http.post("/v1/chat/completions", json={"model": "gpt-fake", "messages": msg})
        streamed = await http.post("/v1/chat/completions",
                                   json={"model": "gpt-fake", "messages": msg, "stream": True})  # fmt: skip
    assert whole.status_code == 200
    assert whole.headers["Content-Length"] == str(len(whole.content))
    assert "chunked" not in whole.headers.get("Transfer-Encoding", "")
    assert whole.json()["choices"][0]["message"]["content"] == "".join(fake_openai.tokens)
    assert whole.headers["X-Twolane-Job"]
    assert streamed.headers.get("Transfer-Encoding") == "chunked"
    assert b"data: [DONE]" in streamed.content
