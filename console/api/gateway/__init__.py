"""The LLM gateway: an owner extension serving OpenAI- and Ollama-compatible HTTP on
``gateway.host:gateway.port`` inside the owner's event loop, queuing every model request
through the lanes. It also registers the persistent ``pull`` runner (so ``twolane pull``
works even with the HTTP side turned off) and the local lane's model-affinity picker."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from console.core import events, jobs
from console.core.affinity import Affinity
from console.core.config import Config, ConfigError
from console.core.errors import UserError
from console.core.models import FINISHED_STATES, Job, JobState, Lane
from console.core.runners.chat import Reply
from console.core.runners.pull import PullRunner
from console.core.runners.wire import WireSession
from console.core.signals import models
from console.core.signals.predict import GB, MB, ModelShape, largest_fitting_ctx
from console.core.upstreams import ContextPolicy, Upstream, parse_upstreams, route

if TYPE_CHECKING:
    from console.owner import Owner

log = logging.getLogger(__name__)

PULL_TIMEOUT = 6 * 3600.0
SHAPE_RETRY = 30.0  # seconds before a model whose shape could not be read is asked again
ROUTES_KEPT = 1024  # model names whose upstream is kept (Gateway.route)
# An event's lane name to its Lane: a lookup, where Lane(name) runs Enum's Python-level
# __call__ (~6k instructions, once per gateway request).
_LANES = {str(lane): lane for lane in Lane}


@functools.lru_cache(maxsize=256)  # asked for every request's Host header
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, api_key: str) -> None:
    """Refuse a non-loopback address without a key: anyone on the network could use the models."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"gateway.host = {host!r} is reachable from other machines; set gateway.api_key "
            "first (or use 127.0.0.1)"
        )


