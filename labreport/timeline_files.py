"""A run's timeline written to a file, SVG or PNG by the file's extension."""

from pathlib import Path

from accounts.models import Run
from labreport.selectors import timed_requests
from labreport.timeline import TimelineTotals, layout_timeline
from labreport.timeline_svg import render_svg

TIMELINE_SUFFIXES = (".svg", ".png")


def write_timeline(*, run: Run, path: Path) -> TimelineTotals:
    """Draw every recorded request of ``run`` into ``path`` (a vector SVG zooms for long runs)."""
    if path.suffix.lower() not in TIMELINE_SUFFIXES:
        raise ValueError(f"a timeline file ends in .svg or .png, not {path.name!r}")
    layout = layout_timeline(requests=timed_requests(run=run))
    if path.suffix.lower() == ".svg":
        path.write_text(render_svg(layout), encoding="utf-8")
    else:
        from labreport.timeline_png import render_png  # matplotlib takes a second to load: PNG only

        render_png(layout, path=path)
    return layout.totals
