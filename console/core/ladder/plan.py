"""What a ladder run will do: the frozen client contract, the steps and the SLOs.

Everything here is parsed and validated up front so a bad flag fails before any load is
sent, and the whole plan is written to ``spec.json`` so a run can be reproduced.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from console.core.errors import UserError

API_KINDS = ("auto", "openai", "ollama")

# The default prompts: short, fixed, and different enough that a server cannot answer
# every request from one cached prefix.
DEFAULT_PROMPTS = (
    "Explain in three sentences why the sky is blue.",
    "Write a haiku about a queue of jobs waiting for a single machine.",
    "List five uses of a hash map, one line each.",
    "Summarise the plot of a heist film in one paragraph.",
    "Describe how a bicycle stays upright while moving.",
    "Give three tips for writing clear error messages.",
    "What is the difference between latency and throughput? Answer briefly.",
    "Translate 'the knee of the curve' into plain words and explain it.",
)


@dataclass(frozen=True, slots=True)
class Slo:
    """The gate: p95 end-to-end over the step-1 baseline, error rate, swap growth (GB)."""

    p95_ratio: float = 3.0
    error_rate: float = 0.01
    swap_gb: float = 2.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


SLO_KEYS = tuple(Slo.__dataclass_fields__)


@dataclass(slots=True)
class LadderSpec:
    """One ladder run, complete enough to reproduce it (serialised to ``spec.json``)."""

    url: str
    model: str
    steps: list[int]
    out: str
    requests: int | None = 16
    duration: float | None = None
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    prompt_source: str = "built-in"
    max_tokens: int = 128
    stream: bool = True
    api: str = "auto"
    slo: Slo = field(default_factory=Slo)
    server_pid: int | None = None
    request_timeout: float = 300.0
    home: str | None = None
    sample_interval: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["slo"] = self.slo.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LadderSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["slo"] = Slo(**(data.get("slo") or {}))
        return validate(cls(**known))


def parse_steps(text: str) -> list[int]:
    """``"1,2,4,8"`` -> ``[1, 2, 4, 8]``: positive, strictly increasing concurrencies."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--steps takes comma-separated whole numbers like 1,2,4,8, got '{text}'") from None
    if not steps:
        raise UserError("--steps needs at least one concurrency, e.g. --steps 1,2,4,8")
    if any(s < 1 for s in steps):
        raise UserError(f"--steps values must be at least 1, got '{text}'")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise UserError(f"--steps must increase, e.g. 1,2,4,8, got '{text}'")
    return steps


def parse_slo(text: str, base: Slo | None = None) -> Slo:
    """``"p95_ratio=3,error_rate=0.01,swap_gb=2"``; keys not given keep ``base``'s values."""
    values = (base or Slo()).to_dict()
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in values:
            raise UserError(
                f"--slo takes {', '.join(k + '=N' for k in SLO_KEYS)}; got '{part.strip()}'"
            )
        try:
            number = float(raw)
        except ValueError:
            raise UserError(f"--slo {key} must be a number, got '{raw.strip()}'") from None
        if not math.isfinite(number) or number < 0:
            raise UserError(f"--slo {key} must be a non-negative number, got '{raw.strip()}'")
        values[key] = number
    if values["p95_ratio"] < 1:
        raise UserError("--slo p95_ratio is a multiple of the step-1 p95, so it must be at least 1")
    if values["error_rate"] > 1:
        raise UserError("--slo error_rate is a fraction of requests (0..1), e.g. error_rate=0.01")
    return Slo(**values)


def validate(spec: LadderSpec) -> LadderSpec:
    """Check a spec; raises ``UserError`` naming the fix. Returns the spec."""
    parts = urlsplit(spec.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--url must be an http(s) base URL like http://127.0.0.1:11434, got '{spec.url}'")
    if not spec.model.strip():
        raise UserError("--model is empty; name the model the server should answer with")
    parse_steps(",".join(str(s) for s in spec.steps))
    if (spec.requests is None) == (spec.duration is None):
        raise UserError("give either --requests N or --duration SECONDS per step, not both")
    if spec.requests is not None and spec.requests < 1:
        raise UserError(f"--requests must be at least 1, got {spec.requests}")
    if spec.duration is not None and not spec.duration > 0:
        raise UserError(f"--duration must be a positive number of seconds, got {spec.duration}")
    if spec.max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {spec.max_tokens}")
    if not spec.prompts or not all(p.strip() for p in spec.prompts):
        raise UserError("the prompt file has no prompts; put one prompt per line")
    if spec.api not in API_KINDS:
        raise UserError(f"--api must be one of {', '.join(API_KINDS)}, got '{spec.api}'")
    if spec.server_pid is not None and spec.server_pid < 1:
        raise UserError(f"--server-pid must be a process id, got {spec.server_pid}")
    if not spec.request_timeout > 0:
        raise UserError("the request timeout must be a positive number of seconds")
    return spec


def prompts_from_text(text: str) -> list[str]:
    """A prompt file: one prompt per non-blank line (``#`` lines are comments)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def requests_for_step(spec: LadderSpec, concurrency: int) -> int | None:
    """Requests to send at this concurrency (None: run for ``spec.duration`` instead).

    Never fewer than the concurrency, so every worker sends at least once and the step
    really reaches the concurrency it is named after.
    """
    if spec.requests is None:
        return None
    return max(spec.requests, concurrency)


def prompt_for(spec: LadderSpec, index: int) -> str:
    """The fixed prompt for the ``index``-th request of a step (round-robin)."""
    return spec.prompts[index % len(spec.prompts)]
