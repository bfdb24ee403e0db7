"""The ``twolane`` command. Imports are lazy: ``twolane add`` loads no Textual and no HTTP
server, so scripts can enqueue fast.

Exit codes: 0 success; 1 a job (or wait) did not succeed; 2 bad input (the message names
the fix); 3 the owner is unavailable or another owner holds the data dir; 124 timed out;
141 the reader of the output went away (``twolane ls | head``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_FAILED, EXIT_USAGE, EXIT_OWNER, EXIT_TIMEOUT = 1, 2, 3, 124
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool its pipe closed

# Feature modules that add sub-commands: each has ``register(subparsers)``, and the
# commands each one registers (so ``twolane add`` imports none of them).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "console.commands.ladder": ("ladder",),
    "console.commands.gateway": ("pull", "serve"),  # and `serve --port`
    "console.commands.signals": ("gates", "predict"),
    "console.commands.web": ("web",),
}


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _home() -> Path:
    from console.core import paths

    return paths.data_dir()


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _backend():  # type: ignore[no-untyped-def]
    from console.client import connect

    return connect(_home())


# ---- formatting -----------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """``4s``, ``3m07s``, ``2h05m``, ``3d04h``."""
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def job_age(job: dict[str, Any], now: float) -> str:
    """Waited (queued), elapsed (running) or run time (finished)."""
    if job["state"] == "queued":
        return "waited " + fmt_duration(now - job["created_at"])
    if job["state"] == "running":
        return "running " + fmt_duration(now - (job["started_at"] or now))
    if job.get("started_at") and job.get("finished_at"):
        return "took " + fmt_duration(job["finished_at"] - job["started_at"])
    return "-"


def fmt_table(jobs: list[dict[str, Any]], now: float) -> str:
    headers = ["ID", "STATE", "PRI", "LANE", "NAME", "TIME", "NOTE"]
    rows = []
    for job in jobs:
        note = job.get("held_reason") or (job.get("error") if job["state"] != "succeeded" else "")
        rows.append(
            [job["id"], job["state"], str(job["priority"]), job["lane"], job["name"],
             job_age(job, now), note or ""]
        )  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    widths[4] = min(widths[4], 48)
    lines = []
    for row in [headers, *rows]:
        cells = [c if len(c) <= widths[i] else c[: widths[i] - 1] + "…" for i, c in enumerate(row)]
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip())
    return "\n".join(lines)


# ---- commands -------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    payload: dict[str, Any] = {
        "command": command,
        "lane": args.lane,
        "priority": args.priority,
        "name": args.name,
        "timeout": args.timeout,
        "retries": args.retry,
        "retry_on_interrupt": args.retry_on_interrupt,
        "cwd": args.cwd,
        "shell": args.shell,
        "force": args.force,
    }
    if args.env:
        payload["env"] = dict(_parse_env(e) for e in args.env)
    if args.model:
        payload["extra"] = _declared_model(args)
    elif args.ctx is not None or args.parallel is not None or args.kv_type is not None:
        raise CliError("--ctx, --parallel and --kv-type size the footprint of --model; add --model M")
    if payload["cwd"] is None:
        payload["cwd"] = str(Path.cwd())
    backend = _backend()
    try:
        job = backend.add(payload)
    finally:
        backend.close()
    if args.json:
        _print_json(job)
    else:
        print(job["id"])
    return 0


def _declared_model(args: argparse.Namespace) -> dict[str, Any]:
    """``spec.extra`` for ``--model``: a GGUF path is made absolute here (the owner runs in
    another directory) and its metadata read, so a missing or non-GGUF file is refused
    whether or not an owner runs; an Ollama name is resolved by the owner."""
    from console.core.signals import gguf, models

    model = args.model
    if models.looks_like_path(model):
        model = str(Path(model).expanduser().resolve())
        gguf.read(model)
    extra: dict[str, Any] = {"model": model}
    for key in ("ctx", "parallel", "kv_type"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    return extra


def _parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CliError(f"--env takes NAME=VALUE, got '{text}'")
    return name, value


def cmd_ls(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        jobs = backend.list(args.state or None, args.lane)
    finally:
        backend.close()
    if args.json:
        _print_json(jobs)
    elif jobs:
        print(fmt_table(jobs, time.time()))
    else:
        print("no jobs", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        job = backend.get(args.id)
    finally:
        backend.close()
    if args.json:
        _print_json(job)
        return 0
    print(fmt_job_details(job))
    return 0


def _fmt_fact(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def fmt_job_details(job: dict[str, Any]) -> str:
    def ts(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"

    spec = job["spec"]
    lines = [
        f"id          {job['id']}",
        f"name        {job['name']}",
        f"state       {job['state']}" + (f"  ({job['error']})" if job.get("error") else ""),
        f"lane        {job['lane']}    kind {job['kind']}    priority {job['priority']}",
        f"command     {job['command']}",
        f"cwd         {spec.get('cwd') or '-'}",
        f"timeout     {spec.get('timeout') or '-'}    retries {job['retries']}"
        f"    retry on interrupt {'yes' if job['retry_on_interrupt'] else 'no'}",
        f"created     {ts(job['created_at'])}",
        f"started     {ts(job['started_at'])}",
        f"finished    {ts(job['finished_at'])}",
        f"exit code   {job['exit_code'] if job['exit_code'] is not None else '-'}",
        f"attempts    {job['attempts']}",
        f"log         {job['log_path'] or '-'}",
    ]
    if job.get("held_reason"):
        lines.append(f"held        {job['held_reason']}")
    # Kind-specific facts: a request's model, client and sizes, a pull's progress...
    for label, facts in (("spec", spec.get("extra") or {}), ("details", job.get("meta") or {})):
        for key in sorted(facts):
            lines.append(f"{label:<12}{key} = {_fmt_fact(facts[key])}")
            label = ""
    for a in job.get("attempts_log") or []:
        took = fmt_duration(a["finished_at"] - a["started_at"]) if a["finished_at"] and a["started_at"] else "-"
        lines.append(
            f"  attempt {a['n']}: {a['state']} exit {a['exit_code'] if a['exit_code'] is not None else '-'}"
            f" took {took}" + (f" ({a['error']})" if a.get("error") else "")
        )
    return "\n".join(lines)


def cmd_logs(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        offset = 0
        out = sys.stdout.buffer
        while True:
            data, state = backend.log_chunk(args.id, offset)
            if data:
                out.write(data)
                out.flush()
                offset += len(data)
                continue
            if not args.follow or state not in ("queued", "running"):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0
    finally:
        backend.close()


def cmd_cancel(args: argparse.Namespace) -> int:
    from console.core.errors import UserError

    backend = _backend()
    failures = 0
    try:
        for ref in args.ids:
            try:
                job = backend.cancel(ref)
                print(f"{job['id']} {job['state']}")
            except UserError as exc:
                print(f"twolane: {exc}", file=sys.stderr)
                failures += 1
    finally:
        backend.close()
    return EXIT_USAGE if failures else 0


def cmd_priority(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        job = backend.priority(args.id, args.priority)
    finally:
        backend.close()
    print(f"{job['id']} priority {job['priority']}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        job = backend.retry(args.id)
    finally:
        backend.close()
    print(f"{job['id']} {job['state']}")
    return 0


def _lanes_cmd(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        backend = _backend()
        try:
            status = getattr(backend, action)(args.lanes)
        finally:
            backend.close()
        if args.json:
            _print_json(status)
        else:
            for lane in ("local", "remote"):
                print(f"{lane}: {'paused' if status[lane]['paused'] else 'running'}")
        return 0

    return run


def cmd_status(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        status = backend.status()
    finally:
        backend.close()
    status["owner"] = backend.mode == "owner"
    if args.json:
        _print_json(status)
        return 0
    print(f"owner: {'running' if status['owner'] else 'none (jobs wait for `twolane serve`)'}")
    for lane in ("local", "remote"):
        s = status[lane]
        state = "paused" if s["paused"] else ("held: " + s["held"] if s["held"] else "open")
        cap = f"/{s['cap']}" if s.get("cap") else ""
        print(f"{lane:7} {s['running']}{cap} running, {s['queued']} queued, {state}")
    if status.get("turn"):
        print(f"turn: {status['turn']}")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        if args.ids:
            targets = [backend.get(ref)["id"] for ref in args.ids]
        else:
            targets = [j["id"] for j in backend.list(["queued", "running"])]
        if backend.mode == "direct" and targets:
            print(
                "twolane: no owner is running; the jobs start when `twolane serve` or `twolane` runs",
                file=sys.stderr,
            )
        deadline = time.monotonic() + args.timeout if args.timeout is not None else None
        pending = list(targets)
        final: dict[str, dict[str, Any]] = {}
        while pending:
            for ref in list(pending):
                job = backend.get(ref)
                if job["state"] not in ("queued", "running"):
                    final[ref] = job
                    pending.remove(ref)
            if not pending:
                break
            if deadline is not None and time.monotonic() >= deadline:
                print(f"twolane: timed out waiting for {len(pending)} job(s): {' '.join(pending)}",
                      file=sys.stderr)  # fmt: skip
                return EXIT_TIMEOUT
            time.sleep(0.1)
            if backend.mode == "direct":
                from console.client import owner_client

                owner = owner_client(_home())  # an owner may have started
                if owner is not None:
                    backend.close()  # the direct one's store, its threads with it
                    backend = owner
    finally:
        backend.close()
    bad = [j for j in final.values() if j["state"] != "succeeded"]
    if args.json:
        _print_json(list(final.values()))
    else:
        for job in bad:
            print(f"{job['id']} {job['state']}" + (f" ({job['error']})" if job.get("error") else ""))
    return EXIT_FAILED if bad else 0


def cmd_violations(args: argparse.Namespace) -> int:
    backend = _backend()
    try:
        found = backend.violations(args.limit)
    finally:
        backend.close()
    if args.json:
        _print_json(found)
        return 0
    if not found:
        print("no violations", file=sys.stderr)
    for v in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v["at"]))
        jobs = f" [{', '.join(v['job_ids'])}]" if v["job_ids"] else ""
        print(f"{when}  {v['severity']:8}  {v['rule']:20}  {v['message']}{jobs}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from console.core import config

    cfg = config.load()
    rows = cfg.effective()
    if args.json:
        _print_json({k: {"value": v, "source": s} for k, v, s in rows})
        return 0
    print(f"# config file: {cfg.path}{'' if cfg.path and cfg.path.exists() else ' (not present)'}")
    print(f"# data dir:    {_home()}")
    for key, value, source in rows:
        rendered = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        print(f"{key} = {rendered}    # {source}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from console import eventloop
    from console.core import config

    cfg = config.load()
    _apply_overrides(cfg, args)
    return eventloop.run(_serve(cfg), cfg.get("owner.loop"))


def _apply_overrides(cfg: Any, args: argparse.Namespace) -> None:
    for key, value in getattr(args, "overrides", {}).items():
        cfg.set(key, value, "command line")


async def _serve(cfg: Any) -> int:
    import asyncio
    import logging
    import signal

    from console.core.errors import OwnerRunning
    from console.owner import Owner

    logging.basicConfig(level=logging.WARNING, format="twolane: %(message)s")
    owner = Owner(_home(), cfg)
    loop = asyncio.get_running_loop()
    # Handled from the start: a stop asked for while the owner starts (its socket is up
    # before start() returns) stops it once started, never half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, owner.request_stop)
    try:
        await owner.start()
    except OwnerRunning as exc:
        raise CliError(str(exc), EXIT_OWNER) from None
    from console.eventloop import loop_name

    print(f"twolane: serving {owner.home} (pid {__import__('os').getpid()}, {loop_name(loop)})",
          flush=True)  # fmt: skip
    if owner.gateway_url:
        print(f"twolane: gateway on {owner.gateway_url}", flush=True)
    await owner.wait_for_stop_request()
    stopped = await owner.stop()
    print(f"twolane: stopped; {len(stopped)} running job(s) recorded interrupted", flush=True)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module("console.tui.app")
    except ImportError as exc:
        raise CliError(f"the console is not available ({exc}); reinstall twolane") from exc
    return int(module.run(args) or 0)


# ---- parser ---------------------------------------------------------------------------


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


class _Skipped:
    """Stands in for the parser of a command that is not being run: takes any call."""

    def __getattr__(self, name: str) -> Callable[..., _Skipped]:
        return lambda *args, **kwargs: self


class _OneCommand:
    """Sub-parsers that build only the command being run.

    Each sub-parser costs argparse about a millisecond (formatter, gettext, the ``-h``
    action); building all two dozen was a fifth of ``twolane add``'s time."""

    def __init__(self, sub: argparse._SubParsersAction, only: str | None) -> None:  # type: ignore[type-arg]
        self._sub = sub
        self._only = only

    @property
    def choices(self) -> dict[str, argparse.ArgumentParser]:
        return self._sub.choices

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self._only is None or name == self._only:
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()


