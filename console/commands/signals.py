"""Signals commands: ``twolane gates`` (each pre-flight gate: reading, threshold,
verdict) and ``twolane predict MODEL`` (a model's memory footprint from its GGUF)."""

from __future__ import annotations

import argparse
from typing import Any

from console.cli import EXIT_FAILED, _home, _positive_int, _print_json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("gates", help="pre-flight gates: reading, threshold, verdict",
                       description="Check the gates a local job must pass before it starts. "
                       "Exit 0 when all pass, 1 when any fails.")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gates)

    p = sub.add_parser("predict", help="a model's memory footprint (weights, KV cache) and whether it fits",
                       description="Read a GGUF file's metadata (or ask a running Ollama about a "
                       "model name) and predict its memory footprint. Exit 0 when it fits in "
                       "available memory minus gates.memory_headroom_gb, 1 when it does not.")  # fmt: skip
    p.add_argument("model", help="a .gguf path, or an Ollama model name such as llama3.2:1b")
    p.add_argument("--ctx", type=_positive_int, help="context length per sequence (default 4096)")
    p.add_argument("--parallel", type=_positive_int, default=1, help="parallel sequences (default 1)")
    p.add_argument("--kv-type", choices=["f16", "q8_0", "q4_0"], default="f16",
                   help="KV cache element type (default f16)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)


def cmd_gates(args: argparse.Namespace) -> int:
    from console.client import owner_client

    client = owner_client(_home())
    if client is not None:
        report = client.request("GET", "/gates")
    else:
        from console.core import config
        from console.core.signals.extension import local_report

        report = local_report(config.load(), _home())
        report["owner"] = False
    if args.json:
        _print_json(report)
    else:
        print(fmt_gates(report))
    return 0 if report["ok"] else EXIT_FAILED


# The unit of each gate's reading and threshold (the JSON carries bare numbers).
UNITS = {"load": " per core", "disk": " GB", "swap": " GB", "swap_growth": " MB", "model": " GB"}


def fmt_gates(report: dict[str, Any]) -> str:
    rows = [["GATE", "READING", "THRESHOLD", "VERDICT"]]
    for g in report["gates"]:
        name = g["gate"] + (f" {g['subject']}" if g.get("subject") else "")
        unit = UNITS.get(g["gate"], "")
        rows.append([name, _cell(g["reading"], unit), _cell(g["threshold"], unit), g["verdict"]])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    failing = [g["message"] for g in report["gates"] if g["verdict"] != "pass"]
    lines += failing
    if report.get("job"):
        lines.append(f"checked for the next local job: {report['job']}")
    if report.get("held"):
        lines.append(f"local lane held: {report['held']}")
    if report.get("owner") is False:
        lines.append("(no owner running: one reading of this machine)")
    return "\n".join(lines)


def _cell(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def cmd_predict(args: argparse.Namespace) -> int:
    from console.core import config
    from console.core.signals import gates, models, settings
    from console.core.signals.extension import ollama_url
    from console.core.signals.predict import DEFAULT_CTX, MB, fits, predict
    from console.core.signals.sources import SystemSource

    cfg = config.load()
    settings.check(cfg)
    shape, source = models.resolve(args.model, ollama_url(cfg))
    pred = predict(shape, model=args.model, source=source, ctx=args.ctx or DEFAULT_CTX,
                   parallel=args.parallel, kv_type=args.kv_type,
                   overhead_bytes=int(cfg.get("signals.runtime_overhead_mb") * MB))  # fmt: skip
    available = SystemSource([], [], 0).memory()["mem_available"]
    headroom = int(gates.Thresholds.from_config(cfg).memory_headroom_gb * gates.GB)
    fit = fits(pred, available, headroom)
    if args.json:
        _print_json({**pred.to_dict(), "fit": fit.to_dict()})
    else:
        print(fmt_prediction(pred, fit))
    return 0 if fit.fits else EXIT_FAILED


def fmt_prediction(pred: Any, fit: Any) -> str:
    from console.core.signals.predict import gb

    mib = 1024 * 1024
    swa = f", {pred.swa_layer_count} sliding-window" if pred.swa_layer_count else ""
    lines = [
        f"model       {pred.model}",
        f"source      {pred.source}",
        f"arch        {pred.arch}, {pred.n_layer} layers{swa}, trained context {pred.context_length or '?'}",
        f"context     {pred.ctx} x {pred.parallel} parallel, KV cache {pred.kv_type}",
        f"weights     {gb(pred.weights_bytes)} GB ({pred.weights_bytes / mib:.1f} MiB)",
        f"kv cache    {gb(pred.kv_bytes)} GB ({pred.kv_bytes / mib:.1f} MiB)",
        f"compute     {gb(pred.compute_bytes)} GB (estimate)",
        f"overhead    {gb(pred.overhead_bytes)} GB",
        f"total       {gb(pred.total_bytes)} GB",
        f"budget      {gb(fit.budget_bytes)} GB ({gb(fit.available_bytes)} GB available - "
        f"{gb(fit.headroom_bytes)} GB headroom)",
        "verdict     " + ("fits" if fit.fits else "does not fit"),
    ]
    return "\n".join(lines)
