"""The gateway's HTTP surface: error shapes, body cap, fuzzed bodies, CORS, the API key,
where it may listen."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.core.config import ConfigError
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import local

POST_ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/chat",
               "/api/generate", "/api/embed", "/api/embeddings", "/api/pull", "/api/show"]  # fmt: skip


def openai_shaped(body: Any) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and {"message", "type", "code"} <= set(err) and bool(err["message"])


def ollama_shaped(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"])


async def test_404_and_405_in_each_apis_shape(http: httpx.AsyncClient) -> None:
    reply = await http.get("/v1/chat/completions")
    assert reply.status_code == 405 and openai_shaped(reply.json()) and "POST" in reply.headers["Allow"]
    reply = await http.get("/api/chat")
    assert reply.status_code == 405 and ollama_shaped(reply.json())
    reply = await http.post("/v1/nope", json={})
    assert reply.status_code == 404 and openai_shaped(reply.json())
    reply = await http.get("/api/nope")
    assert reply.status_code == 404 and ollama_shaped(reply.json())


async def test_unknown_model_lists_what_is_served(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake, models=["llama*", "qwen2.5:0.5b"])])
    async with httpx.AsyncClient(base_url=own.gateway_url) as http:
        reply = await http.post("/v1/chat/completions", json={"model": "gpt-4", "messages": []})
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
        assert "served: llama*, qwen2.5:0.5b" in reply.json()["error"]["message"]
        reply = await http.post("/api/generate", json={"model": "gpt-4", "prompt": "x"})
        assert reply.status_code == 404 and "llama*" in reply.json()["error"]
        models = (await http.get("/v1/models")).json()["data"]
        assert [m["id"] for m in models] == ["llama3.2:1b", "qwen2.5:0.5b"]
    assert fake.requests == 0


async def test_body_over_the_cap_is_413(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.max_body_bytes": 2000})
    big = {"model": "llama3.2:1b", "prompt": "x" * 5000}
    async with httpx.AsyncClient(base_url=own.gateway_url) as http:
        reply = await http.post("/v1/completions", json=big)
        assert reply.status_code == 413 and openai_shaped(reply.json())
        reply = await http.post("/api/generate", json=big)
        assert reply.status_code == 413 and "gateway.max_body_bytes" in reply.json()["error"]
    assert fake.requests == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["llama3.2:1b", "gpt-fake", "", "nope"]) | JSON,
    "messages": JSON, "prompt": JSON, "input": JSON, "stream": JSON, "options": JSON,
    "priority": JSON, "num_ctx": JSON, "numCtx": JSON, "name": JSON, "insecure": JSON,
})  # fmt: skip
BODIES = (
    FIELDS.map(lambda d: json.dumps(d).encode())
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(POST_ROUTES), body=BODIES,
       priority=st.none() | st.text(max_size=8))  # fmt: skip
async def test_fuzzed_bodies_never_give_a_500(http: httpx.AsyncClient, route: str, body: bytes,
                                              priority: str | None) -> None:  # fmt: skip
    await _post_fuzz(http, route, body, priority)


@pytest.fixture
async def http_translating(make_gateway: Any, fake_openai: FakeUpstream) -> Any:
    """Ollama routes in front of an OpenAI-compatible upstream (the translating path)."""
    own = await make_gateway([local(fake_openai)])
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as client:
        yield client


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from([r for r in POST_ROUTES if r.startswith("/api/")]), body=BODIES)
async def test_fuzzed_bodies_through_the_translation_never_give_a_500(
        http_translating: httpx.AsyncClient, route: str, body: bytes) -> None:  # fmt: skip
    await _post_fuzz(http_translating, route, body, None)


async def _post_fuzz(http: httpx.AsyncClient, route: str, body: bytes, priority: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    # Only values a client can put on the wire (HTTP forbids leading/trailing blanks;
    # h11 refuses to send " "): the server's handling is what is under test.
    if (priority is not None and priority.isascii() and priority.isprintable()
            and priority == priority.strip()):
        headers["X-Twolane-Priority"] = priority
    reply = await http.post(route, content=body, headers=headers)
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert (openai_shaped if route.startswith("/v1/") else ollama_shaped)(reply.json())


async def test_cors_is_off_for_pages_and_presets_allow_extensions(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)])
    body = {"model": "llama3.2:1b", "prompt": "x", "stream": False}
    async with httpx.AsyncClient(base_url=own.gateway_url) as http:
        # A page may send a "simple" POST without a preflight: it must not reach the model.
        reply = await http.post("/api/generate", content=json.dumps(body),
                                headers={"Origin": "https://evil.example", "Content-Type": "text/plain"})  # fmt: skip
        assert reply.status_code == 403 and "gateway.cors_origins" in reply.json()["error"]
        assert "Access-Control-Allow-Origin" not in reply.headers
        pre = await http.options("/v1/chat/completions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert pre.status_code == 403
    assert fake.requests == 0
    await own.stop()
    own = await make_gateway([local(fake)], **{"gateway.cors_origins": ["chrome-extension://*"]})
    origin = "chrome-extension://abcdef"
    async with httpx.AsyncClient(base_url=own.gateway_url) as http:
        pre = await http.options("/v1/chat/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})  # fmt: skip
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == origin
        assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        reply = await http.post("/api/generate", json=body, headers={"Origin": origin})
        assert reply.status_code == 200 and reply.headers["Access-Control-Allow-Origin"] == origin
        reply = await http.post("/api/generate", json=body, headers={"Origin": "moz-extension://x"})
        assert reply.status_code == 403


async def test_a_foreign_host_header_is_refused_without_a_key(http: httpx.AsyncClient,
                                                              fake: FakeUpstream) -> None:  # fmt: skip
    reply = await http.get("/api/tags", headers={"Host": "evil.example:11500"})
    assert reply.status_code == 403 and "not this machine" in reply.json()["error"]
    for host in ("localhost:11500", "127.0.0.1", "[::1]:11500"):
        assert (await http.get("/api/tags", headers={"Host": host})).status_code == 200, host


async def test_api_key_is_required_when_set(make_gateway: Any, fake: FakeUpstream) -> None:
    import openai

    own = await make_gateway([local(fake)], **{"gateway.api_key": "s3cret"})
    wrong = openai.AsyncOpenAI(base_url=own.gateway_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await wrong.chat.completions.create(model="llama3.2:1b", messages=[])
    right = openai.AsyncOpenAI(base_url=own.gateway_url + "/v1", api_key="s3cret", max_retries=0)
    reply = await right.chat.completions.create(model="llama3.2:1b", messages=[])
    assert reply.choices[0].message.content == "Hello, world!"
    async with httpx.AsyncClient(base_url=own.gateway_url) as http:
        reply = await http.get("/api/tags")
        assert reply.status_code == 401 and ollama_shaped(reply.json())
    assert fake.requests == 1


def test_refuses_a_non_loopback_host_without_a_key(home) -> None:  # type: ignore[no-untyped-def]
    from console.api.gateway import Gateway
    from console.core import config

    cfg = config.load()
    cfg.set("gateway.host", "0.0.0.0")
    with pytest.raises(ConfigError, match="set gateway.api_key"):
        Gateway(cfg)
    cfg.set("upstreams", [{"name": "x", "kind": "llama", "base_url": "http://a"}])
    cfg.set("gateway.host", "127.0.0.1")
    with pytest.raises(ConfigError, match="kind must be"):
        Gateway(cfg)


async def test_a_taken_port_leaves_the_owner_running_without_a_gateway(
        make_gateway: Any, fake: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        own = await make_gateway([local(fake)], **{"gateway.port": port})
        assert own.gateway_url is None
        assert own.scheduler.accepting and own.scheduler.runners["pull"] is own.gw.pull_runner
    assert f"cannot listen on 127.0.0.1:{port} (the port is in use)" in caplog.text


async def test_health_root_and_version(http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health["ok"] is True and health["reloads_avoided"] == 0
    assert health["upstreams"][0]["lane"] == "local" and "local" in health["lanes"]
    assert (await http.get("/")).status_code == 200
    assert (await http.get("/api/version")).json() == {"version": "0.0.0-fake"}


async def test_disabled_gateway_still_runs_pulls(make_gateway: Any, fake: FakeUpstream) -> None:
    from console.core import jobs as jobs_mod

    own = await make_gateway([local(fake)], **{"gateway.enabled": False, "gateway.host": "0.0.0.0"})
    assert own.gateway_url is None  # no listener, so no key is needed for a public host
    job = jobs_mod.new_job([], kind="pull", lane="local", name="pull m", extra={"model": "tinyllama"})
    await own.prepare_job(job)
    await own.scheduler.submit(job)
    done = await own.scheduler.wait_done(job.id)
    assert done.state.value == "succeeded" and done.meta["progress"] == 1.0
