"""The real `openai` and `ollama` Python clients against the gateway, streaming and not."""

from __future__ import annotations

from typing import Any

import ollama
import openai
import pytest

from console.core.models import JobState, Lane
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import local, settled

MSG = [{"role": "user", "content": "a secret prompt 7f3a"}]


def _oa(owner: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=owner.gateway_url + "/v1", api_key="unused", max_retries=0)


async def test_openai_chat_whole_and_streaming(gateway: Any, fake: FakeUpstream) -> None:
    client = _oa(gateway)
    reply = await client.chat.completions.create(model="llama3.2:1b", messages=MSG)
    assert reply.choices[0].message.content == "Hello, world!"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    stream = await client.chat.completions.create(model="llama3.2:1b", messages=MSG, stream=True)
    parts = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p or "" for p in parts) == "Hello, world!"
    assert [path for path, _ in fake.calls] == ["/v1/chat/completions"] * 2
    jobs = await settled(gateway)
    assert [(j.kind, j.state, j.lane) for j in jobs] == [("chat", JobState.SUCCEEDED, Lane.LOCAL)] * 2
    meta = jobs[0].meta
    assert meta["model"] == "llama3.2:1b" and meta["client"].startswith("127.0.0.1:")
    assert meta["bytes_in"] > 0 and meta["bytes_out"] > 0 and "duration_ms" in meta
    assert meta["completion_tokens"] == 4 and meta["upstream_status"] == 200


async def test_openai_completions_embeddings_and_models(gateway: Any, fake: FakeUpstream) -> None:
    client = _oa(gateway)
    done = await client.completions.create(model="qwen2.5:0.5b", prompt="once upon")
    assert done.choices[0].text == "Hello, world!"
    emb = await client.embeddings.create(model="nomic-embed-text", input=["a", "b"])
    assert len(emb.data) == 2 and emb.data[0].embedding == [0.1, 0.2, 0.3]
    models = [m.id async for m in client.models.list()]
    assert models == fake.models
    kinds = sorted(j.kind for j in await settled(gateway))
    assert kinds == ["completion", "embed"]


async def test_ollama_client_chat_generate_embed_stream_and_not(gateway: Any, fake: FakeUpstream) -> None:
    client = ollama.AsyncClient(host=gateway.gateway_url)
    reply = await client.chat(model="llama3.2:1b", messages=MSG)
    assert reply.message.content == "Hello, world!" and reply.eval_count == 4
    parts = [p.message.content async for p in await client.chat(model="llama3.2:1b", messages=MSG, stream=True)]
    assert "".join(parts) == "Hello, world!"
    gen = await client.generate(model="llama3.2:1b", prompt="hi")
    assert gen.response == "Hello, world!"
    emb = await client.embed(model="nomic-embed-text", input=["x"])
    assert emb.embeddings == [[0.1, 0.2, 0.3]]
    assert [m.model for m in (await client.list()).models] == fake.models
    assert (await client.ps()).models == []
    assert (await client.show("llama3.2:1b")).template == "{{ .Prompt }}"
    with pytest.raises(ollama.ResponseError) as err:
        await client.show("gone-model")
    assert err.value.status_code == 404 and "gone-model" in str(err.value)
    jobs = await settled(gateway)
    assert sorted(j.kind for j in jobs) == ["chat", "chat", "completion", "embed"]
    assert all(j.meta["api"] == "ollama" for j in jobs)


async def test_prompts_are_not_stored_unless_asked(make_gateway: Any, fake: FakeUpstream, home) -> None:  # type: ignore[no-untyped-def]
    own = await make_gateway([local(fake)])
    await _oa(own).chat.completions.create(model="llama3.2:1b", messages=MSG)
    [job] = await settled(own)
    assert "7f3a" not in str(job.to_dict())
    await own.stop()
    own = await make_gateway([local(fake)], **{"gateway.store_prompts": True})
    await _oa(own).chat.completions.create(model="llama3.2:1b", messages=MSG)
    stored = [j for j in await settled(own) if "body" in j.spec.extra]
    assert stored and stored[0].spec.extra["body"]["messages"] == MSG


async def test_ollama_pull_streams_progress_and_is_a_local_pull_job(gateway: Any, fake: FakeUpstream) -> None:
    client = ollama.AsyncClient(host=gateway.gateway_url)
    statuses = [p.status async for p in await client.pull("tinyllama", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    whole = await client.pull("tinyllama:2", stream=False)
    assert whole.status == "success"
    jobs = [j for j in await settled(gateway) if j.kind == "pull"]
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 2
    assert jobs[0].lane is Lane.LOCAL
    assert jobs[0].meta["progress"] == 1.0 and jobs[0].meta["total"] == fake.pull_total


async def test_openai_upstream_in_the_remote_lane_gets_its_key(make_gateway: Any, fake_openai: FakeUpstream,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_CLOUD_KEY", "sk-test-123")
    own = await make_gateway([{"name": "cloud", "kind": "openai", "base_url": fake_openai.url + "/v1",
                               "lane": "remote", "models": ["gpt-*"], "api_key_env": "FAKE_CLOUD_KEY"}])  # fmt: skip
    reply = await _oa(own).chat.completions.create(model="gpt-fake", messages=MSG, extra_body={"priority": 3})
    assert reply.choices[0].message.content == "Hello, world!"
    assert fake_openai.headers["Authorization"] == "Bearer sk-test-123"
    assert "priority" not in fake_openai.calls[0][1]  # extensions never reach a stock server
    [job] = await settled(own)
    assert job.lane is Lane.REMOTE and job.priority == 3


async def test_ollama_clients_reach_an_openai_compatible_upstream(make_gateway: Any,
                                                                  fake_openai: FakeUpstream) -> None:  # fmt: skip
    own = await make_gateway([{"name": "llamacpp", "kind": "openai", "base_url": fake_openai.url,
                               "lane": "local", "models": ["*"]}])  # fmt: skip
    client = ollama.AsyncClient(host=own.gateway_url)
    reply = await client.chat(model="gpt-fake", messages=MSG, options={"temperature": 0.2, "num_predict": 9})
    assert reply.message.content == "Hello, world!" and reply.done and reply.eval_count == 4
    sent = fake_openai.calls[-1]
    assert sent[0] == "/v1/chat/completions" and sent[1]["temperature"] == 0.2 and sent[1]["max_tokens"] == 9
    parts = [p async for p in await client.chat(model="gpt-fake", messages=MSG, stream=True)]
    assert "".join(p.message.content for p in parts) == "Hello, world!"
    assert parts[-1].done and parts[-1].eval_count == 4
    gen = await client.generate(model="gpt-fake", prompt="once", system="be brief")
    assert gen.response == "Hello, world!"
    assert fake_openai.calls[-1][1]["messages"][0] == {"role": "system", "content": "be brief"}
    streamed = [p.response async for p in await client.generate(model="gpt-fake", prompt="x", stream=True)]
    assert "".join(streamed) == "Hello, world!"
    emb = await client.embed(model="text-embed-fake", input=["a", "b"])
    assert emb.embeddings == [[0.1, 0.2, 0.3]] * 2
    with pytest.raises(ollama.ResponseError) as err:
        await client.chat(model="missing", messages=MSG)
    assert err.value.status_code == 404 and "model 'missing' not found" in str(err.value)
    assert [j.state for j in await settled(own)].count(JobState.SUCCEEDED) == 5
