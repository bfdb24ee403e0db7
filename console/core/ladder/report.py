"""The files a run leaves: requests.csv, steps.csv, summary.json, report.md, chart.svg;
and reading them back for ``twolane ladder compare``."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from console import __version__
from console.core.errors import UserError
from console.core.ladder.chart import Series, svg_chart, text_chart
from console.core.ladder.machine import machine_description
from console.core.ladder.run import LadderResult
from console.core.ladder.verdict import slo_verdicts

REQUEST_COLUMNS = ("step", "concurrency", "seq", "worker", "start", "ttft_s", "e2e_s", "itl_mean_ms",
                   "itl_ms", "tokens_in", "tokens_out", "status", "error", "response_id")  # fmt: skip
STEP_COLUMNS = (
    "step", "concurrency", "requests", "ok", "errors", "error_rate", "wall_s",
    "ttft_p50", "ttft_p95", "ttft_p99", "e2e_p50", "e2e_p95", "e2e_p99", "itl_p50", "itl_p95",
    "tokens_in", "tokens_out", "tokens_per_s", "requests_per_s",
    "server_rss_peak_mb", "swap_delta_mb", "swap_growth_mb", "mem_used_pct_peak",
    "mem_pressure_peak", "load_peak",
)  # fmt: skip


def git_revision() -> str | None:
    """``git describe --always --dirty`` of the checkout twolane runs from, if any."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                             capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    return value


def request_row(r: Any) -> dict[str, Any]:
    return {
        "step": r.step, "concurrency": r.concurrency, "seq": r.seq, "worker": r.worker,
        "start": f"{r.start:.6f}", "ttft_s": r.ttft, "e2e_s": r.e2e,
        "itl_mean_ms": sum(r.itl) / len(r.itl) * 1000 if r.itl else None,
        "itl_ms": " ".join(f"{g * 1000:.3f}" for g in r.itl),
        "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "status": r.status,
        "error": r.error, "response_id": r.response_id,
    }  # fmt: skip


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})


def build_summary(result: LadderResult) -> dict[str, Any]:
    """summary.json: the contract, the server, the machine, every step, the knee."""
    spec = result.spec
    contract = {
        "prompts": len(spec.prompts), "prompt_source": spec.prompt_source,
        "max_tokens": spec.max_tokens, "temperature": 0, "stream": spec.stream,
        "requests_per_step": spec.requests, "duration_per_step_s": spec.duration,
        "steps": spec.steps, "request_timeout_s": spec.request_timeout,
        "http_client": "one keep-alive httpx.AsyncClient",
    }  # fmt: skip
    return {
        "model": spec.model,
        "server": result.server,
        "client": contract,
        "slo": spec.slo.to_dict(),
        "twolane": {"version": __version__, "git_revision": git_revision()},
        "machine": machine_description(),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "steps": result.steps,
        "knee": result.knee,
        "stopped": result.stopped,
        "verdicts": slo_verdicts(result.steps, spec.slo, result.knee),
    }


def latency_series(steps: list[dict[str, Any]], metric: str, label: str, marker: str,
                   colour: str) -> Series:  # fmt: skip
    return Series(label, marker, {s["concurrency"]: s[metric] for s in steps if s.get(metric) is not None}, colour)


def _chart_parts(summary: dict[str, Any]) -> tuple[list[Series], tuple[str, float] | None, int | None]:
    """What one run's chart draws: e2e p95/p50 and TTFT p95, the SLO line, the knee."""
    steps = summary["steps"]
    series = [latency_series(steps, "e2e_p95", "e2e p95", "●", "#d62728"),
              latency_series(steps, "e2e_p50", "e2e p50", "○", "#1f77b4"),
              latency_series(steps, "ttft_p95", "ttft p95", "◆", "#2ca02c")]  # fmt: skip
    series = [s for s in series if s.points]
    limit = None
    if steps and steps[0].get("e2e_p95"):
        ratio = summary["slo"]["p95_ratio"]
        limit = (f"SLO {ratio:g}x baseline p95", steps[0]["e2e_p95"] * ratio)
    knee = (summary.get("knee") or {}).get("concurrency")
    return series, limit, knee


def charts(summary: dict[str, Any]) -> tuple[str, str]:
    """The text and SVG charts of one run: e2e p95/p50 and TTFT p95 with the SLO line."""
    series, limit, knee = _chart_parts(summary)
    title = f"{summary['model']}: latency vs concurrency"
    return text_chart(series, limit=limit, knee=knee), svg_chart(series, limit=limit, knee=knee, title=title)


