"""Pre-flight gates: may a local job start on this machine right now?

``evaluate`` is pure: it reads a sample, the recent history and the thresholds and
returns one verdict per gate. A failing gate's message names the gate, the reading and
the threshold (``gate swap: 2.6 GB used > 2.0 GB``); the scheduler holds the lane with
the failing messages as the job's ``held_reason`` and re-checks with back-off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from console.core.config import DEFAULTS
from console.core.signals.predict import Fit, gb
from console.core.signals.sources import match_pattern

GB = 1e9
MB = 1e6
SWAP_GROWTH_WINDOW = 60.0  # seconds: "not growing over the last minute"



def from_section(cls: Any, cfg: Any, prefix: str) -> Any:
    """A dataclass whose fields are the keys of config section ``prefix``."""
    section = cfg.section(prefix)
    return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})


@dataclass(slots=True)
class Thresholds:
    max_load_per_core: float = 1.0
    min_free_disk_gb: float = 10.0
    max_swap_gb: float = 2.0
    swap_growth_mb: float = 128.0
    memory_headroom_gb: float = 2.0
    heavy_process_patterns: list[str] = field(
        default_factory=lambda: list(DEFAULTS["gates.heavy_process_patterns"])
    )
    heavy_process_mem_share: float = 0.25

    @classmethod
    def from_config(cls, cfg: Any) -> Thresholds:
        return from_section(cls, cfg, "gates")  # type: ignore[no-any-return]

    def for_sample(self) -> dict[str, float]:
        """The thresholds a sample carries, so graphs can draw their limit lines."""
        return {"max_swap_gb": self.max_swap_gb, "max_load_per_core": self.max_load_per_core,
                "memory_headroom_gb": self.memory_headroom_gb,
                "min_free_disk_gb": self.min_free_disk_gb}  # fmt: skip


@dataclass(slots=True)
class GateResult:
    gate: str
    verdict: str  # "pass" | "fail" | "unknown" (unknown never holds the lane)
    reading: Any
    threshold: Any
    message: str
    subject: str | None = None  # what was measured, when a gate checks several (disk paths)

    @property
    def ok(self) -> bool:
        return self.verdict != "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heavy_processes(
    processes: Iterable[dict[str, Any]],
    th: Thresholds,
    mem_total: int,
    exclude_pgids: Iterable[int] = (),
    exclude_pids: Iterable[int] = (),
) -> list[dict[str, Any]]:
    """Processes outside twolane that match a heavy pattern or hold more than
    ``heavy_process_mem_share`` of memory. ``exclude_pgids`` are twolane's running jobs'
    process groups (a job leads its own group), ``exclude_pids`` the owner itself."""
    pgids, pids = set(exclude_pgids), set(exclude_pids)
    out = []
    for p in processes:
        if p.get("pgid") in pgids or p["pid"] in pids:
            continue
        argv = p.get("argv") or str(p.get("cmdline") or p.get("name") or "").split()
        why = next((f"matches '{pat}'" for pat in th.heavy_process_patterns
                    if match_pattern(pat, argv)), None)  # fmt: skip
        if why is None and mem_total and p["rss"] > th.heavy_process_mem_share * mem_total:
            why = f"uses {p['rss'] / mem_total:.0%} of memory > {th.heavy_process_mem_share:.0%}"
        if why:
            out.append({"pid": p["pid"], "pgid": p.get("pgid"), "name": p.get("name", ""),
                        "cmdline": p.get("cmdline") or " ".join(argv), "rss": p["rss"], "why": why})  # fmt: skip
    return out


def swap_growth(history: list[dict[str, Any]], now: float, window: float = SWAP_GROWTH_WINDOW) -> int:
    """How much swap grew within the last ``window`` seconds (latest minus the lowest)."""
    recent = [s for s in history if s["at"] >= now - window]
    if len(recent) < 2:
        return 0
    return max(0, recent[-1]["swap_used"] - min(s["swap_used"] for s in recent))


def evaluate(
    sample: dict[str, Any],
    history: list[dict[str, Any]],
    th: Thresholds,
    *,
    disk_need: dict[str, float] | None = None,
    model: str | None = None,
    fit: Fit | None = None,
    model_error: str | None = None,
    model_loaded: bool = False,
    exclude_pgids: Iterable[int] = (),
) -> list[GateResult]:
    """Every gate's verdict for this sample. ``disk_need`` overrides the bytes a path
    needs (a pull job: the model's size plus the margin); ``fit`` is the declared model's
    footprint against memory; ``model_loaded`` says Ollama already holds it in memory."""
    out: list[GateResult] = []
    per_core = sample["load1"] / max(1, sample["cores"])
    out.append(_check("load", per_core <= th.max_load_per_core, round(per_core, 2),
                      th.max_load_per_core,
                      f"{per_core:.2f} per core > {th.max_load_per_core:.2f}"))  # fmt: skip
    for path, free in sorted(sample.get("disk_free", {}).items()):
        need = (disk_need or {}).get(path, th.min_free_disk_gb * GB)
        result = _check("disk", free >= need, round(free / GB, 2), round(need / GB, 2),
                        f"{gb(free)} GB free on {path} < {gb(need)} GB")  # fmt: skip
        result.subject = path
        out.append(result)
    swap = sample["swap_used"]
    out.append(_check("swap", swap <= th.max_swap_gb * GB, round(swap / GB, 2), th.max_swap_gb,
                      f"{gb(swap)} GB used > {th.max_swap_gb} GB"))  # fmt: skip
    series = history if history and history[-1] is sample else [*history, sample]
    if sum(1 for s in series if s["at"] >= sample["at"] - SWAP_GROWTH_WINDOW) < 2:
        # One reading says nothing about growth (`twolane gates` with no owner sampling).
        out.append(GateResult("swap_growth", "unknown", None, th.swap_growth_mb,
                              "gate swap_growth: unknown: needs two samples from the last minute"
                              " (an owner takes one every signals.interval)"))  # fmt: skip
    else:
        grew = swap_growth(series, sample["at"])
        out.append(_check("swap_growth", grew <= th.swap_growth_mb * MB, round(grew / MB),
                          th.swap_growth_mb,
                          f"swap grew {grew / MB:.0f} MB in the last minute > {th.swap_growth_mb:.0f} MB"))  # fmt: skip
    pressure = sample.get("pressure", "normal")
    out.append(_check("pressure", pressure != "critical", pressure, "critical",
                      f"memory pressure is {pressure}"
                      + (f" ({sample['pressure_pct']:.0f}%)" if sample.get("pressure_pct") is not None else "")))  # fmt: skip
    heavy = heavy_processes(sample.get("heavy", []), th, sample["mem_total"], exclude_pgids)
    names = ", ".join(f"{h['cmdline'][:60] or h['name']} (pid {h['pid']}, {h['why']})" for h in heavy)
    out.append(_check("heavy_process", not heavy, len(heavy), 0,
                      f"{names} running outside twolane"))  # fmt: skip
    if model is not None:
        if model_loaded:  # already resident: its memory is in mem_used, not to be found again
            out.append(GateResult("model", "pass", None, None,
                                  f"gate model: {model} is already loaded by Ollama"))  # fmt: skip
        elif fit is not None:
            out.append(GateResult("model", "pass" if fit.fits else "fail",
                                  round(fit.need_bytes / GB, 2), round(fit.budget_bytes / GB, 2),
                                  fit.reason(model)))  # fmt: skip
        else:
            out.append(GateResult("model", "unknown", None, None,
                                  f"gate model: footprint of {model} unknown ({model_error})"))  # fmt: skip
    return out


def _check(gate: str, ok: bool, reading: Any, threshold: Any, detail: str) -> GateResult:
    message = f"gate {gate}: " + ("ok" if ok else detail)
    return GateResult(gate, "pass" if ok else "fail", reading, threshold, message)


def held_reason(results: list[GateResult]) -> str | None:
    """The lane's held reason: every failing gate's message, or None when all pass."""
    failing = [r.message for r in results if not r.ok]
    return "; ".join(failing) or None
