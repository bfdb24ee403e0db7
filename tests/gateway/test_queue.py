"""Queue behaviour through the gateway: one at a time locally, lanes never mix, priority,
disconnects, timeouts, retries, back-pressure, model affinity, the context policy."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from console.core.models import JobState, Lane
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import local, settled
from tests.helpers import until


def chat(model: str = "llama3.2:1b", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": False, **extra}


async def _queued(owner: Any, n: int) -> None:
    await until(lambda: len(owner.scheduler.queued(Lane.LOCAL)) == n, what=f"{n} queued")


def remote(fake: FakeUpstream) -> dict[str, Any]:
    return {"name": "cloud", "kind": "openai", "base_url": fake.url, "lane": "remote", "models": ["gpt-*"]}


async def test_sixteen_clients_the_local_upstream_never_sees_two(gateway: Any, fake: FakeUpstream) -> None:
    fake.delay = 0.01
    fake.token_delay = 0.002
    client = openai.AsyncOpenAI(base_url=gateway.gateway_url + "/v1", api_key="x", max_retries=0)

    async def one(i: int) -> str:
        if i % 2:
            stream = await client.chat.completions.create(
                model="llama3.2:1b", messages=[{"role": "user", "content": str(i)}], stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        reply = await client.chat.completions.create(
            model="llama3.2:1b", messages=[{"role": "user", "content": str(i)}])
        return reply.choices[0].message.content or ""

    answers = await asyncio.gather(*(one(i) for i in range(16)))
    assert answers == ["Hello, world!"] * 16
    assert fake.requests == 16 and fake.max_active == 1


async def test_local_and_remote_never_mix_and_remote_is_bounded(make_gateway: Any, fake: FakeUpstream,
                                                                fake_openai: FakeUpstream) -> None:  # fmt: skip
    fake_openai.models.append("gpt-4")
    fake.delay = fake_openai.delay = 0.02
    fake.peers, fake_openai.peers = [fake_openai], [fake]
    own = await make_gateway([remote(fake_openai), local(fake)], **{"lanes.remote.concurrency": 3})
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=30) as http:
        bodies = [chat("gpt-4" if i % 2 else "llama3.2:1b", str(i)) for i in range(24)]
        replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=b) for b in bodies))
    assert [r.status_code for r in replies] == [200] * 24
    assert fake.max_active == 1 and 1 < fake_openai.max_active <= 3
    assert fake.overlaps == 0 and fake_openai.overlaps == 0


async def test_priority_goes_ahead_of_waiting_requests(gateway: Any, http: httpx.AsyncClient,
                                                       fake: FakeUpstream) -> None:  # fmt: skip
    await gateway.scheduler.pause([Lane.LOCAL])
    tasks = []
    for text, prio, header in [("low1", None, None), ("low2", None, None), ("body", True, None),
                               ("header", None, "5")]:  # fmt: skip
        body = chat(text=text, **({"priority": prio} if prio is not None else {}))
        headers = {"X-Twolane-Priority": header} if header else {}
        tasks.append(asyncio.create_task(http.post("/api/chat", json=body, headers=headers)))
        await _queued(gateway, len(tasks))
    await gateway.scheduler.resume([Lane.LOCAL])
    assert [r.status_code for r in await asyncio.gather(*tasks)] == [200] * 4
    order = [body["messages"][0]["content"] for _, body in fake.calls]
    assert order == ["body", "header", "low1", "low2"]


async def test_disconnect_while_running_cancels_and_frees_the_lane(gateway: Any, http: httpx.AsyncClient,
                                                                   fake: FakeUpstream) -> None:  # fmt: skip
    fake.hang = True
    hung = asyncio.create_task(http.post("/api/chat", json=chat(text="stuck")))
    await until(lambda: fake.active == 1, what="upstream call running")
    waiting = asyncio.create_task(http.post("/api/chat", json=chat(text="next")))
    await until(lambda: len(gateway.scheduler.queued(Lane.LOCAL)) == 1)
    fake.hang = False
    hung.cancel()  # the client goes away
    reply = await waiting
    assert reply.status_code == 200
    assert fake.aborted == 1 and fake.max_active == 1
    jobs = {j.meta["client"]: j for j in await settled(gateway)}
    states = sorted((str(j.state), j.error) for j in jobs.values())
    assert states == [("cancelled", "client disconnected"), ("succeeded", None)]


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
async def test_disconnect_mid_stream_cancels_and_aborts_the_upstream(gateway: Any, fake: FakeUpstream,
                                                                     path: str) -> None:  # fmt: skip
    # Mid-stream the chunks are written from the job's task; a client gone must still
    # cancel the job (not fail it) and close the upstream call.
    fake.tokens = [f"t{i} " for i in range(200)]
    fake.token_delay = 0.02
    async with (httpx.AsyncClient(base_url=gateway.gateway_url, timeout=20) as http,
                http.stream("POST", path, json=chat(stream=True)) as reply):  # fmt: skip
        lines = reply.aiter_lines()
        for _ in range(3):
            await anext(lines)
    await until(lambda: fake.active == 0, what="upstream call closed")
    [job] = await settled(gateway)
    assert job.state is JobState.CANCELLED  # not failed: the write error is the handler's
    assert job.error == "client disconnected"
    assert fake.aborted == 1 and fake.requests == 1


async def test_disconnect_while_queued_cancels_the_job(gateway: Any, http: httpx.AsyncClient) -> None:
    await gateway.scheduler.pause([Lane.LOCAL])
    task = asyncio.create_task(http.post("/api/chat", json=chat()))
    await until(lambda: len(gateway.scheduler.queued(Lane.LOCAL)) == 1)
    task.cancel()
    await until(lambda: not gateway.scheduler.queued(Lane.LOCAL), what="queued job cancelled")
    [job] = await settled(gateway)
    assert job.state is JobState.CANCELLED and job.error == "client disconnected"


async def test_cancel_from_the_console_answers_the_client(gateway: Any, http: httpx.AsyncClient,
                                                          fake: FakeUpstream) -> None:  # fmt: skip
    fake.hang = True
    task = asyncio.create_task(http.post("/v1/chat/completions", json=chat()))
    await until(lambda: fake.active == 1)
    [job] = gateway.scheduler.running()
    await gateway.scheduler.cancel(job.id)
    reply = await task
    assert reply.status_code == 503 and reply.json()["error"]["message"].endswith("cancelled")
    assert fake.aborted == 1


async def test_cancel_of_a_queued_request_from_the_console_answers_the_client(
        gateway: Any, http: httpx.AsyncClient, fake: FakeUpstream) -> None:  # fmt: skip
    # Its runner never runs: only the job's end can tell the waiting handler.
    await gateway.scheduler.pause([Lane.LOCAL])
    task = asyncio.create_task(http.post("/api/chat", json=chat()))
    await _queued(gateway, 1)
    [job] = gateway.scheduler.queued(Lane.LOCAL)
    await gateway.scheduler.cancel(job.id)
    reply = await asyncio.wait_for(task, 10)
    assert reply.status_code == 503 and reply.json()["error"].endswith("cancelled")
    assert reply.headers["X-Twolane-Job"] == job.id and fake.requests == 0
    assert not gateway.gw._replies  # nothing left behind for the next request


async def test_timeout_aborts_the_upstream_call_and_retries_once(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.timeout": 0.3})
    fake.hang = True
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/v1/chat/completions", json=chat())
    assert reply.status_code == 504
    assert reply.json()["error"]["type"] == "server_error"
    job = await own.scheduler.wait_done(reply.headers["X-Twolane-Job"])
    await until(lambda: fake.active == 0)
    assert fake.requests == 2 and fake.aborted == 2  # one retry by default, both aborted
    assert job.state is JobState.FAILED and job.meta["upstream_attempts"] == 2


async def test_stalled_stream_is_aborted_after_the_idle_timeout(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.stream_idle_timeout": 0.3})
    fake.stall_after = 2
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/api/chat", json=chat(stream=True))
    assert reply.status_code == 200 and reply.text.count("\n") == 2  # the stream ended early
    job = await own.scheduler.wait_done(reply.headers["X-Twolane-Job"])
    await until(lambda: fake.active == 0)
    assert job.state is JobState.FAILED and "produced nothing" in (job.error or "")
    assert fake.requests == 1  # part of the answer was sent: no retry


async def test_a_stream_longer_than_the_idle_timeout_is_not_cut_while_it_flows(
        make_gateway: Any, fake: FakeUpstream) -> None:  # fmt: skip
    # One idle timer per stream: it fires while chunks keep coming and must move on.
    own = await make_gateway([local(fake)], **{"gateway.stream_idle_timeout": 0.5})
    fake.tokens = [f"t{i} " for i in range(30)]
    fake.token_delay = 0.05  # 1.5 s in all, 0.05 s between chunks
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/api/chat", json=chat(stream=True))
    assert reply.status_code == 200 and reply.text.count("\n") == 31  # every token and the end
    job = await own.scheduler.wait_done(reply.headers["X-Twolane-Job"])
    assert job.state is JobState.SUCCEEDED


async def test_a_stream_silent_from_the_start_is_retried_then_504(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.stream_idle_timeout": 0.3})
    fake.stall_after = 0  # headers, then nothing
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/api/chat", json=chat(stream=True))
    assert reply.status_code == 504 and "produced nothing" in reply.json()["error"]
    await until(lambda: fake.active == 0)
    assert fake.requests == 2 and fake.aborted == 2  # nothing reached the client: one retry


async def test_server_errors_retry_but_client_errors_do_not(gateway: Any, http: httpx.AsyncClient,
                                                            fake: FakeUpstream) -> None:  # fmt: skip
    fake.fail, fake.fail_times = 500, 1
    reply = await http.post("/api/chat", json=chat())
    assert reply.status_code == 200 and fake.requests == 2
    reply = await http.post("/api/chat", json=chat(model="no-such-model"))
    assert reply.status_code == 404 and reply.json() == {"error": "model 'no-such-model' not found"}
    assert fake.requests == 3
    fake.fail, fake.fail_times = 503, None
    reply = await http.post("/v1/chat/completions", json=chat())
    assert reply.status_code == 503 and "injected failure" in reply.json()["error"]["message"]


async def test_waiting_cap_answers_503_with_retry_after(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.max_waiting": 2})
    await own.scheduler.pause([Lane.LOCAL])
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        waiting = [asyncio.create_task(http.post("/api/chat", json=chat())) for _ in range(2)]
        await until(lambda: len(own.scheduler.queued(Lane.LOCAL)) == 2)
        refused = await http.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "overloaded"
        refused = await http.post("/api/chat", json=chat())
        assert refused.status_code == 503 and "gateway.max_waiting" in refused.json()["error"]
        await own.scheduler.resume([Lane.LOCAL])
        assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]


async def test_model_affinity_reuses_the_loaded_model(gateway: Any, http: httpx.AsyncClient,
                                                      fake: FakeUpstream) -> None:  # fmt: skip
    assert (await http.post("/api/chat", json=chat("llama3.2:1b"))).status_code == 200
    await gateway.scheduler.pause([Lane.LOCAL])
    tasks = []
    for model in ["qwen2.5:0.5b", "llama3.2:1b", "qwen2.5:0.5b", "llama3.2:1b"]:
        tasks.append(asyncio.create_task(http.post("/api/chat", json=chat(model))))
        await _queued(gateway, len(tasks))
    await gateway.scheduler.resume([Lane.LOCAL])
    await asyncio.gather(*tasks)
    order = [body["model"] for _, body in fake.calls[1:]]
    assert order == ["llama3.2:1b", "llama3.2:1b", "qwen2.5:0.5b", "qwen2.5:0.5b"]
    health = (await http.get("/health")).json()
    assert health["reloads_avoided"] == 2 and health["loaded_model"] == "qwen2.5:0.5b"
    from console.client import AsyncControlClient
    from console.core import paths

    control = AsyncControlClient(paths.socket_path(gateway.home))
    try:
        shown = await control.request("GET", "/gateway")  # what an attached console reads
    finally:
        await control.aclose()
    assert shown["reloads_avoided"] == 2 and shown["url"] == gateway.gateway_url
    jobs = await settled(gateway)
    assert sum(1 for j in jobs if j.meta.get("affinity")) == 2
    assert max(j.meta.get("reloads_avoided", 0) for j in jobs) == 2


async def test_a_shell_job_with_a_model_counts_for_affinity(gateway: Any, http: httpx.AsyncClient) -> None:
    from console.core import jobs

    shell = jobs.new_job(["true"], lane=Lane.LOCAL, extra={"model": "qwen2.5:0.5b"})
    await gateway.scheduler.submit(shell)
    assert (await gateway.scheduler.wait_done(shell.id)).state is JobState.SUCCEEDED
    assert (await http.get("/health")).json()["loaded_model"] == "qwen2.5:0.5b"


async def test_retry_after_follows_the_lanes_recent_run_times(gateway: Any, http: httpx.AsyncClient) -> None:
    assert gateway.gw.retry_after(Lane.LOCAL, 100) == 100  # nothing ran yet: 1 s a request
    for _ in range(3):
        assert (await http.post("/api/chat", json=chat())).status_code == 200
    await settled(gateway)
    assert gateway.gw.retry_after(Lane.LOCAL, 100) < 100  # the fake answers at once


async def test_ollama_gets_identical_context_options(make_gateway: Any, fake: FakeUpstream) -> None:
    own = await make_gateway([local(fake)], **{"gateway.max_ctx": 8192})
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        for body in [chat(), chat(options={"num_ctx": 2048, "temperature": 0.1}), chat(numCtx=16384),
                     chat(), chat(num_ctx=1024)]:  # fmt: skip
            assert (await http.post("/api/chat", json=body)).status_code == 200
    sent = [(body.get("options") or {}).get("num_ctx") for _, body in fake.calls]
    assert sent == [None, 2048, 8192, 8192, 8192]
    assert fake.calls[1][1]["options"]["temperature"] == 0.1
    assert all("numCtx" not in body and "num_ctx" not in body for _, body in fake.calls)


async def test_a_non_json_upstream_error_is_reshaped(gateway: Any, http: httpx.AsyncClient,
                                                     fake: FakeUpstream) -> None:  # fmt: skip
    fake.fail, fake.fail_text = 418, "<html>teapot</html>"
    reply = await http.post("/v1/chat/completions", json=chat())
    assert reply.status_code == 418 and "teapot" in reply.json()["error"]["message"]
    reply = await http.post("/api/chat", json=chat())
    assert reply.status_code == 418 and "teapot" in reply.json()["error"]


@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_upstream_down_gives_502_in_the_api_shape(make_gateway: Any, kind: str) -> None:
    up = {"name": "gone", "kind": kind, "base_url": "http://127.0.0.1:9", "lane": "local", "models": ["*"]}
    own = await make_gateway([up])
    async with httpx.AsyncClient(base_url=own.gateway_url, timeout=20) as http:
        reply = await http.post("/v1/chat/completions", json=chat())
        assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_error"
        tags = await http.get("/api/tags")
        assert tags.status_code == 200 and tags.json() == {"models": []}


async def test_a_request_whose_random_id_is_taken_gets_a_new_one_and_its_answer(
    gateway: Any, http: httpx.AsyncClient, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """Ids are 6 random characters: among 100k stored jobs a new one meets an old id about
    once in 9,000. Such a request (started at once, or queued behind another) is stored
    under a new id and answered as any other; it was a 500 and a lost request."""
    from console.core import jobs

    first = await http.post("/api/chat", json=chat(text="first"))
    taken = first.headers["X-Twolane-Job"]
    drawn = iter([taken, None, taken])  # idle, busy, queued: None draws a random id
    real = jobs.new_job_id
    monkeypatch.setattr(jobs, "new_job_id", lambda: next(drawn, None) or real())
    idle = await http.post("/api/chat", json=chat(text="idle lane"))  # started at once
    fake.delay = 0.3
    busy = asyncio.create_task(http.post("/api/chat", json=chat(text="busy")))
    await until(lambda: fake.active == 1, what="upstream call running")
    queued = asyncio.create_task(http.post("/api/chat", json=chat(text="queued")))  # waits
    await _queued(gateway, 1)
    replies = [idle, await busy, await queued]
    assert [r.status_code for r in replies] == [200, 200, 200]
    ids = {taken} | {r.headers["X-Twolane-Job"] for r in replies}
    assert len(ids) == 4
    stored = {j.id: j for j in await settled(gateway)}
    assert set(stored) == ids and all(j.state is JobState.SUCCEEDED for j in stored.values())
    assert stored[idle.headers["X-Twolane-Job"]].meta.get("client") is not None
    # Cancelled while queued, its runner never runs: only its end, published under the
    # new id, can tell the waiting handler. A waiting request's row lands with the next
    # commit (here the cancel's), which is when its taken id is noticed.
    drawn = iter([taken])
    await gateway.scheduler.pause([Lane.LOCAL])
    waiting = asyncio.create_task(http.post("/api/chat", json=chat(text="cancelled")))
    await _queued(gateway, 1)
    [job] = gateway.scheduler.queued(Lane.LOCAL)
    await gateway.scheduler.cancel(job.id)
    assert job.id not in ids
    reply = await asyncio.wait_for(waiting, 10)
    assert reply.status_code == 503 and reply.headers["X-Twolane-Job"] == job.id
    assert not gateway.gw._replies