def terminal_chart(summary: dict[str, Any], height: int = 12) -> str:
    """The text chart of a run (or of the steps a running one has so far), ``height``
    rows of plot; the same drawing as the report's."""
    series, limit, knee = _chart_parts(summary)
    return text_chart(series, limit=limit, knee=knee, height=max(3, height))


def _fmt(value: Any, unit: str = "") -> str:
    """A reading for humans: seconds to the millisecond, SLO values in their unit."""
    if value is None:
        return "-"
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "x baseline":
        return f"{value:.3f}x"
    if unit:
        return f"{value:.3f} {unit}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(summary: dict[str, Any], chart_text: str) -> str:
    """report.md: the gate report."""
    server, client, tw, mach = summary["server"], summary["client"], summary["twolane"], summary["machine"]
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(summary["started_at"] or time.time()))
    knee = summary.get("knee")
    lines = [
        f"# Ladder gate report: {summary['model']}",
        "",
        f"Run {when}. **{'Knee at concurrency ' + str(knee['concurrency']) if knee else 'No knee'}** — {summary['stopped']}.",
        "",
        "## Server",
        f"- URL: {server.get('url')} ({server.get('api', '?')} API"
        + (f", server version {server['server_version']}" if server.get("server_version") else "") + ")",
        f"- Model: {summary['model']}" + (f", digest {server['model_digest']}" if server.get("model_digest") else ", digest not reported by the server"),
        "- Location: " + ("this machine" + (f", pid {server['pid']}" if server.get("pid") else ", pid not found (pass --server-pid)")
                          if server.get("local") else "another machine (no process or swap readings)"),
        "",
        "## Client (frozen)",
        f"- {client['prompts']} fixed prompts ({client['prompt_source']}), max_tokens {client['max_tokens']}, "
        f"temperature 0, {'streaming' if client['stream'] else 'not streaming'}",
        f"- Steps {','.join(map(str, client['steps']))}; "
        + (f"{client['requests_per_step']} requests per step (at least the concurrency)"
           if client["requests_per_step"] else f"{client['duration_per_step_s']:g}s per step")
        + f"; request timeout {client['request_timeout_s']:g}s; {client['http_client']}",
        f"- twolane {tw['version']}" + (f", git {tw['git_revision']}" if tw.get("git_revision") else ""),
        f"- Machine: {mach['hostname']}, {mach['os']} {mach['arch']}, {mach['cpu']}, {mach['cores']} cores, "
        f"{mach['memory_gb']} GB memory, {mach['swap_gb']} GB swap, Python {mach['python']}",
        "",
        "## SLOs",
        "| SLO | limit | worst reading | verdict |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for v in summary["verdicts"]:
        lines.append(f"| {v['rule']} | {_fmt(v['threshold'], v['unit'])} | {_fmt(v['worst'], v['unit'])} | {v['verdict'].upper()} |")
    lines += ["", "## Steps", "",
              "| c | req | err | ttft p50 | ttft p95 | e2e p50 | e2e p95 | e2e p99 | tok/s | req/s | rss MB | swap Δ MB | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summary["steps"]:
        cells = [s["concurrency"], s["requests"], f"{s['error_rate']:.1%}",
                 *(_fmt(s[k]) for k in ("ttft_p50", "ttft_p95", "e2e_p50", "e2e_p95", "e2e_p99")),
                 _rate(s["tokens_per_s"]),
                 "-" if s["requests_per_s"] is None else f"{s['requests_per_s']:.2f}",
                 "-" if s.get("server_rss_peak_mb") is None else f"{s['server_rss_peak_mb']:.0f}",
                 "-" if s.get("swap_delta_mb") is None else f"{s['swap_delta_mb']:+.0f}",
                 "-" if s.get("load_peak") is None else f"{s['load_peak']:.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "## Latency vs concurrency", "", "```", chart_text, "```", "", "![chart](chart.svg)", ""]
    return "\n".join(lines)


def write_report(result: LadderResult, out: Path) -> dict[str, Any]:
    """Write every file into ``out``; returns the summary (with the text chart)."""
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "requests.csv", REQUEST_COLUMNS, [request_row(r) for r in result.records])
    _write_csv(out / "steps.csv", STEP_COLUMNS, result.steps)
    summary = build_summary(result)
    chart_text, chart_svg = charts(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "chart.svg").write_text(chart_svg)
    (out / "report.md").write_text(render_markdown(summary, chart_text))
    summary["chart"] = chart_text
    return summary


PROGRESS_FILE = "progress.json"


def progress_view(result: LadderResult, current: dict[str, Any] | None) -> dict[str, Any]:
    """progress.json while a run goes: the summary's shape for the steps done so far,
    plus ``current`` (the step being measured: step, concurrency, done, total)."""
    spec = result.spec
    return {
        "model": spec.model, "server": {"url": spec.url, **result.server},
        "slo": spec.slo.to_dict(), "planned": list(spec.steps),
        "requests_per_step": spec.requests, "duration_per_step_s": spec.duration,
        "started_at": result.started_at, "steps": list(result.steps), "knee": result.knee,
        "stopped": result.stopped, "current": current,
    }  # fmt: skip


def write_progress(out: Path, view: dict[str, Any]) -> None:
    """Replace progress.json in one rename, so a reader never sees half a file."""
    tmp = out / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps(view) + "\n")
    tmp.replace(out / PROGRESS_FILE)


def load_run(folder: Path) -> dict[str, Any]:
    """What a run folder says now, in the summary's shape plus ``finished``, ``planned``
    and ``current``: summary.json when the run ended, else progress.json while it runs,
    else spec.json (queued, nothing measured yet). ``UserError`` when none is readable."""
    if (folder / "summary.json").is_file():
        data = load_summary(folder)
        return {**data, "finished": True, "current": None,
                "planned": list(data.get("client", {}).get("steps") or [s["concurrency"] for s in data["steps"]])}  # fmt: skip
    for name in (PROGRESS_FILE, "spec.json"):
        path = folder / name
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} ({exc}); re-run the ladder") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} is not a ladder file; pass a folder a `twolane ladder` run wrote")
        if name == "spec.json":
            data = {"model": data.get("model", "?"), "server": {"url": data.get("url")},
                    "slo": data.get("slo") or {}, "planned": data.get("steps") or [], "steps": [],
                    "knee": None, "stopped": "not started", "current": None,
                    "requests_per_step": data.get("requests"), "duration_per_step_s": data.get("duration")}  # fmt: skip
        return {**data, "finished": False}
    raise UserError(f"{folder} holds no ladder run (no summary.json, progress.json or spec.json)")


