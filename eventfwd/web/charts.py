"""Per-minute charts as inline SVG, drawn on the server (no JavaScript, nothing to fetch)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

COLOURS = {"delivered": "#2b8a3e", "retried": "#e67700", "dead": "#c92a2a"}


def line_chart(
    series: dict[str, list[int]], *, title: str, width: int = 640, height: int = 140
) -> Markup:
    """One SVG with a line per series (points one minute apart, newest at the right)."""
    pad_l, pad_b, pad_t = 40, 18, 18
    n = max((len(v) for v in series.values()), default=0)
    top = max((max(v) for v in series.values() if v), default=0) or 1
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" data-max="{top}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="12" font-size="11">{escape(title)}</text>',
        f'<text x="2" y="{pad_t + 8}" font-size="10">{top}</text>',
        f'<text x="2" y="{height - pad_b}" font-size="10">0</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 4}" y2="{height - pad_b}" '
        'stroke="#999"/>',
        f'<text x="{pad_l}" y="{height - 4}" font-size="10">-{n} min</text>',
        f'<text x="{width - 30}" y="{height - 4}" font-size="10">now</text>',
    ]
    legend_x = width - 340
    for name, values in series.items():
        colour = COLOURS.get(name, "#1c7ed6")
        step = plot_w / max(1, n - 1)
        points = " ".join(
            f"{pad_l + i * step:.1f},{pad_t + plot_h - v / top * plot_h:.1f}"
            for i, v in enumerate(values)
        )
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" data-total="{sum(values)}" '
            f'fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
        parts.append(
            f'<text x="{legend_x}" y="12" font-size="11" fill="{colour}">'
            f"{escape(name)} {sum(values)}</text>"
        )
        legend_x += 110
    parts.append("</svg>")
    return Markup("".join(parts))
