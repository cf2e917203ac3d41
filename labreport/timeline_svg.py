"""The timeline as hand-written SVG, to inline in the report page (no XML declaration).

The DOM is part of the contract: the Selenium test finds ``rect.bar`` (classes ``ok``,
``refused``, ``indeterminate``, plus ``lost``) with ``data-request-id``, ``data-ledger-id``
and ``data-worker``, ``line.mark.read`` / ``line.mark.write`` and ``polyline.lost-link``.
"""

import math
from collections.abc import Callable
from html import escape

from labreport.timeline import Bar, TimelineLayout

# Shared with the PNG renderer so both pictures speak the same colours.
OK_FILL = "#9ecae1"
OK_EDGE = "#3f7fb5"
LOST_FILL = "#e03131"
LOST_EDGE = "#8f0000"
REFUSED_FILL = "#f5b942"
REFUSED_EDGE = "#a86f00"
INDETERMINATE_FILL = "#e6e6e6"
INDETERMINATE_EDGE = "#444444"
MARK_COLOUR = "#1a1a1a"
LINK_COLOUR = "#b00000"
AXIS_LABEL = "ms from the first arrival"
EMPTY_TEXT = "No recorded requests"
MARKS_TEXT = "read (tick above), write (tick below)"
LINK_TEXT = "read the same balance"

LANE_HEIGHT = 22
BAR_HEIGHT = 14
# Read ticks stick out above the bar, write ticks below, so they read apart in any colour.
MARK_OVERHANG = 4
LEFT_MARGIN = 150
RIGHT_MARGIN = 20
LEGEND_ROW_1 = 8
LEGEND_ROW_2 = 32
TOP_MARGIN = 62  # the legend's two rows
BOTTOM_MARGIN = 46  # tick labels and the axis label
TICKS_WANTED = 10
# Above this many bars the outlines would merge into a solid smear, so only fills are drawn.
DENSE_BARS = 1500

_STYLE = f"""
svg.race-timeline {{ font: 12px sans-serif; }}
svg.race-timeline .lane {{ fill: #f6f6f6; }}
svg.race-timeline .bar, svg.race-timeline .swatch {{ stroke-width: 1; }}
svg.race-timeline .ok {{ fill: {OK_FILL}; stroke: {OK_EDGE}; }}
svg.race-timeline .ok.lost {{ fill: {LOST_FILL}; stroke: {LOST_EDGE}; }}
svg.race-timeline .refused {{ fill: {REFUSED_FILL}; stroke: {REFUSED_EDGE}; }}
svg.race-timeline .indeterminate {{ fill: {INDETERMINATE_FILL}; stroke: {INDETERMINATE_EDGE};
  stroke-dasharray: 3 2; }}
svg.race-timeline.dense .bar {{ stroke: none; }}
svg.race-timeline.dense .bar.indeterminate {{ stroke: {INDETERMINATE_EDGE}; stroke-dasharray: none;
  stroke-width: 0.5; }}
svg.race-timeline .mark, svg.race-timeline .swatch-mark {{ stroke: {MARK_COLOUR}; stroke-width: 1.5; }}
svg.race-timeline.dense .mark {{ stroke-width: 0.5; stroke-opacity: 0.25; }}
svg.race-timeline .lost-link {{ fill: none; stroke: {LINK_COLOUR}; stroke-width: 2; stroke-opacity: 0.8; }}
svg.race-timeline.dense .lost-link {{ stroke-width: 0.75; }}
svg.race-timeline .axis {{ stroke: #888; stroke-width: 1; }}
svg.race-timeline .grid {{ stroke: #ddd; stroke-width: 1; }}
svg.race-timeline .lane-label {{ text-anchor: end; dominant-baseline: middle; }}
svg.race-timeline .tick-label {{ text-anchor: middle; }}
svg.race-timeline .axis-label {{ text-anchor: middle; }}
"""

