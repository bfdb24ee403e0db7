"""The signals extension: runs the sampler in the owner, gates local jobs, predicts
declared models' footprints, and turns samples (and the gateway's request latencies) into
rule violations.

It sets ``owner.sampler`` (``history(seconds)``, ``latest()``), ``owner.signals`` (this
object: ``observe_latency`` for the gateway and the ladder), ``owner.scheduler.gate``,
adds a job hook that predicts a declared model's footprint at submission, and adds the
control routes ``GET /signals/history``, ``GET /gates`` and ``POST /signals/latency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any

from console.core import events, rules
from console.core.errors import UserError
from console.core.models import Job, JobState, Lane
from console.core.signals import gates, models, settings
from console.core.signals.latency import LatencyWatch
from console.core.signals.predict import DEFAULT_CTX, MB, Fit, Prediction, fits, predict
from console.core.signals.sampler import Sampler
from console.core.signals.sources import Source, SystemSource

log = logging.getLogger(__name__)

GB = gates.GB
# A prediction that failed (Ollama not running yet) is retried after this many seconds.
ERROR_TTL = 30.0
# A gate reading older than this many intervals is taken again before deciding.
STALE_INTERVALS = 5
# Job states as event data spells them (an enum's .value costs a lookup per event).
_QUEUED, _RUNNING, _SUCCEEDED = JobState.QUEUED.value, JobState.RUNNING.value, JobState.SUCCEEDED.value


def model_dirs(cfg: Any) -> list[str]:
    return [str(Path(d).expanduser()) for d in cfg.get("signals.model_dirs")]


def ollama_url(cfg: Any) -> str:
    """``signals.ollama_url``, or ``OLLAMA_HOST`` when the key is left at its default."""
    if cfg.source("signals.ollama_url") == "default" and os.environ.get("OLLAMA_HOST"):
        return os.environ["OLLAMA_HOST"]
    return str(cfg.get("signals.ollama_url"))


Declared = tuple[str, int, int, str, str]  # model, ctx, parallel, kv type, gateway upstream


def job_model(job: Job) -> Declared | None:
    """(model, ctx, parallel, kv type, upstream) a job declares in ``spec.extra``, if any;
    the upstream is the gateway's, for a request ("" for a job added with --model)."""
    extra = job.spec.extra
    model = extra.get("model")
    if not model or job.kind == "pull":  # a pull writes the model; it does not load it
        return None
    return (str(model), _whole(extra.get("ctx"), DEFAULT_CTX), _whole(extra.get("parallel"), 1),
            str(extra.get("kv_type") or "f16"), str(extra.get("upstream") or ""))  # fmt: skip


def _whole(value: Any, default: int) -> int:
    """A job written without an owner was never checked: a bad number becomes -1, which
    the prediction rejects with a message (the model gate then says ``unknown``)."""
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def job_disk_need(job: Job, cfg: Any, th: gates.Thresholds) -> dict[str, float]:
    """A pull job that knows its model's size needs that much plus the margin on the
    model dirs (``spec.extra["size_bytes"]``, or ``meta["size_bytes"]``)."""
    size = job.spec.extra.get("size_bytes") or job.meta.get("size_bytes")
    if not size:
        return {}
    return {d: float(size) + th.min_free_disk_gb * GB for d in model_dirs(cfg)}