def load_summary(folder: Path) -> dict[str, Any]:
    """A run's summary.json, or a ``UserError`` naming what is wrong with the folder."""
    path = folder / "summary.json"
    if not path.is_file():
        raise UserError(f"{folder} has no summary.json; pass a folder a `twolane ladder` run wrote")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); re-run the ladder") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise UserError(f"{path} is not a ladder summary; pass a folder a `twolane ladder` run wrote")
    return data


def compare_text(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """Two runs side by side per concurrency, B relative to A, and both p95 curves."""

    def head(tag: str, s: dict[str, Any]) -> str:
        knee = s.get("knee")
        return (f"{tag}: {s['model']} at {s['server'].get('url')}"
                + (f" (digest {str(s['server']['model_digest'])[:19]})" if s["server"].get("model_digest") else "")
                + f"; twolane {s['twolane'].get('version')} {s['twolane'].get('git_revision') or ''}".rstrip()
                + f"; knee {'at c=' + str(knee['concurrency']) if knee else 'none'}")  # fmt: skip

    by_a = {s["concurrency"]: s for s in a["steps"]}
    by_b = {s["concurrency"]: s for s in b["steps"]}
    rows = [["c", f"{name_a} e2e p95", f"{name_b} e2e p95", "B/A", f"{name_a} ttft p95", f"{name_b} ttft p95",
             f"{name_a} tok/s", f"{name_b} tok/s", f"{name_a} err", f"{name_b} err"]]  # fmt: skip
    for c in sorted(set(by_a) | set(by_b)):
        sa, sb = by_a.get(c, {}), by_b.get(c, {})
        pa, pb = sa.get("e2e_p95"), sb.get("e2e_p95")
        rows.append([str(c), _fmt(pa), _fmt(pb), f"{pb / pa:.2f}x" if pa and pb else "-",
                     _fmt(sa.get("ttft_p95")), _fmt(sb.get("ttft_p95")),
                     _rate(sa.get("tokens_per_s")), _rate(sb.get("tokens_per_s")),
                     "-" if not sa else f"{sa['error_rate']:.1%}", "-" if not sb else f"{sb['error_rate']:.1%}"])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(r)) for r in rows]
    chart = text_chart([latency_series(a["steps"], "e2e_p95", f"{name_a} e2e p95", "●", "#d62728"),
                        latency_series(b["steps"], "e2e_p95", f"{name_b} e2e p95", "○", "#1f77b4")])  # fmt: skip
    return "\n".join([head(name_a, a), head(name_b, b), "", *table, "", chart])
