"""``twolane ladder``: measure an endpoint under stepped concurrency and stop at the knee.

The ladder saturates the machine, so by default it runs as a job in the local lane: the
command writes the plan to ``spec.json`` in the output folder, enqueues
``python -m console ladder run --spec spec.json``, then follows that job's log (the
progress lines and the final chart) and waits for it. With no owner running the job
waits in the queue; the command says so on stderr and keeps waiting until an owner
starts. ``--now`` runs in the foreground instead, without queueing; ``--detach`` only
enqueues.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from console.cli import EXIT_FAILED, CliError, _home, _print_json

EXIT_CANCELLED = 130


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "ladder",
        help="load-test an LLM endpoint at rising concurrency, stop at the knee, write a gate report",
        description="Send fixed prompts at each concurrency in --steps, one step after another, "
        "and stop at the first step that breaks an SLO (the knee). Runs as a local-lane job "
        "unless --now. Writes requests.csv, steps.csv, summary.json, report.md, chart.svg.",
    )
    p.add_argument("--url", help="OpenAI-compatible or Ollama base URL (or the twolane gateway)")
    p.add_argument("--model", help="model name the server answers with")
    p.add_argument("--steps", help="concurrencies to climb (default: config ladder.steps, 1,2,4,8)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--requests", type=int, metavar="N",
                     help="requests per step (default: config ladder.requests, 16)")  # fmt: skip
    how.add_argument("--duration", type=float, metavar="SECONDS", help="run each step this long instead")
    p.add_argument("--prompt-file", type=Path, help="prompts, one per line (default: 8 built-in prompts)")
    p.add_argument("--max-tokens", type=int, help="max tokens per request (default: config ladder.max_tokens)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="stream responses (needed for time to first token; default on)")  # fmt: skip
    p.add_argument("--api", choices=["auto", "openai", "ollama"], default="auto",
                   help="API of the server (auto: Ollama if it answers /api/version)")  # fmt: skip
    p.add_argument("--out", type=Path, help="output folder (default: ladder/<date>-<model> in the data dir)")
    p.add_argument("--slo", help="gate, e.g. p95_ratio=3,error_rate=0.01,swap_gb=2 (default: config ladder.slo)")
    p.add_argument("--server-pid", type=int, help="the server's pid, when it cannot be found by its port")
    p.add_argument("--priority", type=int, default=0, help="queue priority of the ladder job")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--now", action="store_true", help="run here in the foreground, without queueing")
    mode.add_argument("--detach", action="store_true", help="enqueue, print the job id and folder, return")
    p.set_defaults(func=cmd_ladder)
    lsub = p.add_subparsers(dest="ladder_command", metavar="{compare,show,run}")

    c = lsub.add_parser("compare", help="two ladder runs side by side (before and after a change)")
    c.add_argument("dir_a", type=Path, metavar="DIR_A")
    c.add_argument("dir_b", type=Path, metavar="DIR_B")
    c.add_argument("--json", action="store_true", help="both summaries' steps as JSON")
    c.set_defaults(func=cmd_compare)

    s = lsub.add_parser("show", help="a finished run's verdicts and chart")
    s.add_argument("dir", type=Path, metavar="DIR")
    s.set_defaults(func=cmd_show)

    r = lsub.add_parser("run", help="run a spec.json in the foreground (what the queued job runs)")
    r.add_argument("--spec", type=Path, required=True)
    r.set_defaults(func=cmd_run)


# ---- building the plan --------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "model"


def build_spec(args: argparse.Namespace) -> Any:
    """The validated plan from the flags and the config (raises UserError / CliError)."""
    from console.core import config
    from console.core.ladder.plan import (
        LadderSpec,
        parse_slo,
        parse_steps,
        prompts_from_text,
        validate,
    )

    if not args.url or not args.model:
        raise CliError("give --url and --model, e.g. twolane ladder --url http://127.0.0.1:11434 --model llama3.2:1b")
    cfg = config.load()
    kwargs: dict[str, Any] = {}
    if args.prompt_file is not None:
        try:
            text = args.prompt_file.read_text()
        except OSError as exc:
            raise CliError(f"cannot read --prompt-file {args.prompt_file} ({exc.strerror}); pass a readable file") from None
        kwargs["prompts"] = prompts_from_text(text)
        kwargs["prompt_source"] = str(args.prompt_file.resolve())
    home = _home()
    out = args.out or home / "ladder" / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(args.model)}"
    spec = LadderSpec(
        url=args.url,
        model=args.model,
        steps=parse_steps(args.steps or cfg.get("ladder.steps")),
        out=str(Path(out).expanduser().resolve()),
        requests=None if args.duration is not None else (args.requests or cfg.get("ladder.requests")),
        duration=args.duration,
        max_tokens=args.max_tokens if args.max_tokens is not None else cfg.get("ladder.max_tokens"),
        stream=args.stream,
        api=args.api,
        slo=parse_slo(args.slo or "", parse_slo(cfg.get("ladder.slo"))),
        server_pid=args.server_pid,
        request_timeout=cfg.get("ladder.request_timeout"),
        sample_interval=cfg.get("ladder.sample_interval"),
        home=str(home),
        **kwargs,
    )
    return validate(spec)


def write_spec(spec: Any) -> Path:
    out = Path(spec.out)
    # spec.json alone is a run still queued or running (or one that never finished): its
    # job reads that file when it starts, so it is no more ours to overwrite than a report.
    if (out / "summary.json").exists() or (out / "spec.json").exists():
        raise CliError(f"{out} already holds a ladder run; pass another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create --out {out} ({exc.strerror}); pass a writable folder") from None
    path = out / "spec.json"
    path.write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    return path


# ---- commands -----------------------------------------------------------------------


def cmd_ladder(args: argparse.Namespace) -> int:
    spec = build_spec(args)
    spec_path = write_spec(spec)
    if args.now:
        return run_spec_file(spec_path)
    from console.client import connect

    backend = connect(_home())
    try:
        job = backend.add({
            "command": [sys.executable, "-m", "console", "ladder", "run", "--spec", str(spec_path)],
            "lane": "local",
            "name": f"ladder {spec.model} c={','.join(map(str, spec.steps))}",
            "priority": args.priority,
            "cwd": spec.out,
            "extra": {"ladder_out": spec.out},
        })  # fmt: skip
    except BaseException:
        backend.close()
        raise
    if args.detach:
        backend.close()
        print(job["id"])
        print(f"twolane: ladder job {job['id']} queued; results in {spec.out}", file=sys.stderr)
        if backend.mode == "direct":
            print("twolane: no owner is running; it starts when `twolane serve` or `twolane` runs",
                  file=sys.stderr)  # fmt: skip
        return 0
    print(f"twolane: ladder job {job['id']} queued in the local lane; results in {spec.out}",
          file=sys.stderr)  # fmt: skip
    return follow(backend, job["id"])


def follow(backend: Any, job_id: str) -> int:
    """Print the job's log as it grows until the job ends (like ``logs -f`` + ``wait``),
    and say why it waits when a gate holds it. Ctrl-C cancels the ladder: a half-measured
    load test is not left running unseen. Closes ``backend`` (or the owner client that
    replaced it)."""
    from console.client import owner_client

    offset = 0
    told_no_owner = False
    held: str | None = None
    next_check = 0.0
    out = sys.stdout.buffer
    try:
        while True:
            if backend.mode == "direct":
                found = owner_client(_home())  # an owner may have started
                if found is not None:
                    backend.close()
                    backend = found
            if backend.mode == "direct" and not told_no_owner:
                print("twolane: no owner is running; the ladder waits in the local lane until "
                      "`twolane serve` or `twolane` runs (Ctrl-C cancels it; --now runs it here instead)",
                      file=sys.stderr, flush=True)  # fmt: skip
                told_no_owner = True
            data, state = backend.log_chunk(job_id, offset)
            if data:
                out.write(data)
                out.flush()
                offset += len(data)
                continue
            if state not in ("queued", "running"):
                break
            if state == "queued" and time.monotonic() >= next_check:
                next_check = time.monotonic() + 2.0
                reason = backend.get(job_id).get("held_reason")
                if reason and reason != held:
                    print(f"twolane: the local lane is held: {reason}", file=sys.stderr, flush=True)
                held = reason
            time.sleep(0.2)
        job = backend.get(job_id)
    except KeyboardInterrupt:
        from console.core.errors import Conflict

        try:
            job = backend.cancel(job_id)
        except Conflict:  # it ended on its own in the meantime
            job = backend.get(job_id)
        print(f"\ntwolane: ladder job {job_id} {job['state']}", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        backend.close()
    if job["state"] != "succeeded":
        print(f"twolane: ladder job {job_id} {job['state']}" + (f" ({job['error']})" if job.get("error") else ""),
              file=sys.stderr)  # fmt: skip
        # Cancelled elsewhere (`twolane cancel`, the console) exits as Ctrl-C here does.
        return EXIT_CANCELLED if job["state"] == "cancelled" else EXIT_FAILED
    return 0


def run_spec_file(spec_path: Path) -> int:
    """Run a plan in this process: progress to stdout, files into its folder, the knee's
    breaches recorded as violations. Exit 1 when no request succeeded at all."""
    import asyncio
    import os
    import signal

    from console.core.errors import UserError
    from console.core.ladder.plan import LadderSpec
    from console.core.ladder.report import (
        PROGRESS_FILE,
        progress_view,
        write_progress,
        write_report,
    )
    from console.core.ladder.run import LadderResult, run_ladder

    try:
        spec = LadderSpec.from_dict(json.loads(spec_path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise CliError(f"cannot read the ladder spec {spec_path} ({exc}); start it with `twolane ladder`") from None
    result = LadderResult(spec)

    def log(line: str) -> None:
        print(line, flush=True)

    out = Path(spec.out)
    last_write = 0.0

    def progress(step: int, concurrency: int, done: int, total: int | None) -> None:
        # progress.json feeds the console's ladder view; a step's start and end always
        # land, requests in between at most twice a second.
        nonlocal last_write
        now = time.monotonic()
        if done and done != total and now - last_write < 0.5:
            return
        last_write = now
        current = {"step": step, "concurrency": concurrency, "done": done, "total": total}
        try:
            write_progress(out, progress_view(result, current))
        except OSError as exc:  # the view is a convenience: never stop the measurement
            log(f"ladder: cannot write {out / PROGRESS_FILE} ({exc.strerror})")

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        await run_ladder(spec, result, log=log, progress=progress)

    cancelled = False
    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        cancelled = True
        log(result.stopped)
    summary = write_report(result, out)
    (out / PROGRESS_FILE).unlink(missing_ok=True)  # summary.json says it all now
    print("", flush=True)
    print(summary["chart"], flush=True)
    for v in summary["verdicts"]:
        print(f"SLO {v['rule']}: {v['verdict']}", flush=True)
    print(f"report: {Path(spec.out) / 'report.md'}", flush=True)
    record_violations(spec, result, os.environ.get("TWOLANE_JOB_ID"))
    if cancelled:
        return EXIT_CANCELLED
    if not any(row["ok"] for row in result.steps):
        first = next((r.error for r in result.records if r.error), "no request was sent")
        print(f"twolane: no request succeeded ({first}); check --url, --model and that the server runs",
              file=sys.stderr, flush=True)  # fmt: skip
        return EXIT_FAILED
    return 0


def record_violations(spec: Any, result: Any, job_id: str | None) -> None:
    """Each SLO the knee broke becomes a violation (rule ``ladder.<slo>``), through the
    owner when one runs, else straight into the database."""
    if not result.knee:
        return
    from console.client import connect

    backend = connect(Path(spec.home) if spec.home else _home())
    try:
        for b in result.knee["breaches"]:
            backend.record_violation({
                "rule": f"ladder.{b['rule']}", "message": f"{spec.model} at {spec.url}: {b['message']}",
                "reading": b["reading"], "threshold": b["threshold"], "severity": "warning",
                "job_ids": [job_id] if job_id else [],
            })  # fmt: skip
    finally:
        backend.close()


def cmd_run(args: argparse.Namespace) -> int:
    return run_spec_file(args.spec)


def cmd_compare(args: argparse.Namespace) -> int:
    from console.core.ladder.report import compare_text, load_summary

    a, b = load_summary(args.dir_a), load_summary(args.dir_b)
    if args.json:
        _print_json({"a": {"dir": str(args.dir_a), "model": a["model"], "knee": a.get("knee"), "steps": a["steps"]},
                     "b": {"dir": str(args.dir_b), "model": b["model"], "knee": b.get("knee"), "steps": b["steps"]}})  # fmt: skip
        return 0
    print(f"A = {args.dir_a}\nB = {args.dir_b}")
    print(compare_text(a, b))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from console.core.ladder.report import charts, load_summary

    summary = load_summary(args.dir)
    print(f"{summary['model']} at {summary['server'].get('url')}: {summary['stopped']}")
    for v in summary["verdicts"]:
        print(f"SLO {v['rule']}: {v['verdict']}")
    print()
    print(charts(summary)[0])
    return 0
