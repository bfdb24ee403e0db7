"""Gateway commands: ``twolane pull MODEL`` (a local-lane pull job) and ``--port`` on
``twolane serve`` (the gateway's TCP port)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from console.cli import EXIT_FAILED, _backend, _print_json


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0: any free port), got {text}")
    return value


class _PortOverride(argparse.Action):
    """``--port N`` becomes the ``gateway.port`` override that ``serve`` applies."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:  # fmt: skip
        namespace.overrides = {**getattr(namespace, "overrides", {}), "gateway.port": values}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.choices.get("serve")
    if serve is not None:
        serve.add_argument("--port", type=_port, action=_PortOverride, metavar="N",
                           help="gateway port (default: config gateway.port, 11500; 0: any free)")  # fmt: skip

    p = sub.add_parser("pull", help="download a model through Ollama as a local-lane job",
                       description="Queue a pull job in the local lane (one at a time with the "
                       "other local work) and follow its progress until it ends.")  # fmt: skip
    p.add_argument("model", help="model name, e.g. llama3.2:1b")
    p.add_argument("--priority", type=int, default=0, help="higher runs sooner (default 0)")
    p.add_argument("--insecure", action="store_true", help="allow an insecure registry")
    p.add_argument("--detach", action="store_true", help="only enqueue; print the job id")
    p.add_argument("--json", action="store_true", help="print the final job as JSON")
    p.set_defaults(func=cmd_pull)


def cmd_pull(args: argparse.Namespace) -> int:
    from console.core.pull_job import pull_payload

    payload = pull_payload(args.model, priority=args.priority, insecure=args.insecure)
    backend = _backend()
    try:
        job = backend.add(payload)
        if args.detach:
            _print_json(job) if args.json else print(job["id"])
            return 0
        if backend.mode == "direct":
            print(f"twolane: queued {job['id']}; no owner is running, the pull starts when "
                  "`twolane serve` or `twolane` runs", file=sys.stderr)  # fmt: skip
        job = _follow(backend, job["id"])
    except KeyboardInterrupt:
        print(f"\ntwolane: stopped following; the pull goes on (`twolane cancel {job['id']}`)",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        backend.close()
    if args.json:
        _print_json(job)
    elif job["state"] == "succeeded":
        print(f"{job['id']} pulled {args.model}")
    else:
        print(f"{job['id']} {job['state']}" + (f" ({job['error']})" if job.get("error") else ""),
              file=sys.stderr)  # fmt: skip
    return 0 if job["state"] == "succeeded" else EXIT_FAILED


def progress_line(meta: dict[str, Any]) -> str:
    """``45% 1.2/2.6 GB pulling abc123`` from a pull job's progress facts."""
    parts = []
    if isinstance(meta.get("progress"), int | float):
        parts.append(f"{meta['progress'] * 100:3.0f}%")
    if isinstance(meta.get("total"), int) and meta["total"] > 0:
        parts.append(f"{meta.get('completed', 0) / 1e9:.2f}/{meta['total'] / 1e9:.2f} GB")
    if meta.get("status"):
        parts.append(str(meta["status"]))
    return " ".join(parts)


def _follow(backend: Any, job_id: str) -> dict[str, Any]:
    from console.cli import _home
    from console.client import owner_client

    shown = ""
    while True:
        job = backend.get(job_id)
        # The last picture too: a fast pull may finish between two looks.
        line = progress_line(job.get("meta") or {}) if job["state"] in ("running", "succeeded") else ""
        if line and line != shown:
            print(line, flush=True)
            shown = line
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
        if backend.mode == "direct":
            backend = owner_client(_home()) or backend  # an owner may have started