class Predictor:
    """Footprint predictions, cached per (model, ctx, parallel, kv type, upstream)."""

    def __init__(self, cfg: Any, clock: Any) -> None:
        self.cfg = cfg
        self.clock = clock
        self._cache: dict[Declared, tuple[Prediction | None, str | None, float]] = {}

    def ollama_for(self, model: str, upstream: str = "") -> str:
        """Where to ask about an Ollama model name: the gateway upstream serving the
        request when it is an Ollama, else ``signals.ollama_url``. Raises UserError for a
        name served by another kind of upstream (no Ollama to ask about it)."""
        from console.core.upstreams import parse_upstreams

        found = next((u for u in parse_upstreams(self.cfg.get("upstreams")) if u.name == upstream), None)
        if found is None or models.looks_like_path(model):
            return ollama_url(self.cfg)
        if found.kind != "ollama":
            raise UserError(f"'{model}' is served by upstream '{upstream}' ({found.kind}), which cannot"
                            " say its size; name the .gguf file as the model to have it predicted")  # fmt: skip
        return found.root()

    def predict_sync(self, model: str, ctx: int, parallel: int, kv_type: str, upstream: str = "") -> Prediction:
        shape, source = models.resolve(model, self.ollama_for(model, upstream))
        return predict(shape, model=model, source=source, ctx=ctx, parallel=parallel,
                       kv_type=kv_type,
                       overhead_bytes=int(self.cfg.get("signals.runtime_overhead_mb") * MB))  # fmt: skip

    def cached(self, model: str, ctx: int, parallel: int, kv_type: str,
               upstream: str = "") -> tuple[Prediction | None, str | None] | None:  # fmt: skip
        """The prediction (or why there is none) if it is at hand, else None."""
        hit = self._cache.get((model, ctx, parallel, kv_type, upstream))
        if hit and (hit[0] is not None or self.clock.monotonic() - hit[2] < ERROR_TTL):
            return hit[0], hit[1]
        return None

    async def get(self, model: str, ctx: int, parallel: int, kv_type: str,
                  upstream: str = "") -> tuple[Prediction | None, str | None]:  # fmt: skip
        key = (model, ctx, parallel, kv_type, upstream)
        hit = self.cached(*key)
        if hit is not None:
            return hit
        try:
            pred, err = await asyncio.to_thread(self.predict_sync, *key), None
        except UserError as exc:
            pred, err = None, str(exc)
        self._cache[key] = (pred, err, self.clock.monotonic())
        return pred, err