# Legend swatches carry "swatch", never "bar" or "mark", so DOM queries count only the data.
_LEGEND = (
    ("swatch ok", "ok"),
    ("swatch ok lost", "lost update"),
    ("swatch refused", "refused (4xx)"),
    ("swatch indeterminate", "indeterminate (5xx or other)"),
)
_CHAR_WIDTH = 7  # a rough 12px sans-serif character, to space the legend


def render_svg(layout: TimelineLayout, *, width: int = 1100) -> str:
    """A standalone ``<svg>`` element of the layout, ``width`` pixels wide."""
    if layout.totals.requests == 0:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" class="race-timeline" width="320" height="40" '
            'viewBox="0 0 320 40" role="img">'
            f"<style>{_STYLE}</style>"
            f'<text x="160" y="24" text-anchor="middle">{EMPTY_TEXT}</text></svg>'
        )
    plot_width = max(width - LEFT_MARGIN - RIGHT_MARGIN, 50)
    plot_height = len(layout.lanes) * LANE_HEIGHT
    height = TOP_MARGIN + plot_height + BOTTOM_MARGIN
    low, high = layout.span_ms
    scale = plot_width / (high - low) if high > low else 0.0

    def x_of(ms: float) -> float:
        return (ms - low) * scale

    dense = " dense" if len(layout.bars) > DENSE_BARS else ""
    totals = layout.totals
    summary = (
        f"Timeline of {totals.requests} requests: {totals.ok} ok ({totals.lost} in lost updates), "
        f"{totals.refused} refused, {totals.indeterminate} indeterminate"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="race-timeline{dense}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}">',
        f"<style>{_STYLE}</style>",
    ]
    out.extend(_legend())
    out.extend(_axis(low=low, high=high, x_of=x_of, plot_width=plot_width, plot_height=plot_height))
    for lane in layout.lanes:
        y = TOP_MARGIN + lane.index * LANE_HEIGHT
        out.append(
            f'<text class="lane-label" x="{LEFT_MARGIN - 8}" y="{_n(y + LANE_HEIGHT / 2)}">'
            f"{escape(lane.label)}</text>"
        )

    # A nested <svg> is its own viewport and clips what falls outside it: bars and links that run
    # past a window's edges, without a clipPath id that could clash with another inlined svg.
    out.append(
        f'<svg class="plot" x="{LEFT_MARGIN}" y="{TOP_MARGIN}" width="{_n(plot_width)}" '
        f'height="{plot_height}" viewBox="0 0 {_n(plot_width)} {plot_height}">'
    )
    for lane in layout.lanes:
        if lane.index % 2 == 0:
            out.append(
                f'<rect class="lane" x="0" y="{lane.index * LANE_HEIGHT}" width="{_n(plot_width)}" '
                f'height="{LANE_HEIGHT}"/>'
            )
    pad = (LANE_HEIGHT - BAR_HEIGHT) / 2
    for bar in layout.bars:
        out.extend(_bar(bar, x_of=x_of, top=bar.lane * LANE_HEIGHT + pad))
    for group in layout.lost_groups:
        points = " ".join(f"{_n(x_of(ms))},{_n((lane + 0.5) * LANE_HEIGHT)}" for ms, lane in group.points)
        ids = " ".join(str(request_id) for request_id in group.request_ids)
        out.append(
            f'<polyline class="lost-link" data-balance-before="{group.balance_before}" '
            f'data-request-ids="{ids}" points="{points}"><title>{escape(group.title)}</title></polyline>'
        )
    out.append("</svg></svg>")
    return "".join(out)


