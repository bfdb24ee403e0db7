"""Configuration: defaults, the TOML file, then environment overrides.

Every key has a default here. ``twolane config show`` prints each effective value with
where it came from (``default``, the file path, or the environment variable).
Environment overrides use ``TWOLANE__SECTION__KEY=value`` (double underscores between
the parts of the dotted key; the value is read as a TOML value, else as a string).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Dotted key -> default value. The type of the default is the type a value must have.
DEFAULTS: dict[str, Any] = {
    "lanes.remote.concurrency": 5,
    "policy.cross_mix": False,
    "runner.kill_grace": 10.0,
    "store.synchronous": "normal",
    "owner.loop": "uvloop",
    "ui.theme": "twolane-dark",
    "ui.keymap": {},
    "ui.refresh_interval": 0.5,
    "ladder.steps": "1,2,4,8",
    "ladder.requests": 16,
    "ladder.max_tokens": 128,
    "ladder.slo": "p95_ratio=3,error_rate=0.01,swap_gb=2",
    "ladder.request_timeout": 300.0,
    "ladder.sample_interval": 0.25,
    "gateway.enabled": True,
    "gateway.host": "127.0.0.1",
    "gateway.port": 11500,
    "gateway.api_key": "",
    "gateway.cors_origins": [],
    "gateway.max_body_bytes": 16 * 1024 * 1024,
    "gateway.max_waiting": 256,
    "gateway.timeout": 600.0,
    "gateway.stream_idle_timeout": 60.0,
    "gateway.retries": 1,
    "gateway.retry_backoff": 0.5,
    "gateway.max_ctx": 32768,
    "gateway.affinity_window": 8,
    "gateway.affinity_window_seconds": 30.0,
    "gateway.store_prompts": False,
    "upstreams": [
        {"name": "ollama", "kind": "ollama", "base_url": "http://127.0.0.1:11434",
         "lane": "local", "models": ["*"]},
    ],
    "signals.interval": 1.0,
    "signals.history_seconds": 600,
    "signals.model_dirs": ["~/.ollama/models"],
    "signals.top_processes": 10,
    "signals.process_interval": 5.0,
    "signals.ollama_url": "http://127.0.0.1:11434",
    "signals.runtime_overhead_mb": 256.0,
    "gates.max_load_per_core": 1.0,
    "gates.min_free_disk_gb": 10.0,
    "gates.max_swap_gb": 2.0,
    "gates.swap_growth_mb": 128.0,
    "gates.memory_headroom_gb": 2.0,
    "gates.heavy_process_patterns": ["ollama pull", "ollama run", "lms load", "mlx_lm.server",
                                     "mlx_lm.generate", "llama-cli"],
    "gates.heavy_process_mem_share": 0.25,
    "rules.swap_high_seconds": 30.0,
    "rules.load_high_seconds": 60.0,
    "rules.swap_growth_gb": 1.0,
    "rules.latency_factor": 3.0,
}

DESCRIPTIONS: dict[str, str] = {
    "signals.interval": "seconds between machine samples (swap, memory, load, disk, processes)",
    "signals.history_seconds": "seconds of samples kept for the graphs",
    "signals.model_dirs": "model directories whose free disk is sampled and gated",
    "signals.top_processes": "processes by resident memory kept in each sample",
    "signals.process_interval": "seconds between scans of all processes (top and heavy processes)",
    "signals.ollama_url": "Ollama to ask about model names (OLLAMA_HOST is used when this is left default)",
    "signals.runtime_overhead_mb": "runtime allowance added to a model's predicted footprint",
    "gates.max_load_per_core": "gate: 1-minute load average per core at most this",
    "gates.min_free_disk_gb": "gate: free disk on the data dir and model dirs at least this (pull jobs: model size plus this)",
    "gates.max_swap_gb": "gate: swap used at most this many GB",
    "gates.swap_growth_mb": "gate: swap may grow at most this many MB over the last minute",
    "gates.memory_headroom_gb": "gate: a declared model must fit in available memory minus this",
    "gates.heavy_process_patterns": "gate: commands that count as heavy when running outside twolane",
    "gates.heavy_process_mem_share": "gate: a process outside twolane above this share of memory is heavy",
    "rules.swap_high_seconds": "violation when swap stays above gates.max_swap_gb this long",
    "rules.load_high_seconds": "violation when load per core stays above gates.max_load_per_core this long",
    "rules.swap_growth_gb": "violation when swap grows by more than this during one local job",
    "rules.latency_factor": "violation when p95 latency exceeds this times the single-stream baseline",
    "lanes.remote.concurrency": "remote jobs that may run at once (changeable while running)",
    "policy.cross_mix": "allow local and remote jobs to run at the same time",
    "runner.kill_grace": "seconds between SIGTERM and SIGKILL when a job is cancelled",
    "store.synchronous": "SQLite synchronous mode: normal (survives kill -9) or full (also power loss)",
    "owner.loop": "the owner's event loop: uvloop (asyncio's when uvloop is not installed) or asyncio",
    "ui.theme": "console theme name (see themes/)",
    "ui.keymap": "binding id -> keys, e.g. {cancel = \"x\"}",
    "ui.refresh_interval": "seconds between console refreshes of time columns",
    "ladder.steps": "`twolane ladder` concurrencies to climb, e.g. \"1,2,4,8\"",
    "ladder.requests": "requests per ladder step (at least the step's concurrency)",
    "ladder.max_tokens": "max tokens per ladder request (fixed, temperature 0)",
    "ladder.slo": "ladder gate: p95_ratio (x step-1 p95), error_rate (fraction), swap_gb (growth)",
    "ladder.request_timeout": "seconds one ladder request may take before it counts as an error",
    "ladder.sample_interval": "seconds between server memory/swap/load samples during a step",
    "gateway.enabled": "serve the LLM gateway (OpenAI- and Ollama-compatible) in the owner",
    "gateway.host": "gateway address; a non-loopback address needs gateway.api_key",
    "gateway.port": "gateway TCP port (`twolane serve --port`); 0 picks a free one",
    "gateway.api_key": "bearer token clients must send (empty: none, loopback only)",
    "gateway.cors_origins": "browser origins allowed to call the gateway, e.g. [\"chrome-extension://*\"]",
    "gateway.max_body_bytes": "largest request body accepted (413 above it)",
    "gateway.max_waiting": "requests waiting per lane before new ones get 503 + Retry-After",
    "gateway.timeout": "seconds one upstream attempt may take before it is aborted",
    "gateway.stream_idle_timeout": "seconds a stream may go without a chunk before it is aborted",
    "gateway.retries": "extra upstream attempts after a failed one (never on 4xx answers)",
    "gateway.retry_backoff": "seconds before the first retry (doubles each time)",
    "gateway.max_ctx": "largest context (num_ctx) the gateway asks a local model for (0: no cap)",
    "gateway.affinity_window": "requests that may jump a waiting one to reuse the loaded model (0: off)",
    "gateway.affinity_window_seconds": "seconds a request may be passed over for model affinity",
    "gateway.store_prompts": "keep request bodies (prompts) in job records",
    "upstreams": "model servers: [[upstreams]] name, kind (ollama|openai), base_url, lane, models, api_key_env",
}

ENV_PREFIX = "TWOLANE__"


class ConfigError(ValueError):
    """A bad config file or value; the message names the key and the fix."""


def register(key: str, default: Any, description: str = "") -> None:
    """Add a key (used by feature modules that own a config section)."""
    DEFAULTS.setdefault(key, default)
    if description:
        DESCRIPTIONS.setdefault(key, description)


class Config:
    # A plain class, and tomllib imported only when there is TOML to read: `twolane add`
    # loads this module, and dataclasses + tomllib were a quarter of its import time.
    def __init__(self, values: dict[str, Any] | None = None, sources: dict[str, str] | None = None,
                 path: Path | None = None) -> None:  # fmt: skip
        self.values: dict[str, Any] = values if values is not None else {}
        self.sources: dict[str, str] = sources if sources is not None else {}
        self.path = path

    def __repr__(self) -> str:
        return f"Config(path={self.path!r}, values={self.values!r})"

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        return DEFAULTS[key]

    def source(self, key: str) -> str:
        return self.sources.get(key, "default")

    def section(self, prefix: str) -> dict[str, Any]:
        """Keys under ``prefix.`` with the prefix stripped, defaults filled in."""
        head = prefix + "."
        keys = {k for k in DEFAULTS if k.startswith(head)} | {
            k for k in self.values if k.startswith(head)
        }
        return {k[len(head) :]: self.get(k) for k in sorted(keys)}

    def set(self, key: str, value: Any, source: str = "runtime") -> None:
        self.values[key] = _check(key, value, source)
        self.sources[key] = source

    def effective(self) -> list[tuple[str, Any, str]]:
        keys = sorted(set(DEFAULTS) | set(self.values))
        return [(k, self.get(k), self.source(k)) for k in keys]


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in DEFAULTS:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _check(key: str, value: Any, where: str) -> Any:
    if key not in DEFAULTS:
        raise ConfigError(
            f"unknown config key '{key}' ({where}); run `twolane config show` to list the keys"
        )
    default = DEFAULTS[key]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"config key '{key}' ({where}) must be {type(default).__name__}, got {value!r}"
        )
    return value


def _parse_env_value(raw: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the effective config: defaults < file < environment."""
    from console.core import paths

    environ = dict(os.environ if environ is None else environ)
    path = path or paths.config_file()
    cfg = Config(path=path)
    if path.exists():
        import tomllib

        try:
            with path.open("rb") as fh:
                table = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix or remove it") from exc
        for key, value in _flatten(table).items():
            cfg.set(key, value, str(path))
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        cfg.set(key, _parse_env_value(raw), f"env:{name}")
    return cfg
