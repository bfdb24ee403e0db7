"""Model affinity for the local lane: prefer a waiting request for the model that is
already loaded, within a bounded window, so models reload as seldom as possible and
nobody starves. Pure bookkeeping; the gateway installs ``pick`` as ``scheduler.picker``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from console.core.models import Job, Lane

# Job kinds that load their model into memory (a pull only downloads it).
_NON_LOADING_KINDS = frozenset({"pull"})


def model_of(job: Job) -> str | None:
    """The model a job loads, if it says (gateway requests and `twolane add --model`)."""
    if job.kind in _NON_LOADING_KINDS:
        return None
    model = job.spec.extra.get("model")
    return model if isinstance(model, str) and model else None


@dataclass
class Affinity:
    window: int = 8  # times one job may be passed over (0: affinity off)
    window_seconds: float = 30.0  # ...or this long since it was queued
    loaded: str | None = None
    reloads_avoided: int = 0
    _passed: dict[str, int] = field(default_factory=dict)
    # The last 256 jobs recorded, in order and as a set (asked once per local start).
    _started: deque[str] = field(default_factory=lambda: deque(maxlen=256))
    _started_ids: set[str] = field(default_factory=set)

    def pick(self, lane: Lane, queue: list[Job], now: float) -> Job:
        """The job to start next from the lane's sorted queue."""
        head = queue[0]
        if lane is not Lane.LOCAL or not self.window or self.loaded is None:
            return head
        if model_of(head) in (None, self.loaded):
            return head
        for i, job in enumerate(queue):
            if job.priority != head.priority:
                break  # affinity never beats priority
            if model_of(job) == self.loaded:
                ahead = queue[:i]
                if all(self._within_window(j, now) for j in ahead):
                    return job
                break
        return head

    def _within_window(self, job: Job, now: float) -> bool:
        return self._passed.get(job.id, 0) < self.window and now - job.created_at < self.window_seconds

    def started(self, job: Job, queued: list[Job]) -> bool:
        """Record that a local job started with ``queued`` (the lane's queue, in its
        order) still waiting. Returns True when it started out of order for the loaded
        model (a reload avoided). Idempotent per job."""
        if job.id in self._started_ids or job.lane is not Lane.LOCAL:
            return False
        if len(self._started) == self._started.maxlen:
            self._started_ids.discard(self._started[0])
        self._started.append(job.id)
        self._started_ids.add(job.id)
        model = model_of(job)
        key = job.sort_key()
        started_at = job.started_at or 0
        passed = []
        for q in queued:  # those it jumped are a prefix of the queue (usually none)
            if q.sort_key() >= key:
                break
            if q.created_at <= started_at:
                passed.append(q)
        if self._passed:
            live = {q.id for q in queued}
            self._passed = {k: v for k, v in self._passed.items() if k in live}
        for q in passed:
            self._passed[q.id] = self._passed.get(q.id, 0) + 1
        avoided = (
            model is not None
            and model == self.loaded
            and any(model_of(q) not in (None, model) for q in passed)
        )
        if avoided:
            self.reloads_avoided += 1
        if model is not None:
            self.loaded = model
        return avoided
