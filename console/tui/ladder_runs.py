"""What the ladder view knows: ladder runs found from their jobs (``spec.extra.ladder_out``)
and from the run folders under the data dir's ``ladder/``, each with what its folder says
now (``load_run``), and the rows and words the view draws. No Textual here.

Runs are files: ``twolane ladder`` writes them into its output folder on this machine,
which is the machine the console runs on (attached over ssh too), so the view reads them
from disk, in a thread, and takes the job's state from the session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.core.errors import UserError
from console.core.ladder.plan import Slo
from console.core.ladder.report import load_run
from console.core.ladder.verdict import Breach, step_breaches

LADDER_DIR = "ladder"  # `twolane ladder` puts runs here unless --out says otherwise
LIVE = ("queued", "running")
EMPTY = ("No ladder runs yet. Start one with `twolane ladder --url URL --model M`: it waits "
         "its turn in the local lane and shows here as it climbs.")  # fmt: skip


@dataclass
class LadderRun:
    folder: Path
    job: dict[str, Any] | None = None  # the ladder job, when the console knows it
    view: dict[str, Any] | None = None  # load_run's answer, once read
    problem: str | None = None  # why the folder could not be read
    loaded_state: str | None = None  # the job state when ``view`` was read
    version: int = 0  # counts reads, so the view redraws only what was read again

    @property
    def key(self) -> str:
        return str(self.folder)

    @property
    def state(self) -> str:
        if self.job is not None:
            return str(self.job["state"])
        if self.view is None:
            return "?"
        return "done" if self.view.get("finished") else "partial"

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def stale(self) -> bool:
        """Read the folder again? Live runs always; others once, and when the job moved on."""
        return self.view is None and self.problem is None or self.live or self.loaded_state != self.state

    def load(self) -> None:
        """Read the folder (blocking: call it in a thread)."""
        state = self.state
        try:
            self.view, self.problem = load_run(self.folder), None
        except UserError as exc:
            self.view, self.problem = None, str(exc)
        self.loaded_state = state
        self.version += 1

    def started(self) -> float:
        if self.job is not None:
            return float(self.job.get("created_at") or 0.0)
        if self.view and self.view.get("started_at"):
            return float(self.view["started_at"])
        try:
            return (self.folder / "spec.json").stat().st_mtime
        except OSError:
            return 0.0


def ladder_out(job: dict[str, Any]) -> str | None:
    out = ((job.get("spec") or {}).get("extra") or {}).get("ladder_out")
    return out if isinstance(out, str) and out else None


def run_folders(home: Path) -> list[Path]:
    """Run folders in the data dir's ``ladder/`` (blocking)."""
    try:
        return sorted(p for p in (home / LADDER_DIR).iterdir() if (p / "spec.json").is_file())
    except OSError:
        return []


def merge_runs(known: dict[str, LadderRun], jobs: Iterable[dict[str, Any]],
               folders: Iterable[Path] = ()) -> list[LadderRun]:  # fmt: skip
    """The runs to list: ``known`` runs updated with the jobs' latest dicts, plus new
    ones from jobs and folders. ``known`` is updated in place."""
    for job in jobs:
        out = ladder_out(job)
        if out is None:
            continue
        run = known.get(out)
        if run is None:
            run = known[out] = LadderRun(Path(out))
        run.job = job
    for folder in folders:
        known.setdefault(str(folder), LadderRun(folder))
    return list(known.values())


def newest_first(runs: Iterable[LadderRun]) -> list[LadderRun]:
    """Newest first (a folder's start time is known once it was read)."""
    return sorted(runs, key=lambda r: (-r.started(), r.key))


# ---- words and rows -----------------------------------------------------------------------


def _when(at: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(at)) if at else "-"


def run_row(run: LadderRun) -> tuple[str, ...]:
    """JOB, STATE, MODEL, STEPS (measured/planned), KNEE, STARTED."""
    view = run.view or {}
    steps, planned = view.get("steps") or [], view.get("planned") or []
    knee = (view.get("knee") or {}).get("concurrency")
    if knee is not None:
        knee_text = f"c={knee}"
    elif view.get("finished"):
        knee_text = "none"
    else:
        knee_text = "-"
    model = view.get("model") or (run.job or {}).get("name") or run.folder.name
    return (run.job["id"] if run.job else "-", run.state, str(model),
            f"{len(steps)}/{len(planned)}" if planned else "-", knee_text, _when(run.started()))  # fmt: skip


