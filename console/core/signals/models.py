"""Finding a model's shape from what a user types: a GGUF file path, or an Ollama model
name resolved through a running Ollama (``POST /api/show``; its blob file when it is on
this machine, else the ``model_info`` metadata and the size ``/api/tags`` lists).

Blocking I/O (file reads, HTTP): the owner calls these in a worker thread.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from console.core.errors import UserError
from console.core.signals import gguf
from console.core.signals.predict import ModelShape, shape_from_gguf, shape_from_metadata

OLLAMA_TIMEOUT = 5.0


def looks_like_path(model: str) -> bool:
    return model.endswith(".gguf") or model.startswith(("/", "./", "../", "~")) or os.path.exists(model)


def ollama_base(url: str) -> str:
    """``OLLAMA_HOST`` style values (``host:port``, ``0.0.0.0``) as a base URL."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    host = url.split("://", 1)[1]
    if ":" not in host.split("/")[0]:
        url += ":11434"
    return url.replace("://0.0.0.0", "://127.0.0.1")


def _post_json(url: str, body: dict[str, Any], timeout: float) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def blob_path(show: dict[str, Any]) -> Path | None:
    """The GGUF blob an Ollama model is built FROM, when its modelfile names one."""
    for line in str(show.get("modelfile") or "").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].upper() == "FROM":
            candidate = Path(parts[1].strip().strip('"'))
            if candidate.is_absolute():
                return candidate
    return None


def resolve(model: str, ollama_url: str, timeout: float = OLLAMA_TIMEOUT) -> tuple[ModelShape, str]:
    """The model's shape and where it came from. Raises UserError naming the fix."""
    if looks_like_path(model):
        f = gguf.read(model)
        return shape_from_gguf(f), str(f.path)
    base = ollama_base(ollama_url)
    try:
        show = _post_json(f"{base}/api/show", {"model": model}, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UserError(
                f"Ollama at {base} does not have model '{model}'; `ollama pull {model}` first,"
                " or give a .gguf path"
            ) from None
        raise UserError(f"Ollama at {base} answered {exc.code} for '{model}'") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(
            f"cannot ask Ollama at {base} about '{model}' ({getattr(exc, 'reason', exc)}); start"
            " Ollama, set signals.ollama_url, or give a .gguf path"
        ) from None
    if not isinstance(show, dict):
        raise UserError(f"Ollama at {base} gave no details for '{model}'")
    blob = blob_path(show)
    if blob is not None and blob.is_file():
        f = gguf.read(blob)
        return shape_from_gguf(f), str(blob)
    info = show.get("model_info")
    if not isinstance(info, dict) or not info:
        raise UserError(f"Ollama at {base} lists no model_info for '{model}'; upgrade Ollama")
    return shape_from_metadata(info, _ollama_size(base, model, timeout)), f"ollama:{model}"


def _ollama_size(base: str, model: str, timeout: float) -> int:
    """The model's size from ``/api/tags`` (its blobs' bytes: the weights, near enough)."""
    try:
        tags = _get_json(f"{base}/api/tags", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        tags = None
    names = {model, f"{model}:latest"}
    for entry in (tags or {}).get("models") or []:
        if entry.get("name") in names or entry.get("model") in names:
            return int(entry.get("size") or 0)
    raise UserError(f"Ollama at {base} does not list the size of '{model}'; give a .gguf path")


def loaded_models(ollama_url: str, timeout: float = 1.0) -> set[str] | None:
    """Models a running Ollama holds in memory now (``GET /api/ps``), or None when it
    cannot be asked. Names are given with and without the implied ``:latest`` tag."""
    try:
        ps = _get_json(f"{ollama_base(ollama_url)}/api/ps", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    names: set[str] = set()
    for entry in (ps or {}).get("models") or []:
        for name in (entry.get("name"), entry.get("model")):
            if name:
                names.add(name)
                names.add(name.removesuffix(":latest"))
    return names
