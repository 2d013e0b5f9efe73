"""Small inline SVG charts rendered on the server: a status timeline and line charts. No chart library.

Colours come from the stylesheet (classes ``s-<status>``, ``line-<n>``), never inline styles, so the
pages keep a strict Content-Security-Policy. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 1000


def timeline(segments: Sequence[tuple[float, float, str]], start: float, end: float,
             opens: Sequence[tuple[float, float]], label: Callable[[str], str],
             when: Callable[[float], str], height: int = 36) -> Markup:
    """Coloured status bands over ``[start, end)``; opening hours marked by a strip under them."""
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return round((min(max(t, start), end) - start) / span * WIDTH, 2)

    parts = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {height + 8}" preserveAspectRatio="none" role="img" '
             f'aria-label="{escape(label("timeline"))}">']
    for a, b, status in segments:
        w = max(x(b) - x(a), 0.5)
        parts.append(f'<rect class="s-{escape(status)}" x="{x(a)}" y="0" width="{w}" height="{height}">'
                     f'<title>{escape(label(status))}: {escape(when(a))} – {escape(when(b))}</title></rect>')
    for a, b in opens:
        parts.append(f'<rect class="open-hours" x="{x(a)}" y="{height + 2}" width="{max(x(b) - x(a), 0.5)}" '
                     f'height="6"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(series: dict[str, list[tuple[float, float]]], start: float, end: float, *, unit: str = "",
               y_max: float | None = None, when: Callable[[float], str] = str, height: int = 160) -> Markup:
    """One polyline per series over ``[start, end)``; the y axis from 0 to the largest value (or ``y_max``)."""
    values = [v for points in series.values() for _, v in points]
    if not values:
        return Markup("")
    top = y_max if y_max is not None else max(values) * 1.1 or 1.0
    span = max(end - start, 1.0)
    pad_left, pad_bottom = 48, 18
    plot_w, plot_h = WIDTH - pad_left - 4, height - pad_bottom - 4

    def xy(t: float, v: float) -> str:
        return (f"{round(pad_left + (t - start) / span * plot_w, 1)},"
                f"{round(4 + plot_h - min(max(v, 0.0), top) / top * plot_h, 1)}")

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" preserveAspectRatio="none">']
    for frac in (0.0, 0.5, 1.0):
        y = round(4 + plot_h - frac * plot_h, 1)
        parts.append(f'<line class="grid" x1="{pad_left}" x2="{WIDTH - 4}" y1="{y}" y2="{y}"/>'
                     f'<text class="axis" x="{pad_left - 4}" y="{y + 4}" text-anchor="end">'
                     f"{escape(_num(top * frac))}{escape(unit)}</text>")
    parts.append(f'<text class="axis" x="{pad_left}" y="{height - 2}">{escape(when(start))}</text>'
                 f'<text class="axis" x="{WIDTH - 4}" y="{height - 2}" text-anchor="end">{escape(when(end))}</text>')
    for n, (name, points) in enumerate(sorted(series.items())):
        if not points:
            continue
        path = " ".join(xy(t, v) for t, v in sorted(points))
        parts.append(f'<polyline class="line-{n % 6}" fill="none" points="{path}"><title>{escape(name)}</title>'
                     "</polyline>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.1f}"
