"""Draw a sweep: lost fraction and hit rate against concurrency, one line per driver or strategy."""

from collections.abc import Sequence
from pathlib import Path

from experiment.summaries import LevelSummary

FIGURE_SIZE_INCHES = (11, 4.5)
DOTS_PER_INCH = 120


def plot_sweep(*, summaries: Sequence[LevelSummary], path: Path, title: str = "") -> None:
    """Write a PNG to ``path``. Headless: it draws on matplotlib's Agg canvas, with no pyplot
    and no display, so it works on a server and in CI."""
    # Imported here: matplotlib takes most of a second to load, and only --plot needs it.
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_INCHES, layout="constrained")
    lost_axes, hit_axes = figure.subplots(1, 2, sharex=True)
    for label, lines in _lines(summaries).items():
        levels = [line.concurrency for line in lines]
        lost_axes.plot(levels, [line.mean_lost_fraction for line in lines], marker="o", label=label)
        rates = [line.hit_rate for line in lines]
        errors = [
            [line.hit_rate - line.hit_rate_low for line in lines],
            [line.hit_rate_high - line.hit_rate for line in lines],
        ]
        hit_axes.errorbar(levels, rates, yerr=errors, marker="o", capsize=3, label=label)
    levels = sorted({summary.concurrency for summary in summaries})
    for axes in (lost_axes, hit_axes):
        axes.set_xscale("log")
        axes.set_xticks(levels, labels=[str(level) for level in levels])
        axes.minorticks_off()
        axes.set_xlabel("concurrent withdrawals (burst size, ab -c)")
        axes.set_ylim(-0.02, 1.05)
        axes.grid(alpha=0.3)
    lost_axes.set_ylabel("mean lost fraction")
    lost_axes.set_title("Share of acknowledged withdrawals lost")
    hit_axes.set_ylabel("hit rate (95% Wilson interval)")
    hit_axes.set_title("Trials with at least one anomaly")
    hit_axes.legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=DOTS_PER_INCH, format="png")


def _lines(summaries: Sequence[LevelSummary]) -> dict[str, list[LevelSummary]]:
    """Group by driver and strategy, naming a line by whatever varies across the sweep."""
    drivers = {summary.driver for summary in summaries}
    strategies = {summary.strategy for summary in summaries}
    lines: dict[str, list[LevelSummary]] = {}
    for summary in sorted(summaries, key=lambda s: (s.driver, s.strategy, s.concurrency)):
        if len(drivers) > 1 and len(strategies) > 1:
            label = f"{summary.driver} / {summary.strategy}"
        elif len(strategies) > 1:
            label = summary.strategy
        else:
            label = summary.driver
        lines.setdefault(label, []).append(summary)
    return lines