STEP_COLUMNS = ("C", "REQ", "ERR", "REQ/S", "TOK/S", "P50 s", "P95 s", "P99 s", "GATE")


def _s(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _gate(found: list[Breach]) -> str:
    if not found:
        return "pass"
    words = {"p95_ratio": lambda b: f"p95 {b.reading:.1f}x", "error_rate": lambda b: "errors",
             "swap_gb": lambda b: "swap"}  # fmt: skip
    return "FAIL " + ",".join(words[b.rule](b) for b in found)


def step_rows(view: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """The per-concurrency table: cells and a colour class (success, error, accent) per row;
    the step being measured comes last with its requests done so far."""
    steps = view.get("steps") or []
    gates = step_breaches(steps, Slo(**(view.get("slo") or {})))
    rows: list[tuple[tuple[str, ...], str]] = []
    for step, found in zip(steps, gates, strict=True):
        cells = (str(step["concurrency"]), str(step["requests"]), f"{step['error_rate']:.1%}",
                 "-" if step.get("requests_per_s") is None else f"{step['requests_per_s']:.2f}",
                 "-" if step.get("tokens_per_s") is None else f"{step['tokens_per_s']:.1f}",
                 _s(step.get("e2e_p50")), _s(step.get("e2e_p95")), _s(step.get("e2e_p99")), _gate(found))  # fmt: skip
        rows.append((cells, "error" if found else "success"))
    current = view.get("current")
    if current and not view.get("finished") and current["step"] > len(steps):
        total = current.get("total")
        done = f"{current['done']}/{total}" if total else str(current["done"])
        rows.append(((str(current["concurrency"]), done, *("…",) * 6, "measuring"), "accent"))
    return rows


def progress(view: dict[str, Any]) -> tuple[float, str] | None:
    """How far a running ladder is (0..1) and what it is doing, or None when not running."""
    current = view.get("current")
    planned = view.get("planned") or []
    if view.get("finished") or not current or not planned:
        return None
    steps_done = len(view.get("steps") or [])
    total = current.get("total")
    within = current["done"] / total if total else 0.0
    fraction = min(1.0, (steps_done + (within if current["step"] > steps_done else 0.0)) / len(planned))
    words = f"step {current['step']} of {len(planned)} · concurrency {current['concurrency']} · "
    words += f"{current['done']}/{total} requests" if total else f"{current['done']} requests"
    return fraction, words


def status_text(run: LadderRun) -> tuple[str, str]:
    """A line about the run (a finished one: a second line with each SLO's verdict) and a
    colour class for it."""
    if run.problem:
        return run.problem, "error"
    job = run.job or {}
    view = run.view or {}
    if run.state == "queued":
        held = job.get("held_reason")
        return ("queued in the local lane" + (f" · held: {held}" if held else "")), "warning" if held else "muted"
    if run.state == "running" and not view.get("finished"):
        if not view.get("current"):
            return "starting: asking the server what it is…", "accent"
        return f"climbing; stops when {slo_words(view)}", "accent"
    verdicts = view.get("verdicts") or []
    slo = " · ".join(f"{v['rule']} {v['verdict']}" for v in verdicts)
    stopped = view.get("stopped") or ""
    if run.state in ("failed", "cancelled", "interrupted") and job.get("error") and not view.get("finished"):
        stopped = f"{run.state}: {job['error']}"
    knee = view.get("knee")
    style = "error" if knee else ("success" if view.get("finished") else "warning")
    return stopped + (f"\nSLO {slo}" if slo else ""), style


def slo_words(view: dict[str, Any]) -> str:
    """The gate a run climbs against, in words."""
    slo = Slo(**(view.get("slo") or {}))
    return (f"p95 > {slo.p95_ratio:g}x step 1's, errors > {slo.error_rate:.0%} "
            f"or swap grows > {slo.swap_gb:g} GB")  # fmt: skip


def chart_height(rows: int, knee: bool) -> int:
    """Plot rows that fit ``rows`` lines under the chart's axis, labels and legend."""
    return max(3, min(16, rows - 3 - (1 if knee else 0)))