def _bar(bar: Bar, *, x_of: Callable[[float], float], top: float) -> list[str]:
    # One pixel at least, so a request shorter than a pixel still shows.
    x = x_of(bar.start_ms)
    bar_width = max(x_of(bar.end_ms) - x, 1.0)
    classes = f"bar {bar.outcome}{' lost' if bar.lost else ''}"
    ledger_id = "" if bar.ledger_id is None else bar.ledger_id
    out = [
        f'<rect class="{classes}" x="{_n(x)}" y="{_n(top)}" width="{_n(bar_width)}" height="{BAR_HEIGHT}" '
        f'data-request-id="{bar.request_id}" data-ledger-id="{ledger_id}" data-worker="{bar.worker}">'
        f"<title>{escape(bar.title)}</title></rect>"
    ]
    middle = top + BAR_HEIGHT / 2
    if bar.read_ms is not None:
        read_x = _n(x_of(bar.read_ms))
        out.append(
            f'<line class="mark read" x1="{read_x}" x2="{read_x}" y1="{_n(top - MARK_OVERHANG)}" '
            f'y2="{_n(middle)}"/>'
        )
    if bar.write_ms is not None:
        write_x = _n(x_of(bar.write_ms))
        out.append(
            f'<line class="mark write" x1="{write_x}" x2="{write_x}" y1="{_n(middle)}" '
            f'y2="{_n(top + BAR_HEIGHT + MARK_OVERHANG)}"/>'
        )
    return out


def _legend() -> list[str]:
    """Two rows above the plot: the outcomes, then the marks and the lost-update link."""
    out = []
    x = LEFT_MARGIN
    y = LEGEND_ROW_1
    for classes, label in _LEGEND:
        out.append(f'<rect class="{classes}" x="{x}" y="{y}" width="18" height="{BAR_HEIGHT}"/>')
        out.append(f'<text x="{x + 24}" y="{y + 11}">{escape(label)}</text>')
        x += 24 + _CHAR_WIDTH * len(label) + 20
    x = LEFT_MARGIN
    y = LEGEND_ROW_2
    middle = y + BAR_HEIGHT / 2
    out.append(
        f'<rect class="swatch ok" x="{x}" y="{y}" width="30" height="{BAR_HEIGHT}"/>'
        f'<line class="swatch-mark read" x1="{x + 8}" x2="{x + 8}" y1="{y - MARK_OVERHANG}" y2="{middle}"/>'
        f'<line class="swatch-mark write" x1="{x + 22}" x2="{x + 22}" y1="{middle}" '
        f'y2="{y + BAR_HEIGHT + MARK_OVERHANG}"/>'
        f'<text x="{x + 36}" y="{y + 11}">{MARKS_TEXT}</text>'
    )
    x += 36 + _CHAR_WIDTH * len(MARKS_TEXT) + 20
    out.append(
        f'<line class="swatch-link" x1="{x}" x2="{x + 24}" y1="{middle}" y2="{middle}" '
        f'stroke="{LINK_COLOUR}" stroke-width="2"/>'
        f'<text x="{x + 30}" y="{y + 11}">{LINK_TEXT}</text>'
    )
    return out


def _axis(
    *, low: float, high: float, x_of: Callable[[float], float], plot_width: float, plot_height: int
) -> list[str]:
    bottom = TOP_MARGIN + plot_height
    out = [
        f'<line class="axis" x1="{LEFT_MARGIN}" x2="{_n(LEFT_MARGIN + plot_width)}" y1="{bottom}" '
        f'y2="{bottom}"/>'
    ]
    for tick in nice_ticks(low=low, high=high, wanted=TICKS_WANTED):
        x = _n(LEFT_MARGIN + x_of(tick))
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{TOP_MARGIN}" y2="{bottom}"/>')
        out.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}"/>')
        out.append(f'<text class="tick-label" x="{x}" y="{bottom + 18}">{_tick_label(tick)}</text>')
    out.append(
        f'<text class="axis-label" x="{_n(LEFT_MARGIN + plot_width / 2)}" y="{bottom + 38}">'
        f"{AXIS_LABEL}</text>"
    )
    return out


def nice_ticks(*, low: float, high: float, wanted: int) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten apart) between low and high."""
    if high <= low:
        return [low]
    raw = (high - low) / wanted
    power = 10 ** math.floor(math.log10(raw))
    step = next(factor * power for factor in (1, 2, 5, 10) if factor * power >= raw)
    first = math.ceil(low / step)
    last = math.floor(high / step)
    return [index * step for index in range(first, last + 1)]


def _tick_label(tick: float) -> str:
    return f"{tick:.10g}"


def _n(value: float) -> str:
    """A coordinate to 0.01 px, without trailing zeros: 10,000 bars stay a few megabytes."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
