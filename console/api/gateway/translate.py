"""Ollama-API requests for a model served by an OpenAI-compatible upstream (llama.cpp,
LM Studio, vLLM, a cloud): the request is rewritten for ``/v1`` and the answer rewritten
back, streamed or whole, so tools that speak Ollama reach every upstream."""

from __future__ import annotations

import json
import time
from typing import Any

from console.core.runners.chat import json_object

# Ollama option -> OpenAI field
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "num_predict": "max_tokens",
            "stop": "stop", "seed": "seed", "frequency_penalty": "frequency_penalty",
            "presence_penalty": "presence_penalty"}  # fmt: skip


def openai_path(kind: str) -> str:
    return "/embeddings" if kind == "embed" else "/chat/completions"


def to_openai(kind: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The OpenAI request for an Ollama ``/api/chat``, ``/api/generate`` or ``/api/embed(dings)`` body."""
    model = body["model"]
    if kind == "embed":
        text = body.get("input", body.get("prompt", ""))
        return {"model": model, "input": text}
    if kind == "chat":
        messages = body.get("messages") or []
    else:
        messages = []
        if isinstance(body.get("system"), str) and body["system"]:
            messages.append({"role": "system", "content": body["system"]})
        messages.append({"role": "user", "content": body.get("prompt") or ""})
    out: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    options = body.get("options")
    if isinstance(options, dict):
        for name, field in _OPTIONS.items():
            if name in options and not (name == "num_predict" and options[name] in (-1, -2)):
                out[field] = options[name]
    if body.get("format") == "json":
        out["response_format"] = {"type": "json_object"}
    if isinstance(body.get("tools"), list) and body["tools"]:
        out["tools"] = body["tools"]
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OllamaReply:
    """Rewrites an OpenAI answer (SSE chunks or one JSON) as Ollama's (NDJSON or one JSON)."""

    def __init__(self, kind: str, model: str, stream: bool, legacy_embed: bool = False) -> None:
        self.kind = kind
        self.model = model
        self.stream = stream
        self.legacy_embed = legacy_embed
        self._buffer = b""
        self._finish: str | None = None
        self._usage: dict[str, Any] = {}

    def _piece(self, text: str, done: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": _now()}
        if self.kind == "chat":
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        out["done"] = done
        if done:
            out["done_reason"] = self._finish or "stop"
            if isinstance(self._usage.get("prompt_tokens"), int):
                out["prompt_eval_count"] = self._usage["prompt_tokens"]
            if isinstance(self._usage.get("completion_tokens"), int):
                out["eval_count"] = self._usage["completion_tokens"]
        return out

    def feed(self, chunk: bytes) -> bytes:
        """SSE bytes in, NDJSON lines out (whatever is complete so far)."""
        self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        out = bytearray()
        for line in lines:
            obj = json_object(line)
            if obj is None:
                continue
            if isinstance(obj.get("usage"), dict):
                self._usage = obj["usage"]
            for choice in obj.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason"):
                    self._finish = str(choice["finish_reason"])
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(text, str) and text:
                    out += json.dumps(self._piece(text, False)).encode() + b"\n"
        return bytes(out)

    def end(self) -> bytes:
        """The closing NDJSON line of a stream."""
        return json.dumps(self._piece("", True)).encode() + b"\n"

    def whole(self, raw: bytes) -> bytes:
        """One OpenAI JSON answer in, one Ollama JSON answer out."""
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = {}
        if not isinstance(obj, dict):
            obj = {}
        if self.kind == "embed":
            vectors = [d.get("embedding") for d in obj.get("data") or [] if isinstance(d, dict)]
            if self.legacy_embed:
                return json.dumps({"embedding": vectors[0] if vectors else []}).encode()
            return json.dumps({"model": self.model, "embeddings": vectors}).encode()
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        text = ""
        choices = obj.get("choices") or []
        if choices and isinstance(choices[0], dict):
            first = choices[0]
            self._finish = first.get("finish_reason") or None
            message = first.get("message") or {}
            text = (message.get("content") if isinstance(message, dict) else None) or first.get("text") or ""
        return json.dumps(self._piece(str(text), True)).encode()


def error_message(raw: bytes) -> str:
    """The message inside an upstream's error answer, whatever its shape."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace").strip() or "no details"
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return raw[:300].decode(errors="replace").strip()
