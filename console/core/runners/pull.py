"""Model pulls as persistent local-lane jobs (kind ``pull``): ``twolane pull MODEL`` and
the gateway's ``POST /api/pull`` both queue one.

The runner streams Ollama's pull progress into ``job.meta`` through ``ctx.on_progress``
(``progress`` 0..1, ``completed``, ``total``, ``status``), writes status changes to the
job's log, and hands every progress line to listeners (the gateway streams them back to
the caller). Cancelling the job closes the upstream connection before ``run`` re-raises.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from console.core.models import Job, JobState
from console.core.runners.base import Outcome, RunContext
from console.core.runners.chat import upstream_headers
from console.core.upstreams import Upstream, route

# A listener gets each progress line as a dict, then None when the pull ends.
Listener = Callable[[dict[str, Any] | None], None]
# Bytes about to be downloaded -> None when they fit on the model disk, else why not.
SizeCheck = Callable[[int], Awaitable[str | None]]


def progress_facts(line: dict[str, Any]) -> dict[str, Any]:
    """Ollama's progress line as the job's progress facts."""
    facts: dict[str, Any] = {"status": str(line.get("status", ""))}
    total, completed = line.get("total"), line.get("completed")
    if isinstance(total, int) and total > 0:
        done = completed if isinstance(completed, int) else 0
        facts.update(total=total, completed=done, progress=round(min(1.0, done / total), 4))
    if facts["status"] == "success":
        facts["progress"] = 1.0
    return facts


class PullRunner:
    """Pulls ``job.spec.extra["model"]`` through the Ollama upstream that serves it."""

    def __init__(self, upstreams: Callable[[], list[Upstream]],
                 session: Callable[[], aiohttp.ClientSession], timeout: float = 6 * 3600) -> None:  # fmt: skip
        self._upstreams = upstreams
        self._session = session
        self.timeout = timeout
        self.listeners: dict[str, list[Listener]] = {}
        self.size_check: SizeCheck | None = None

    def listen(self, job_id: str, listener: Listener) -> Callable[[], None]:
        """Follow a pull's progress lines; returns the function that stops following."""
        self.listeners.setdefault(job_id, []).append(listener)

        def stop() -> None:
            group = self.listeners.get(job_id, [])
            if listener in group:
                group.remove(listener)
            if not group:
                self.listeners.pop(job_id, None)

        return stop

    def _tell(self, job_id: str, line: dict[str, Any] | None) -> None:
        for listener in list(self.listeners.get(job_id, [])):
            listener(line)

    async def run(self, job: Job, ctx: RunContext) -> Outcome:
        try:
            return await self._run(job, ctx)
        finally:
            self._tell(job.id, None)

    async def _run(self, job: Job, ctx: RunContext) -> Outcome:
        model = job.spec.extra.get("model")
        if not isinstance(model, str) or not model:
            return Outcome(JobState.FAILED, error="a pull job needs a model name")
        upstream = route(self._upstreams(), model)
        if upstream is None or upstream.kind != "ollama":
            why = "no upstream serves it" if upstream is None else f"upstream '{upstream.name}' is not Ollama"
            return Outcome(JobState.FAILED, error=f"cannot pull {model}: {why}; pulls go to an Ollama upstream")
        body = {"model": model, "stream": True}
        if job.spec.extra.get("insecure"):
            body["insecure"] = True
        ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_status = None
        layers: dict[str, int] = {}  # digest -> bytes, as Ollama announces them
        with ctx.log_path.open("a", encoding="utf-8") as log:
            log.write(f"pulling {model} from {upstream.name} ({upstream.root()})\n")
            async with asyncio.timeout(self.timeout):
                resp = await self._session().post(upstream.root() + "/api/pull", json=body,
                                                  headers=upstream_headers(upstream))  # fmt: skip
                try:
                    if resp.status >= 400:
                        text = (await resp.read())[:300].decode(errors="replace").strip()
                        log.write(f"upstream answered {resp.status}: {text}\n")
                        return Outcome(JobState.FAILED, error=f"pull failed ({resp.status}): {_error_text(text)}")
                    async for raw in resp.content:
                        try:
                            line = json.loads(raw)
                        except ValueError:
                            continue
                        if not isinstance(line, dict):
                            continue
                        self._tell(job.id, line)
                        if "error" in line:
                            log.write(f"error: {line['error']}\n")
                            return Outcome(JobState.FAILED, error=f"pull failed: {line['error']}")
                        facts = progress_facts(line)
                        too_big = await self._new_layer(line, layers, facts)
                        if too_big is not None:
                            log.write(f"stopped: {too_big}\n")
                            resp.close()
                            return Outcome(JobState.FAILED, error=f"not enough disk for {model}: {too_big}",
                                           meta={"size_bytes": sum(layers.values())})  # fmt: skip
                        ctx.on_progress(facts)
                        if facts["status"] != last_status:
                            last_status = facts["status"]
                            log.write(last_status + "\n")
                            log.flush()
                except BaseException:
                    resp.close()  # abort the download now, then report
                    raise
                resp.release()
        if last_status != "success":
            return Outcome(JobState.FAILED, error="the pull ended before Ollama reported success")
        return Outcome(JobState.SUCCEEDED, exit_code=0, meta={"progress": 1.0})


    async def _new_layer(self, line: dict[str, Any], layers: dict[str, int],
                         facts: dict[str, Any]) -> str | None:  # fmt: skip
        """Note a layer's size the first time Ollama names it; None when it fits."""
        digest, total = line.get("digest"), line.get("total")
        if not isinstance(digest, str) or not isinstance(total, int) or digest in layers:
            return None
        layers[digest] = total
        facts["size_bytes"] = sum(layers.values())
        if self.size_check is None:
            return None
        completed = line.get("completed")
        left = total - (completed if isinstance(completed, int) else 0)
        return await self.size_check(max(0, left))


def _error_text(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return text
