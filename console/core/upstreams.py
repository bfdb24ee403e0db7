"""Upstream model servers: parsing the ``[[upstreams]]`` config, routing a model name to
the upstream that serves it, and the context-size policy. Pure: no I/O."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from console.core.config import ConfigError
from console.core.models import Lane

KINDS = ("ollama", "openai")
_FIELDS = {"name", "kind", "base_url", "lane", "models", "api_key_env"}


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    kind: str  # "ollama" (native API) or "openai" (OpenAI-compatible)
    base_url: str  # without a trailing slash
    lane: Lane
    models: tuple[str, ...] = ("*",)
    api_key_env: str | None = None

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)

    def serves_exactly(self, model: str) -> bool:
        return model in self.models

    def openai_base(self) -> str:
        """Where the OpenAI-compatible routes live: ``/v1`` under the base URL."""
        return self.base_url if self.base_url.endswith("/v1") else self.base_url + "/v1"

    def root(self) -> str:
        """The server root (Ollama's ``/api`` routes hang off it)."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url


def parse_upstreams(raw: Any) -> list[Upstream]:
    """Validate the ``upstreams`` config list; errors are one line naming the entry and fix."""
    if not isinstance(raw, list):
        raise ConfigError("'upstreams' must be a list of tables ([[upstreams]] in the config file)")
    out: list[Upstream] = []
    names: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"upstreams[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with name, kind, base_url, lane, models")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: needs a 'name' (a short label such as \"ollama\")")
        where = f"upstream '{name}'"
        if name in names:
            raise ConfigError(f"{where} is listed twice; give each upstream its own name")
        names.add(name)
        kind = entry.get("kind", "ollama")
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be \"ollama\" or \"openai\", got {kind!r}")
        base_url = entry.get("base_url")
        if not isinstance(base_url, str) or not _is_http_url(base_url):
            raise ConfigError(f"{where}: base_url must be an http(s) URL such as \"http://127.0.0.1:11434\", got {base_url!r}")
        lane_raw = entry.get("lane", "local")
        try:
            lane = Lane(lane_raw)
        except ValueError:
            raise ConfigError(f"{where}: lane must be \"local\" or \"remote\", got {lane_raw!r}") from None
        models = entry.get("models", ["*"])
        if isinstance(models, str):
            models = [models]
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
            raise ConfigError(f"{where}: models must be a non-empty list of names or globs, e.g. [\"llama*\"]")
        key_env = entry.get("api_key_env")
        if key_env is not None and (not isinstance(key_env, str) or not key_env):
            raise ConfigError(f"{where}: api_key_env must name an environment variable, e.g. \"OPENAI_API_KEY\"")
        out.append(Upstream(name, kind, base_url.rstrip("/"), lane, tuple(models), key_env))
    return out


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def route(upstreams: list[Upstream], model: str) -> Upstream | None:
    """The upstream for ``model``: an exact name anywhere wins, else the first glob match."""
    for up in upstreams:
        if up.serves_exactly(model):
            return up
    for up in upstreams:
        if up.serves(model):
            return up
    return None


def served_patterns(upstreams: list[Upstream]) -> list[str]:
    """Every name or glob served, for 'unknown model' messages."""
    seen: dict[str, None] = {}
    for up in upstreams:
        for pattern in up.models:
            seen.setdefault(pattern, None)
    return list(seen)


def requested_ctx(body: dict[str, Any]) -> int | None:
    """The context size a request asks for: ``options.num_ctx`` (Ollama) or the body
    extensions ``num_ctx`` / ``numCtx``. Non-positive or non-integer values are ignored."""
    if "options" not in body and "num_ctx" not in body and "numCtx" not in body:
        return None  # most requests ask for nothing: no lists built for them
    options = body.get("options")
    candidates = [
        options.get("num_ctx") if isinstance(options, dict) else None,
        body.get("num_ctx"),
        body.get("numCtx"),
    ]
    asked = [c for c in candidates if isinstance(c, int) and not isinstance(c, bool) and c > 0]
    return max(asked) if asked else None


@dataclass
class ContextPolicy:
    """Each local model runs at the largest context asked for so far, capped by ``max_ctx``
    (0: no cap) and by ``fit_cap``, the largest context its predicted footprint fits in
    memory at (when known). It never shrinks, so differing asks (or a tighter memory
    reading) do not make the model reload."""

    max_ctx: int = 0
    by_model: dict[str, int] = field(default_factory=dict)

    def context_for(self, model: str, asked: int | None, fit_cap: int | None = None) -> int | None:
        """Record ``asked`` and return the context to send (None: nobody asked yet)."""
        if asked is not None:
            if self.max_ctx:
                asked = min(asked, self.max_ctx)
            if fit_cap is not None:
                asked = min(asked, fit_cap)
            self.by_model[model] = max(asked, self.by_model.get(model, 0))
        return self.by_model.get(model)

    def would_grow(self, model: str, asked: int | None) -> bool:
        """Would ``asked`` raise the model's context (so a memory cap is worth working out)?"""
        if asked is None:
            return False
        if self.max_ctx:
            asked = min(asked, self.max_ctx)
        return asked > self.by_model.get(model, 0)
