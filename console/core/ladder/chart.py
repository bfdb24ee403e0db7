"""Latency-versus-concurrency charts: Unicode text (terminal and markdown) and SVG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    marker: str
    points: dict[int, float]  # concurrency -> seconds
    colour: str = "#1f77b4"


def _x_values(series: Sequence[Series]) -> list[int]:
    return sorted({c for s in series for c in s.points})


def text_chart(series: Sequence[Series], *, limit: tuple[str, float] | None = None,
               knee: int | None = None, height: int = 12, spacing: int = 8) -> str:
    """A fixed-width chart: one column per concurrency, latency upwards, an optional
    dotted SLO line and a ``▲`` under the knee. Earlier series draw over later ones."""
    xs = _x_values(series)
    if not xs:
        return "(no successful requests to chart)"
    values = [v for s in series for v in s.points.values()] + ([limit[1]] if limit else [])
    top = max(values) * 1.05 or 1.0
    label_w = max(len(f"{top:.3f}s"), 6)
    width = spacing * len(xs)
    grid = [[" "] * width for _ in range(height)]

    def row_of(v: float) -> int:
        return height - 1 - min(height - 1, round(v / top * (height - 1)))

    limit_row = row_of(limit[1]) if limit else None
    if limit_row is not None:
        grid[limit_row] = ["┄"] * width
    for s in reversed(series):
        for c, v in s.points.items():
            grid[row_of(v)][xs.index(c) * spacing + spacing // 2] = s.marker
    lines = []
    for r, cells in enumerate(grid):
        # The SLO row is labelled with the limit itself, not the row's rounded value.
        value = limit[1] if limit and r == limit_row else top * (height - 1 - r) / (height - 1)
        label = f"{value:.3f}s" if r in (0, height // 2, limit_row) else ""
        lines.append(f"{label:>{label_w}} ┤{''.join(cells)}" if label else f"{'':>{label_w}} │{''.join(cells)}")
    axis = "".join(("┴" if i % spacing == spacing // 2 else "─") for i in range(width))
    lines.append(f"{'0':>{label_w}} └{axis}")
    lines.append(" " * (label_w + 2) + "".join(str(c).center(spacing) for c in xs) + "  concurrency")
    if knee in xs:
        lines.append(" " * (label_w + 2) + "".join(("▲ knee" if c == knee else "").center(spacing) for c in xs).rstrip())
    legend = "   ".join(f"{s.marker} {s.label}" for s in series)
    if limit:
        legend += f"   ┄ {limit[0]}"
    lines.append(" " * (label_w + 2) + legend)
    return "\n".join(line.rstrip() for line in lines)


def svg_chart(series: Sequence[Series], *, limit: tuple[str, float] | None = None,
              knee: int | None = None, title: str = "") -> str:
    """The same chart as a small standalone SVG (log-spaced concurrency, linear seconds)."""
    xs = _x_values(series)
    w, h, left, right, top_pad, bottom = 640, 360, 70, 20, 40, 50
    values = [v for s in series for v in s.points.values()] + ([limit[1]] if limit else [])
    top = (max(values) * 1.1 if values else 1.0) or 1.0

    def px(c: int) -> float:
        if len(xs) < 2:
            return left + (w - left - right) / 2
        return left + xs.index(c) * (w - left - right) / (len(xs) - 1)

    def py(v: float) -> float:
        return h - bottom - v / top * (h - top_pad - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{escape(title)}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{h - bottom}" stroke="#333"/>']  # fmt: skip
    for i in range(5):
        v = top * i / 4
        out.append(f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3f}s</text>')
    for c in xs:
        out.append(f'<text x="{px(c):.1f}" y="{h - bottom + 18}" text-anchor="middle">{c}</text>')
    out.append(f'<text x="{(w + left) / 2:.0f}" y="{h - 10}" text-anchor="middle">concurrency</text>')
    if limit:
        y = py(limit[1])
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#d62728" stroke-dasharray="4 4"/>')
        out.append(f'<text x="{w - right}" y="{y - 4:.1f}" text-anchor="end" fill="#d62728">{escape(limit[0])}</text>')
    if knee in xs:
        out.append(f'<text x="{px(knee):.1f}" y="{h - bottom + 34}" text-anchor="middle" fill="#d62728">▲ knee</text>')  # type: ignore[arg-type]
    for i, s in enumerate(series):
        pts = sorted(s.points.items())
        path = " ".join(f"{px(c):.1f},{py(v):.1f}" for c, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
        out.extend(f'<circle cx="{px(c):.1f}" cy="{py(v):.1f}" r="3.5" fill="{s.colour}"/>' for c, v in pts)
        out.append(f'<text x="{left + 10 + 150 * i}" y="{top_pad - 8}" fill="{s.colour}">{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
