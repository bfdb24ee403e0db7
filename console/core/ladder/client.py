"""The measuring client: one keep-alive httpx client, OpenAI-compatible or Ollama-native,
streaming or not, recording time to first token, inter-token gaps, end-to-end latency,
tokens in and out, and the status or error of every request."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from console.core.ladder.plan import LadderSpec
from console.core.ladder.stats import RequestRecord

_ERROR_CHARS = 200


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def openai_base(url: str) -> str:
    """The ``/v1`` root of an OpenAI-compatible server, given its base URL either way."""
    url = url.rstrip("/")
    return url if urlsplit(url).path.endswith("/v1") else url + "/v1"


class EndpointClient:
    """Sends the frozen request (fixed prompt, max tokens, temperature 0) and times it."""

    def __init__(self, spec: LadderSpec, http: httpx.AsyncClient | None = None) -> None:
        self.spec = spec
        self.base = spec.url.rstrip("/")
        self.kind = spec.api
        max_conn = max(spec.steps) + 2
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(spec.request_timeout, connect=min(10.0, spec.request_timeout)),
            limits=httpx.Limits(max_connections=max_conn, max_keepalive_connections=max_conn),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def detect(self) -> dict[str, Any]:
        """Settle the API kind (``auto``: an Ollama server answers ``/api/version``) and
        collect what the server says about itself and the model (version, digest)."""
        info: dict[str, Any] = {}
        if self.kind == "auto":
            self.kind = "openai"
            if not urlsplit(self.base).path.endswith("/v1"):
                version = await self._get_json(self.base + "/api/version")
                if isinstance(version, dict) and "version" in version:
                    self.kind = "ollama"
                    info["server_version"] = version["version"]
        if self.kind == "ollama":
            if "server_version" not in info:
                version = await self._get_json(self.base + "/api/version")
                if isinstance(version, dict):
                    info["server_version"] = version.get("version")
            tags = await self._get_json(self.base + "/api/tags")
            for entry in (tags or {}).get("models", []) if isinstance(tags, dict) else []:
                if entry.get("name") in (self.spec.model, self.spec.model + ":latest"):
                    info["model_digest"] = entry.get("digest")
                    info["model_size"] = entry.get("size")
                    info["model_details"] = entry.get("details")
        else:
            models = await self._get_json(openai_base(self.base) + "/models")
            for entry in (models or {}).get("data", []) if isinstance(models, dict) else []:
                if isinstance(entry, dict) and entry.get("id") == self.spec.model:
                    info["model_digest"] = entry.get("digest") or entry.get("sha256")
                    info["model_owned_by"] = entry.get("owned_by")
                    info["model_meta"] = entry.get("meta")
        info["api"] = self.kind
        return {k: v for k, v in info.items() if v is not None}

    async def _get_json(self, url: str) -> Any:
        try:
            resp = await self.http.get(url, timeout=5.0)
            return resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def request_body(self, prompt: str) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body of one request, per API kind."""
        messages = [{"role": "user", "content": prompt}]
        if self.kind == "ollama":
            return self.base + "/api/chat", {
                "model": self.spec.model, "messages": messages, "stream": self.spec.stream,
                "options": {"temperature": 0, "num_predict": self.spec.max_tokens},
            }  # fmt: skip
        body: dict[str, Any] = {
            "model": self.spec.model, "messages": messages, "stream": self.spec.stream,
            "max_tokens": self.spec.max_tokens, "temperature": 0,
        }  # fmt: skip
        if self.spec.stream:
            body["stream_options"] = {"include_usage": True}
        return openai_base(self.base) + "/chat/completions", body

    async def measure(self, record: RequestRecord, prompt: str) -> RequestRecord:
        """Send one request and fill ``record`` in; never raises for HTTP trouble (it is
        recorded as the request's error) but lets cancellation through."""
        url, body = self.request_body(prompt)
        record.start = time.time()
        t0 = time.perf_counter()
        try:
            if self.spec.stream:
                await self._stream(url, body, record, t0)
            else:
                resp = await self.http.post(url, json=body)
                record.status = resp.status_code
                if resp.status_code >= 400:
                    record.error = _short(resp.text) or f"HTTP {resp.status_code}"
                else:
                    self._read_whole(resp.json(), record)
        except httpx.HTTPError as exc:
            record.error = _short(f"{type(exc).__name__}: {exc}")
        except (ValueError, KeyError, TypeError) as exc:
            record.error = _short(f"bad response: {exc}")
        record.e2e = time.perf_counter() - t0
        return record

    def _read_whole(self, data: dict[str, Any], record: RequestRecord) -> None:
        if "error" in data:
            record.error = _short(json.dumps(data["error"]))
            return
        if self.kind == "ollama":
            record.tokens_in = data.get("prompt_eval_count")
            record.tokens_out = int(data.get("eval_count") or 0)
            return
        usage = data.get("usage") or {}
        record.response_id = str(data.get("id") or "")
        record.tokens_in = usage.get("prompt_tokens")
        record.tokens_out = int(usage.get("completion_tokens") or 0)

    async def _stream(self, url: str, body: dict[str, Any], record: RequestRecord, t0: float) -> None:
        chunks = 0
        usage_out: int | None = None
        last: float | None = None
        async with self.http.stream("POST", url, json=body) as resp:
            record.status = resp.status_code
            if resp.status_code >= 400:
                record.error = _short((await resp.aread()).decode(errors="replace")) or f"HTTP {resp.status_code}"
                return
            async for line in resp.aiter_lines():
                event = self._parse_line(line)
                if event is None:
                    continue
                if "error" in event:
                    record.error = _short(json.dumps(event["error"]))
                    return
                text, tokens_in, tokens_out, rid = self._read_chunk(event)
                if rid:
                    record.response_id = rid
                if tokens_in is not None:
                    record.tokens_in = tokens_in
                if tokens_out is not None:
                    usage_out = tokens_out
                if text:
                    now = time.perf_counter()
                    if last is None:
                        record.ttft = now - t0
                    else:
                        record.itl.append(now - last)
                    last = now
                    chunks += 1
        # The server's own count is the truth; chunks are a fallback (one token each on
        # most servers) for servers that send no usage.
        record.tokens_out = usage_out if usage_out is not None else chunks

    def _parse_line(self, line: str) -> dict[str, Any] | None:
        line = line.strip()
        if not line:
            return None
        if self.kind == "openai":
            if not line.startswith("data:"):
                return None
            line = line[5:].strip()
            if line == "[DONE]":
                return None
        event = json.loads(line)
        return event if isinstance(event, dict) else None

    def _read_chunk(self, event: dict[str, Any]) -> tuple[str, int | None, int | None, str]:
        """Text, prompt tokens, completion tokens and response id found in one chunk."""
        if self.kind == "ollama":
            text = (event.get("message") or {}).get("content") or ""
            if event.get("done"):
                return text, event.get("prompt_eval_count"), event.get("eval_count"), ""
            return text, None, None, ""
        text = ""
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or delta.get("reasoning_content") or ""
        usage = event.get("usage") or {}
        return text, usage.get("prompt_tokens"), usage.get("completion_tokens"), str(event.get("id") or "")
