"""The graphs pane: swap, load and memory over the last 10 minutes as sparklines, each
with its current value and the gate threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static

from console.tui.widgets.colors import theme_style

BARS = "▁▂▃▄▅▆▇█"
GIB = 1024**3
WINDOW = 600.0  # seconds of history the sparklines cover


def sparkline(values: Sequence[float | None], width: int, top: float | None = None) -> str:
    """The last ``width`` values as block characters scaled to ``top`` (or their max)."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    known = [v for v in tail if v is not None]
    peak = top if top else (max(known) if known else 0.0)
    out = []
    for v in tail:
        if v is None:
            out.append(" ")
        elif peak <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[min(len(BARS) - 1, max(0, int(v / peak * (len(BARS) - 1) + 0.5)))])
    return "".join(out).rjust(width)


def bucket(samples: Sequence[dict[str, Any]], key: str, width: int,
           seconds: float = WINDOW) -> list[float | None]:
    """``width`` columns covering the last ``seconds``: each the peak of its slice of
    time (peaks matter for swap and load), None where no sample fell."""
    if not samples or width <= 0:
        return []
    end = float(samples[-1].get("at") or 0.0)
    step = seconds / width
    out: list[float | None] = [None] * width
    for s in samples:
        v = s.get(key)
        if v is None:
            continue
        i = width - 1 - int((end - float(s.get("at") or 0.0)) / step)
        if 0 <= i < width:
            out[i] = v if out[i] is None else max(out[i], v)  # type: ignore[type-var]
    return out


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    key: str  # the sample field the sparkline draws
    current: str
    gate: str | None
    over: bool  # the current value breaks the gate
    top: float | None


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.1f}G"


def metrics(samples: Sequence[dict[str, Any]]) -> list[Metric]:
    """What the pane draws, from samples with the signals contract's keys."""
    last = samples[-1] if samples else {}
    limits = last.get("thresholds") or {}
    out: list[Metric] = []

    max_swap = limits.get("max_swap_gb")
    swap_now = last.get("swap_used")
    out.append(Metric(
        "swap", "swap_used", f"{_gb(swap_now)} of {_gb(last.get('swap_total'))}",
        f"gate {max_swap:g}G" if max_swap is not None else None,
        bool(max_swap is not None and swap_now is not None and swap_now > max_swap * GIB),
        max(last.get("swap_total") or 0, (max_swap or 0) * GIB) or None,
    ))  # fmt: skip

    cores = last.get("cores") or 1
    per_core = limits.get("max_load_per_core")
    load_now = last.get("load1")
    out.append(Metric(
        "load", "load1", "-" if load_now is None else f"{load_now:.2f} / {cores} cores",
        f"gate {per_core * cores:g}" if per_core is not None else None,
        bool(per_core is not None and load_now is not None and load_now > per_core * cores),
        max(float(cores), (per_core or 0) * cores),
    ))  # fmt: skip

    if last.get("pressure_pct") is not None:
        mem = "pressure_pct"
        current = f"pressure {last['pressure_pct']:.0f}%"
        if last.get("pressure"):
            current += f" ({last['pressure']})"
        top: float | None = 100.0
    else:
        mem = "mem_used"
        current = f"{_gb(last.get('mem_used'))} of {_gb(last.get('mem_total'))}"
        top = last.get("mem_total")
    headroom = limits.get("memory_headroom_gb")
    avail = last.get("mem_available")
    out.append(Metric(
        "memory", mem, current,
        f"keep {headroom:g}G free" if headroom is not None else None,
        bool(headroom is not None and avail is not None and avail < headroom * GIB), top,
    ))  # fmt: skip
    return out


class GraphsPane(Static):
    """Two lines per metric: label, value and gate; then the sparkline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples: Sequence[dict[str, Any]] = ()
        self._shown: Text | None = None

    def show(self, samples: Sequence[dict[str, Any]]) -> None:
        self.samples = samples
        self.refresh_graphs()

    def on_resize(self) -> None:
        self.refresh_graphs()

    def refresh_graphs(self) -> None:
        width = max(8, self.content_size.width)
        text = Text(no_wrap=True, overflow="ellipsis")
        if not self.samples:
            text.append("waiting for the first sample…", style=theme_style(self.app, "text-muted"))
            self._draw(text)
            return
        for i, m in enumerate(metrics(self.samples)):
            if i:
                text.append("\n")
            text.append(f"{m.label:<7}", style=theme_style(self.app, "text-muted"))
            text.append(m.current, style=theme_style(self.app, "error" if m.over else "foreground", bold=True))
            if m.gate:
                text.append(f"  {m.gate}", style=theme_style(self.app, "warning" if m.over else "text-muted"))
            text.append("\n")
            text.append(sparkline(bucket(self.samples, m.key, width), width, m.top),
                        style=theme_style(self.app, "error" if m.over else "primary"))  # fmt: skip
        self._draw(text)

    def _draw(self, text: Text) -> None:
        # A sample a second mostly leaves the picture as it was (each column covers
        # ~20 s): repaint only what changed. The pane's size never follows its text.
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