class Gateway:
    """The owner extension (``start(owner)`` / ``stop()``); see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstreams: list[Upstream] = parse_upstreams(config.get("upstreams"))
        self.enabled: bool = config.get("gateway.enabled")
        self.host: str = config.get("gateway.host")
        self.port: int = config.get("gateway.port")
        self.api_key: str = config.get("gateway.api_key")
        self.cors_origins: list[str] = [str(o) for o in config.get("gateway.cors_origins")]
        self.max_body: int = config.get("gateway.max_body_bytes")
        self.max_waiting: int = config.get("gateway.max_waiting")
        self.timeout: float = config.get("gateway.timeout")
        self.idle_timeout: float = config.get("gateway.stream_idle_timeout")
        self.retries: int = config.get("gateway.retries")
        self.backoff: float = config.get("gateway.retry_backoff")
        self.store_prompts: bool = config.get("gateway.store_prompts")
        self.context = ContextPolicy(max_ctx=config.get("gateway.max_ctx"))
        # The memory cap on contexts uses the memory gate's numbers.
        self.headroom_bytes = int(config.get("gates.memory_headroom_gb") * GB)
        self.overhead_bytes = int(config.get("signals.runtime_overhead_mb") * MB)
        self._shapes: dict[tuple[str, str], tuple[ModelShape | None, float]] = {}
        self.affinity = Affinity(
            window=config.get("gateway.affinity_window"),
            window_seconds=config.get("gateway.affinity_window_seconds"),
        )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"gateway.port must be 0..65535, got {self.port}")
        if self.max_body <= 0 or self.max_waiting <= 0:
            raise ConfigError("gateway.max_body_bytes and gateway.max_waiting must be positive")
        if self.enabled:
            check_listen(self.host, self.api_key)
        self.pull_runner = PullRunner(lambda: self.upstreams, self.session, PULL_TIMEOUT)
        self.url: str | None = None
        self.owner: Owner
        self._session: aiohttp.ClientSession | None = None
        self._wire: WireSession | None = None  # calls to plain-http upstreams
        self._runner: web.AppRunner | None = None
        self._listener: events.Listener | None = None
        self._durations: dict[Lane, float] = {lane: 1.0 for lane in Lane}
        # Handlers waiting for their job: job id -> its reply, told when the job ends.
        self._replies: dict[str, Reply] = {}
        self._routes: dict[str, Upstream | None] = {}  # route()'s answers by model name

    # ---- extension life cycle --------------------------------------------------------

    async def start(self, owner: Owner) -> None:
        self.owner = owner
        scheduler = owner.scheduler
        scheduler.runners["pull"] = self.pull_runner
        scheduler.picker = lambda lane, queue: self.affinity.pick(lane, queue, scheduler.clock.now())
        owner.job_hooks.append(self._check_job)
        owner.extra_routes.append(("GET", "/gateway", self._control_status))
        # A listener, not a subscription: called as the event is published, so a job's
        # end reaches its handler without waking a watch task (once per request).
        self._listener = owner.bus.listen({events.JOB, events.RENAMED}, self._on_job)
        if not self.enabled:
            return
        from console.api.gateway.server import build_app

        # Handler cancellation: a client that disconnects cancels its handler, which
        # cancels its job and aborts the upstream call.
        self._runner = web.AppRunner(build_app(self), handle_signals=False, access_log=None,
                                     handler_cancellation=True, shutdown_timeout=1.0)  # fmt: skip
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            # Another program (or another twolane) has the port: the owner still runs its
            # lanes; only the gateway is missing, and the user is told why.
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else str(exc)
            message = (f"gateway not started: cannot listen on {self.host}:{self.port} ({why}); "
                       "set gateway.port or `twolane serve --port N`")  # fmt: skip
            log.warning(message)
            owner.bus.publish(events.LOG, {"level": "warning", "message": message})
            await self._runner.cleanup()
            self._runner = None
            return
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        owner.gateway_url = self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._wire is not None:
            await self._wire.close()
            self._wire = None

    def status(self) -> dict[str, Any]:
        """What the console shows about the gateway (also ``GET /health`` on the gateway)."""
        return {
            "url": self.url, "loaded_model": self.affinity.loaded,
            "reloads_avoided": self.affinity.reloads_avoided, "context": dict(self.context.by_model),
            "upstreams": [{"name": u.name, "kind": u.kind, "lane": str(u.lane), "models": list(u.models)}
                          for u in self.upstreams],
        }  # fmt: skip

    async def _control_status(self, request: web.Request) -> web.Response:
        """``GET /gateway`` on the control socket, for an attached console."""
        return web.json_response(self.status())

    def session(self) -> aiohttp.ClientSession:
        """The shared upstream HTTP session (pooled connections), made on first use."""
        if self._session is None or self._session.closed:
            # No session-wide timeouts: the runners apply the per-attempt and idle limits.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
            )
        return self._session

    def call_session(self, url: str) -> aiohttp.ClientSession | WireSession:
        """The session a request's upstream call goes through: the lean client for a
        plain-http upstream (a model server on this machine or the LAN), aiohttp's for
        https (its TLS)."""
        if not url.startswith("http://"):
            return self.session()
        if self._wire is None or self._wire.closed:
            self._wire = WireSession()
        return self._wire

    def route(self, model: str) -> Upstream | None:
        """The upstream serving ``model`` (``upstreams.route``), kept per model name: the
        upstreams do not change while the owner runs. At most ``ROUTES_KEPT`` names."""
        if model in self._routes:
            return self._routes[model]
        if len(self._routes) >= ROUTES_KEPT:
            self._routes.clear()  # clients choose the names: keep the dict bounded
        found = self._routes[model] = route(self.upstreams, model)
        return found

    # ---- context cap by predicted footprint ---------------------------------------------

    async def fit_cap(self, upstream: Upstream, model: str, asked: int) -> int | None:
        """The largest context up to ``asked`` at which the model's predicted footprint
        fits in available memory minus ``gates.memory_headroom_gb``; None when its shape
        or the memory reading is unknown, or when it fits at no context (the memory gate
        holds it then), so only ``max_ctx`` caps."""
        sampler = getattr(self.owner, "sampler", None)
        latest = sampler.latest() if sampler is not None else None
        if not latest or not latest.get("mem_available"):
            return None
        shape = await self._shape(upstream, model)
        if shape is None:
            return None
        budget = int(latest["mem_available"]) - self.headroom_bytes
        return largest_fitting_ctx(shape, budget, upper=asked, overhead_bytes=self.overhead_bytes)

    async def _shape(self, upstream: Upstream, model: str) -> ModelShape | None:
        """The model's shape from its GGUF (a path as the model name, or the blob an Ollama
        upstream names) or Ollama's metadata and size; cached, failures retried later."""
        key = (upstream.name, model)
        now = self.owner.scheduler.clock.monotonic()
        hit = self._shapes.get(key)
        if hit is not None and (hit[0] is not None or now - hit[1] < SHAPE_RETRY):
            return hit[0]
        shape: ModelShape | None = None
        if upstream.kind == "ollama" or models.looks_like_path(model):
            try:
                shape, _ = await asyncio.to_thread(models.resolve, model, upstream.root())
            except UserError as exc:
                log.info("no footprint for %s: %s", model, exc)
        self._shapes[key] = (shape, now)
        return shape

    # ---- hooks -----------------------------------------------------------------------

    def note_started(self, job: Job) -> None:
        """A local job started: model-affinity bookkeeping, recorded in its meta."""
        if job.lane is not Lane.LOCAL:
            return
        if self.affinity.started(job, self.owner.scheduler.queued(Lane.LOCAL)):
            job.meta["affinity"] = "reused the loaded model"
        job.meta["reloads_avoided"] = self.affinity.reloads_avoided

    def expect_end(self, job_id: str, reply: Reply) -> None:
        """Tell ``reply`` when job ``job_id`` ends (until ``forget``): its handler learns
        of an end its runner did not report (cancelled, or ended before it started)."""
        self._replies[job_id] = reply

    def forget(self, job_id: str) -> None:
        self._replies.pop(job_id, None)

    def _on_job(self, event: events.Event) -> None:
        """Each job event, as it is published: a job's end to its waiting handler, then
        affinity for local jobs the gateway did not start (shell jobs with --model) and
        recent run times for Retry-After."""
        data = event.data
        if event.kind == events.RENAMED:  # its id was taken when stored: the new one
            if data["old"] in self._replies:
                self._replies[data["id"]] = self._replies.pop(data["old"])
            return
        state = data.get("state")
        reply = self._replies.get(data.get("id"))  # type: ignore[arg-type]
        if reply is not None:
            if state in FINISHED_STATES:
                reply.end()
            elif state == JobState.RUNNING:
                return  # a request's runner does its affinity bookkeeping (on_start)
        if _watched(event):
            self._observe(data)

    def _observe(self, data: dict[str, Any]) -> None:
        name = data.get("lane", "local")
        lane = _LANES.get(name) or Lane(name)  # Lane(): the error for a name not a lane
        if data.get("state") == JobState.RUNNING and lane is Lane.LOCAL:
            job = next((j for j in self.owner.scheduler.running() if j.id == data["id"]), None)
            if job is not None:
                self.note_started(job)
        elif data.get("state") == JobState.SUCCEEDED and data.get("started_at") and data.get("finished_at"):
            took = max(0.0, data["finished_at"] - data["started_at"])
            self._durations[lane] = 0.8 * self._durations[lane] + 0.2 * took

    def retry_after(self, lane: Lane, waiting: int) -> int:
        from console.api.gateway.server import retry_after

        cap = 1 if lane is Lane.LOCAL else self.owner.scheduler.concurrency
        return retry_after(self._durations[lane], waiting, cap)

    def origin_allowed(self, origin: str) -> bool:
        from console.api.gateway.server import origin_matches

        return origin_matches(origin, self.cors_origins)

    def cors_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is not None and self.origin_allowed(origin)

    # ---- pulls -----------------------------------------------------------------------

    def check_pullable(self, model: str) -> Upstream:
        upstream = route(self.upstreams, model)
        if upstream is None:
            raise UserError(f"no upstream serves '{model}'; add it to an [[upstreams]] models list")
        if upstream.kind != "ollama":
            raise UserError(f"'{model}' is served by '{upstream.name}' ({upstream.kind}); only Ollama upstreams pull models")
        return upstream

    def pull_job(self, model: str, priority: int = 0, *, insecure: bool = False,
                 client: str | None = None) -> Job:  # fmt: skip
        extra: dict[str, Any] = {"model": model}
        if insecure:
            extra["insecure"] = True
        meta: dict[str, Any] = {"model": model, "progress": 0.0}
        if client:
            meta["client"] = client
        return jobs.new_job([], lane=Lane.LOCAL, kind="pull", name=f"pull {model}", priority=priority,
                            extra=extra, meta=meta, now=self.owner.scheduler.clock.now())  # fmt: skip

    async def _check_job(self, job: Job) -> None:
        """Pull jobs from the control API (``twolane pull``) must name a pullable model."""
        if job.kind != "pull":
            return
        model = job.spec.extra.get("model")
        if not isinstance(model, str) or not model.strip():
            raise UserError("a pull job needs extra.model, e.g. `twolane pull llama3.2:1b`")
        self.check_pullable(model)
        if job.lane is not Lane.LOCAL:
            raise UserError("pulls run in the local lane; drop --lane remote")
        job.meta.setdefault("model", model)
        job.meta.setdefault("progress", 0.0)


def _watched(event: events.Event) -> bool:
    """What ``_observe`` acts on: local jobs starting, and jobs that succeeded."""
    state = event.data.get("state")
    return state == JobState.SUCCEEDED or (state == JobState.RUNNING and event.data.get("lane") == "local")


def gateway_extension(config: Config) -> Gateway:
    """The gateway as an owner extension (see ``console.owner.default_extensions``)."""
    return Gateway(config)