class SignalsExtension:
    def __init__(self, config: Any, source: Source | None = None) -> None:
        settings.check(config)
        self.config = config
        self.source = source
        self.thresholds = gates.Thresholds.from_config(config)
        self.limits = rules.RuleLimits.from_config(config)
        self.rules = rules.Rules(self.thresholds, self.limits)
        self.owner: Any = None
        self.sampler: Sampler
        self.predictor: Predictor
        self._watch: asyncio.Task[None] | None = None
        self._requests: events.Listener | None = None
        self._breaches: set[asyncio.Task[None]] = set()  # latency violations being recorded
        self._forced_seen: set[tuple[str, int]] = set()
        # gate_now's verdicts for the sample they were read from (see gate_now).
        self._verdicts_of: dict[str, Any] | None = None
        self._verdicts_now: dict[tuple[Any, ...], tuple[Prediction | None, bool]] = {}
        self.latency = LatencyWatch(self.limits.latency_factor)

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self, owner: Any) -> None:
        self.owner = owner
        cfg = self.config
        source = self.source or await asyncio.to_thread(
            SystemSource, [str(owner.home), *model_dirs(cfg)],
            self.thresholds.heavy_process_patterns, cfg.get("signals.top_processes"),
            cfg.get("signals.process_interval"),
        )  # fmt: skip
        self.sampler = Sampler(
            source, self.thresholds, interval=cfg.get("signals.interval"),
            history_seconds=cfg.get("signals.history_seconds"), clock=owner.clock,
            bus=owner.bus, exclude_pgids=self._job_pgids,
        )  # fmt: skip
        self.predictor = Predictor(cfg, owner.clock)
        self.sampler.add_listener(self._on_sample)
        owner.sampler = self.sampler
        owner.signals = self
        owner.scheduler.gate = self.gate
        owner.scheduler.gate_now = self.gate_now
        pull = owner.scheduler.runners.get("pull")
        if pull is not None and hasattr(pull, "size_check"):
            pull.size_check = self.download_fits
        owner.job_hooks.append(self.prepare_job)
        owner.extra_routes.extend(_routes(self))
        await self.sampler.sample_once()  # gates have a reading before the first job starts
        self.sampler.start()
        sub = owner.bus.subscribe({events.JOB}, where=_forced_local_start)
        self._watch = asyncio.create_task(self._watch_jobs(sub), name="twolane-signals-jobs")
        # A listener, not a task fed by a queue: two events per request, each a few dict
        # reads; only a breach (rare) needs a task, to record its violation.
        self._requests = owner.bus.listen({events.JOB}, self._on_request, where=_gateway_request)

    async def stop(self) -> None:
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if self._breaches:
            await asyncio.gather(*self._breaches, return_exceptions=True)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if hasattr(self, "sampler"):
            await self.sampler.stop()

    # ---- gates --------------------------------------------------------------------------

    def _job_pgids(self) -> list[int]:
        if self.owner is None or not hasattr(self.owner, "scheduler"):
            return []
        return [j.pid for j in self.owner.scheduler.running() if j.pid]

    def _recent_sample(self) -> dict[str, Any] | None:
        latest = self.sampler.latest()
        age_limit = STALE_INTERVALS * self.sampler.interval
        if latest is None or self.owner.clock.now() - latest["at"] > age_limit:
            return None
        return latest

    async def _fresh_sample(self) -> dict[str, Any]:
        return self._recent_sample() or await self.sampler.sample_once()

    async def evaluate(self, job: Job | None) -> list[gates.GateResult]:
        """Every gate's verdict for ``job`` (or for the machine alone) right now."""
        sample = await self._fresh_sample()
        declared = job_model(job) if job is not None else None
        fit: Fit | None = None
        error = None
        loaded = False
        if declared is not None:
            pred, error = await self.predictor.get(*declared)
            if pred is not None:
                fit = self._fit(pred, sample)
                if not fit.fits and not models.looks_like_path(declared[0]):
                    # Asked of the Ollama serving it (the prediction found it there).
                    where = self.predictor.ollama_for(declared[0], declared[4])
                    held = await asyncio.to_thread(models.loaded_models, where)
                    loaded = declared[0] in (held or ())
        return self._verdicts(sample, job, declared, fit, error, loaded)

    def gate_now(self, job: Job) -> bool:
        """The gate from what is at hand (a recent sample, a prediction already made):
        True only when ``job`` may start now. False leaves it to ``gate``, which reads
        what is missing (and asks Ollama whether a model that does not fit is loaded).

        The verdicts are pure in their inputs, so each is kept until the next sample:
        keyed by the declared model, the prediction's answer, the disk the job needs and
        the running jobs' process groups (the heavy-process gate leaves those out)."""
        sample = self._recent_sample()
        if sample is None:
            return False
        declared = job_model(job)
        pred: Prediction | None = None
        error = None
        if declared is not None:
            hit = self.predictor.cached(*declared)
            if hit is None:
                return False
            pred, error = hit
        disk = job_disk_need(job, self.config, self.thresholds)
        pgids = self._job_pgids()
        if sample is not self._verdicts_of:
            self._verdicts_of = sample
            self._verdicts_now.clear()
        key = (declared, error, tuple(disk.items()), tuple(pgids))
        kept = self._verdicts_now.get(key)
        if kept is not None and kept[0] is pred:
            return kept[1]
        verdict = self._gate_now(sample, job, declared, pred, error, disk, pgids)
        self._verdicts_now[key] = (pred, verdict)
        return verdict

    def _gate_now(self, sample: dict[str, Any], job: Job, declared: Declared | None,
                  pred: Prediction | None, error: str | None, disk: dict[str, float],
                  pgids: list[int]) -> bool:  # fmt: skip
        fit: Fit | None = None
        if pred is not None:
            fit = self._fit(pred, sample)
            if not fit.fits:
                return False
        results = self._verdicts(sample, job, declared, fit, error, False, disk, pgids)
        return gates.held_reason(results) is None

    def _fit(self, pred: Prediction, sample: dict[str, Any]) -> Fit:
        return fits(pred, sample["mem_available"], int(self.thresholds.memory_headroom_gb * GB))

    def _verdicts(
        self, sample: dict[str, Any], job: Job | None, declared: Declared | None,
        fit: Fit | None, error: str | None, loaded: bool,
        disk: dict[str, float] | None = None, pgids: list[int] | None = None,
    ) -> list[gates.GateResult]:  # fmt: skip
        if disk is None and job is not None:
            disk = job_disk_need(job, self.config, self.thresholds)
        return gates.evaluate(
            sample, self.sampler.history(gates.SWAP_GROWTH_WINDOW), self.thresholds,
            disk_need=disk, model=declared[0] if declared else None, fit=fit,
            model_error=error, model_loaded=loaded,
            exclude_pgids=self._job_pgids() if pgids is None else pgids,
        )  # fmt: skip

    async def download_fits(self, size: int) -> str | None:
        """A pull's next layer: None when ``size`` bytes fit on every model dir with the
        free-disk gate's margin left over, else what is short."""
        free = (await self._fresh_sample()).get("disk_free", {})
        margin = self.thresholds.min_free_disk_gb * GB
        for path in model_dirs(self.config):
            have = free.get(path)
            if have is not None and have < size + margin:
                return (f"{size / GB:.1f} GB to download, {have / GB:.1f} GB free on {path} "
                        f"(the disk gate keeps {self.thresholds.min_free_disk_gb:g} GB free)")  # fmt: skip
        return None

    async def gate(self, job: Job) -> str | None:
        """The scheduler's gate: None when ``job`` may start, else the held reason."""
        return gates.held_reason(await self.evaluate(job))

    async def gates_report(self) -> dict[str, Any]:
        """``GET /gates``: verdicts for the next local job (or the machine alone)."""
        queued = self.owner.scheduler.queued(Lane.LOCAL)
        job = queued[0] if queued else None
        results = await self.evaluate(job)
        latest = self.sampler.latest()
        return {
            "ok": all(r.ok for r in results),
            "job": job.id if job else None,
            "held": self.owner.scheduler.status()["local"]["held"],
            "sample_at": latest["at"] if latest else None,
            "gates": [r.to_dict() for r in results],
        }

    # ---- prediction at submission -------------------------------------------------------

    async def prepare_job(self, job: Job) -> None:
        """Check a declared model's options and attach its predicted footprint."""
        declared = _check_declared(job)
        if declared is None:
            return
        pred, error = await self.predictor.get(*declared)
        if pred is None and models.looks_like_path(declared[0]):
            raise UserError(error or f"cannot read {declared[0]}")
        if pred is not None:
            job.meta["footprint"] = pred.to_dict()
        else:
            job.meta["footprint_error"] = error

    # ---- rules --------------------------------------------------------------------------

    async def _on_sample(self, sample: dict[str, Any]) -> None:
        sched = self.owner.scheduler
        for violation in self.rules.observe(sample, sched.running(), sched.cross_mix):
            await sched.record_violation(violation)

    async def _watch_jobs(self, sub: Any) -> None:
        with sub:
            while True:
                data = (await sub.get()).data
                if not (data.get("force") and data.get("lane") == "local"
                        and data.get("state") == _RUNNING):  # fmt: skip
                    continue
                key = (data["id"], int(data.get("attempts") or 0))
                if key in self._forced_seen:
                    continue  # progress updates re-publish a running job
                self._forced_seen.add(key)
                try:
                    job = Job.from_dict(data)
                    results = await self.evaluate(job)
                    await self.owner.scheduler.record_violation(
                        rules.gate_forced(job, results, self.owner.clock.now())
                    )
                except Exception:
                    log.exception("recording a forced gate failed")

    def _on_request(self, event: events.Event) -> None:
        """Gateway requests starting and ending feed the ``latency_p95`` rule (a bus
        listener: called as each event is published, so none is ever dropped)."""
        try:
            breach = self._request_event(event.data)
        except Exception:
            log.exception("latency bookkeeping failed")
            return
        if breach is not None:
            task = asyncio.get_running_loop().create_task(self._record_breach(breach))
            self._breaches.add(task)
            task.add_done_callback(self._breaches.discard)

    async def _record_breach(self, breach: Any) -> None:
        try:
            await self.observe_latency(breach.p95_ms, breach.baseline_ms, breach.job_ids, breach.source)
        except Exception:
            log.exception("recording a latency_p95 violation failed")

    def _request_event(self, data: dict[str, Any]) -> Any:
        extra = data["spec"]["extra"]
        upstream = str(extra["upstream"])
        if data["state"] == _RUNNING:
            self.latency.started(data["id"], upstream)
            return None
        took = data["meta"].get("duration_ms") if data["state"] == _SUCCEEDED else None
        key = (upstream, str(extra.get("model") or ""), str(data["kind"]))
        return self.latency.ended(data["id"], key, float(took) if _finite(took) else None)

    async def observe_latency(self, p95_ms: float, baseline_ms: float, job_ids: list[str],
                              source: str = "") -> dict[str, Any] | None:
        """Feed a p95 latency measurement (gateway, ladder); records a violation if slow."""
        v = rules.latency(p95_ms, baseline_ms, self.limits.latency_factor, job_ids,
                          self.owner.clock.now(), source)  # fmt: skip
        if v is None:
            return None
        return (await self.owner.scheduler.record_violation(v)).to_dict()


