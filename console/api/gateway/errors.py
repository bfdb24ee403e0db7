"""Errors in the caller's API shape: OpenAI routes answer ``{"error": {"message", "type",
"code"}}``, Ollama routes (and the gateway's own) answer ``{"error": "..."}``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_CODES = {
    400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "request_too_large", 429: "rate_limit_exceeded",
    502: "upstream_error", 503: "overloaded", 504: "upstream_timeout",
}  # fmt: skip


class GatewayError(Exception):
    """A request the gateway refuses or could not serve; rendered in the API's shape."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.headers = headers or {}


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_body(path: str, status: int, message: str, code: str | None = None) -> dict[str, Any]:
    if is_openai_path(path):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 401:
            kind = "authentication_error"
        return {"error": {"message": message, "type": kind, "code": code or _CODES.get(status, "error")}}
    return {"error": message}


def error_response(request: web.Request, status: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    return web.Response(
        status=status,
        text=json.dumps(error_body(request.path, status, message, code)),
        content_type="application/json",
        headers=headers,
    )