def _command_word(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``only``) the top level with that one sub-command."""
    parser = argparse.ArgumentParser(
        prog="twolane",
        description="Two lanes for one machine: local work one at a time, remote work "
        "bounded, never both at once. With no command, opens the console.",
    )
    from console import __version__

    parser.add_argument("--version", action="version", version=f"twolane {__version__}")
    parser.add_argument("--demo", action="store_true",
                        help="open the console on a throw-away data dir with sample jobs")  # fmt: skip
    parser.set_defaults(func=cmd_console)
    sub = _OneCommand(parser.add_subparsers(dest="command", metavar="COMMAND"), only)

    p = sub.add_parser("serve", help="run the scheduler headless, in the foreground")
    p.set_defaults(func=cmd_serve, overrides={})

    p = sub.add_parser("add", help="enqueue a command; prints the job id")
    p.add_argument("--lane", default="local", help="local (one at a time) or remote (bounded)")
    p.add_argument("--priority", type=int, default=0, help="higher runs sooner (default 0)")
    p.add_argument("--name", help="a label shown in lists (default: the command)")
    p.add_argument("--timeout", type=_non_negative_float, help="seconds before the job is killed")
    p.add_argument("--retry", type=int, default=0, metavar="N", help="re-run a failed attempt up to N more times")
    p.add_argument("--retry-on-interrupt", action="store_true",
                   help="if the owner stops or dies mid-run, re-queue at the head of the lane")  # fmt: skip
    p.add_argument("--cwd", help="working directory (default: the current one)")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment")
    p.add_argument("--shell", action="store_true", help="run COMMAND as one /bin/sh string")
    p.add_argument("--force", action="store_true", help="skip the pre-flight gates (recorded as a violation)")
    p.add_argument("--model", help="the model this job loads: a .gguf path or an Ollama name "
                   "(its predicted footprint must fit in free memory)")  # fmt: skip
    p.add_argument("--ctx", type=_positive_int, help="context per sequence for --model's footprint (default 4096)")
    p.add_argument("--parallel", type=_positive_int, help="parallel sequences for --model's footprint (default 1)")
    p.add_argument("--kv-type", choices=["f16", "q8_0", "q4_0"], help="KV cache type for --model's footprint (default f16)")
    p.add_argument("--json", action="store_true", help="print the whole job as JSON")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("ls", help="list jobs")
    p.add_argument("--state", action="append", help="only this state (repeatable)")
    p.add_argument("--lane", help="only this lane")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("show", help="one job in full: timings, attempts, exit code")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("logs", help="print a job's log")
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel queued or running jobs")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("priority", help="set a queued job's priority")
    p.add_argument("id")
    p.add_argument("priority", type=int)
    p.set_defaults(func=cmd_priority)

    p = sub.add_parser("retry", help="queue a finished job again")
    p.add_argument("id")
    p.set_defaults(func=cmd_retry)

    for action in ("pause", "resume"):
        p = sub.add_parser(action, help=f"{action} a lane: running jobs finish, nothing new starts"
                           if action == "pause" else "resume a paused lane")  # fmt: skip
        p.add_argument("lanes", choices=["local", "remote", "all"])
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=_lanes_cmd(action))

    p = sub.add_parser("status", help="lanes: running, queued, paused, held, whose turn")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("wait", help="block until jobs end; exit 0 only if all succeeded")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--timeout", type=_non_negative_float)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("violations", help="rule violations, oldest first")
    p.add_argument("--limit", type=_positive_int, default=500, help="at most this many, the newest (default 500)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_violations)

    p = sub.add_parser("config", help="configuration")
    csub = p.add_subparsers(dest="config_command", metavar="show", required=True)
    c = csub.add_parser("show", help="effective values and where each came from")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_show)

    for name, commands in COMMAND_MODULES.items():
        if only is None or only in commands:
            importlib.import_module(name).register(sub)
    return parser


_CORE_COMMANDS = frozenset({
    "serve", "add", "ls", "show", "logs", "cancel", "priority", "retry", "pause", "resume",
    "status", "wait", "violations", "config",
})  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    word = _command_word(argv)
    known = _CORE_COMMANDS.union(*COMMAND_MODULES.values())
    # No command (the console), help, or a typo: the whole parser lists every command.
    parser = build_parser(word if word in known else None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from console.client import OwnerGone
    from console.core.config import ConfigError
    from console.core.errors import OwnerRunning, UserError

    args = parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`twolane ls | head`): stop quietly, as `cat` would.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except CliError as exc:
        print(f"twolane: {exc}", file=sys.stderr)
        return exc.code
    except (UserError, ConfigError) as exc:
        print(f"twolane: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OwnerGone, OwnerRunning) as exc:
        print(f"twolane: {exc}", file=sys.stderr)
        return EXIT_OWNER
    except KeyboardInterrupt:
        return 130