def _forced_local_start(event: events.Event) -> bool:
    """What ``_watch_jobs`` records: a forced local job starting (other events never wake it)."""
    data = event.data
    return bool(data.get("force")) and data.get("lane") == "local" and data.get("state") == _RUNNING


def _gateway_request(event: events.Event) -> bool:
    """What ``_on_request`` follows: gateway requests (they name their upstream)
    starting or ending; pulls are downloads, not requests."""
    data = event.data
    return (bool((data.get("spec") or {}).get("extra", {}).get("upstream")) and data.get("kind") != "pull"
            and data.get("state") != _QUEUED)  # fmt: skip


def _check_declared(job: Job) -> Declared | None:
    from console.core.signals.predict import check_ctx, check_kv_type

    extra = job.spec.extra
    if not extra.get("model") or job.kind == "pull":
        return None
    if not isinstance(extra["model"], str):
        raise UserError("model must be a GGUF path or an Ollama model name")
    for name in ("ctx", "parallel"):
        if extra.get(name) is not None:
            check_ctx(extra[name], name)
    if extra.get("kv_type") is not None:
        check_kv_type(extra["kv_type"])
    return job_model(job)


LATENCY_BODY = '{"p95_ms": N, "baseline_ms": N, "job_ids": ["id", ...], "source": "..."}'


