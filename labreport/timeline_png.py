"""The same timeline layout as a PNG, drawn with matplotlib's Agg backend.

matplotlib is imported here only: it takes about a second to import, and the report page, which
uses the SVG, must not pay for it. No pyplot: a Figure of our own keeps no global state between
renders (or threads).
"""

from collections import defaultdict
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labreport.timeline import Bar, RequestOutcome, TimelineLayout
from labreport.timeline_svg import (
    AXIS_LABEL,
    DENSE_BARS,
    EMPTY_TEXT,
    INDETERMINATE_EDGE,
    INDETERMINATE_FILL,
    LINK_COLOUR,
    LINK_TEXT,
    LOST_EDGE,
    LOST_FILL,
    MARK_COLOUR,
    MARKS_TEXT,
    OK_EDGE,
    OK_FILL,
    REFUSED_EDGE,
    REFUSED_FILL,
)

DPI = 120
# Lane pitch in inches, and the room above and below for the legend and the x axis.
LANE_INCHES = 0.28
FRAME_INCHES = 1.6
# In lane units, like the SVG's 14 px bar in a 22 px lane and its 4 px tick overhang.
BAR_HALF = 0.32
MARK_OVERHANG = 0.18

# Keyed like the SVG's classes: an ok bar is "lost" or "ok", the others by their outcome.
_STYLES = {
    "ok": (OK_FILL, OK_EDGE, "solid"),
    "lost": (LOST_FILL, LOST_EDGE, "solid"),
    "refused": (REFUSED_FILL, REFUSED_EDGE, "solid"),
    "indeterminate": (INDETERMINATE_FILL, INDETERMINATE_EDGE, "dashed"),
}
_LABELS = {
    "ok": "ok",
    "lost": "lost update",
    "refused": "refused (4xx)",
    "indeterminate": "indeterminate (5xx or other)",
}


def render_png(layout: TimelineLayout, *, path: Path, width_inches: float = 11) -> None:
    """Write the layout as a PNG at ``path``: the SVG's colours, bars, marks and links."""
    lanes = max(len(layout.lanes), 1)
    figure = Figure(figsize=(width_inches, FRAME_INCHES + lanes * LANE_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if layout.totals.requests == 0:
        axes.set_axis_off()
        axes.text(0.5, 0.5, EMPTY_TEXT, ha="center", va="center", transform=axes.transAxes)
        figure.savefig(path, format="png", dpi=DPI)
        return

    low, high = layout.span_ms
    high = high if high > low else low + 1
    # One pixel at least, as in the SVG, so a request shorter than a pixel still shows.
    min_width = (high - low) / (width_inches * DPI)
    dense = len(layout.bars) > DENSE_BARS
    polygons: dict[str, list] = defaultdict(list)
    for bar in layout.bars:
        polygons[_style_key(bar)].append(_rectangle(bar, min_width=min_width))
    for key, rectangles in polygons.items():
        fill, edge, line_style = _STYLES[key]
        # Outlines of thousands of thin bars would merge into a smear; the SVG drops them too.
        edge_width = 0.5 if key == "indeterminate" or not dense else 0.0
        axes.add_collection(
            PolyCollection(
                rectangles,
                facecolors=fill,
                edgecolors=edge,
                linewidths=edge_width,
                linestyles=line_style if not dense else "solid",
            )
        )

    reads = [
        ((bar.read_ms, bar.lane - BAR_HALF - MARK_OVERHANG), (bar.read_ms, bar.lane))
        for bar in layout.bars
        if bar.read_ms is not None
    ]
    writes = [
        ((bar.write_ms, bar.lane), (bar.write_ms, bar.lane + BAR_HALF + MARK_OVERHANG))
        for bar in layout.bars
        if bar.write_ms is not None
    ]
    # Dense, a tick per bar would paint the plot black: faint marks leave the colours readable.
    axes.add_collection(
        LineCollection(
            reads + writes,
            colors=MARK_COLOUR,
            linewidths=0.3 if dense else 1.0,
            alpha=0.25 if dense else 1.0,
        )
    )
    links = [[(ms, lane) for ms, lane in group.points] for group in layout.lost_groups]
    axes.add_collection(
        LineCollection(links, colors=LINK_COLOUR, linewidths=0.6 if dense else 1.5, alpha=0.8)
    )

    axes.set_xlim(low, high)
    # Lane 0 at the top, as in the SVG.
    axes.set_ylim(lanes - 0.5, -0.5)
    axes.set_yticks([lane.index for lane in layout.lanes], [lane.label for lane in layout.lanes])
    axes.set_xlabel(AXIS_LABEL)
    axes.grid(axis="x", color="#dddddd")
    axes.set_axisbelow(True)
    handles = [
        Patch(facecolor=fill, edgecolor=edge, linestyle=line_style, label=_LABELS[key])
        for key, (fill, edge, line_style) in _STYLES.items()
    ]
    handles.append(Line2D([], [], color=MARK_COLOUR, marker="|", linestyle="none", label=MARKS_TEXT))
    handles.append(Line2D([], [], color=LINK_COLOUR, linewidth=1.5, label=LINK_TEXT))
    axes.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncol=3,
        frameon=False,
        fontsize="small",
    )
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI)


def _style_key(bar: Bar) -> str:
    if bar.outcome is RequestOutcome.OK:
        return "lost" if bar.lost else "ok"
    return str(bar.outcome)


def _rectangle(bar: Bar, *, min_width: float) -> tuple[tuple[float, float], ...]:
    top = bar.lane - BAR_HALF
    bottom = bar.lane + BAR_HALF
    end = max(bar.end_ms, bar.start_ms + min_width)
    return ((bar.start_ms, top), (end, top), (end, bottom), (bar.start_ms, bottom))