def latency_body(body: Any) -> tuple[float, float, list[str], str]:
    """``POST /signals/latency``'s body checked: p95 and baseline in milliseconds (finite,
    the baseline above 0), job ids a list of strings, source a string. Raises UserError."""
    if not isinstance(body, dict):
        raise UserError(f"send a JSON object: {LATENCY_BODY}")
    p95, base = body.get("p95_ms"), body.get("baseline_ms")
    if not _finite(p95) or p95 < 0:
        raise UserError(f"p95_ms must be a number of milliseconds, 0 or more; got {p95!r}")
    if not _finite(base) or base <= 0:
        raise UserError(f"baseline_ms must be a number of milliseconds above 0; got {base!r}")
    job_ids = body.get("job_ids") or []
    if not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids):
        raise UserError(f"job_ids must be a list of job id strings; got {job_ids!r}")
    source = body.get("source") or ""
    if not isinstance(source, str):
        raise UserError(f"source must be a string; got {source!r}")
    return float(p95), float(base), job_ids, source


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _routes(ext: SignalsExtension) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    async def history(request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("seconds", "600"))
        except ValueError:
            raise UserError("seconds must be a number") from None
        return _json(ext.sampler.history(seconds))

    async def gates_route(request: web.Request) -> web.Response:
        return _json(await ext.gates_report())

    async def latency_route(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        p95, base, job_ids, source = latency_body(body)
        found = await ext.observe_latency(p95, base, job_ids, source)
        return _json({"violation": found}, status=201 if found else 200)

    return [("GET", "/signals/history", history), ("GET", "/gates", gates_route),
            ("POST", "/signals/latency", latency_route)]  # fmt: skip


def local_report(cfg: Any, home: Path) -> dict[str, Any]:
    """Gate verdicts with no owner running: one reading of this machine, no job."""
    settings.check(cfg)
    th = gates.Thresholds.from_config(cfg)
    source = SystemSource([str(home), *model_dirs(cfg)], th.heavy_process_patterns,
                          cfg.get("signals.top_processes"))  # fmt: skip
    sampler = Sampler(source, th)
    reading = source.read()
    sample = sampler.build(reading)
    results = gates.evaluate(sample, [], th)
    return {"ok": all(r.ok for r in results), "job": None, "held": None,
            "sample_at": sample["at"], "gates": [r.to_dict() for r in results]}  # fmt: skip
