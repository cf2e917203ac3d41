"""A timeline PNG read back (labreport/timeline_png.py): its size, and what it drew where, in the
units of its layout (milliseconds and lanes), so a test checks the picture itself.

The plot is found by its frame, matplotlib's black spines; the axes' limits (the layout's span
across, lane -0.5 at the top to the last lane + 0.5 at the bottom) map linearly onto it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from labreport.timeline_png import BAR_HALF
from labreport.timeline_svg import INDETERMINATE_FILL, LOST_FILL, OK_FILL, REFUSED_FILL

# The SVG's class of each bar fill (an ok bar is "lost" when a lost-update group holds it).
FILLS = {"ok": OK_FILL, "lost": LOST_FILL, "refused": REFUSED_FILL, "indeterminate": INDETERMINATE_FILL}
# Where a link leaves a read mark, the mark crosses the bar's upper half and the link its lower
# half at once, for a few pixels: runs of one fill this close are one bar. Two bars of one colour
# in a lane must lie further apart.
MERGE_GAP_PIXELS = 6
# A bar's outline and the spines may leave a sliver of fill; a bar drawn is wider than this.
MIN_BAR_PIXELS = 3


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(round(channel * 255) for channel in to_rgb(colour))


_FILL_NAMES = {rgb(colour): name for name, colour in FILLS.items()}


def is_link_red(pixel: np.ndarray) -> bool:
    """The lost-update link (#b00000 at 80% over white or a bar), not a bar's fill or a mark."""
    red, green, blue = (int(channel) for channel in pixel)
    return red >= 150 and green <= 120 and blue <= 120 and tuple(pixel) != rgb(LOST_FILL)


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray  # height x width x (R, G, B), 0-255

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def colours(self) -> set[tuple[int, int, int]]:
        return {tuple(int(channel) for channel in pixel) for pixel in self.pixels.reshape(-1, 3)}


def read_picture(path: Path) -> Picture:
    image = imread(path)
    return Picture(pixels=(image[..., :3] * 255).round().astype(int))


@dataclass(frozen=True)
class Plot:
    """The plot of a picture, with the layout's span and lane count it was drawn for."""

    picture: Picture
    span_ms: tuple[float, float]
    lanes: int
    top: int
    bottom: int
    left: int
    right: int

    def row(self, lane: float) -> np.ndarray:
        """The pixel row at ``lane`` (a fraction for a point between lanes)."""
        y = self.top + (lane + 0.5) / self.lanes * (self.bottom - self.top)
        return self.picture.pixels[round(y)]

    def ms(self, column: float) -> float:
        low, high = self.span_ms
        return low + (column - self.left) / (self.right - self.left) * (high - low)

    @property
    def ms_per_pixel(self) -> float:
        low, high = self.span_ms
        return (high - low) / (self.right - self.left)

    def bars(self, lane: int) -> list[tuple[str, float, float]]:
        """The bars drawn in ``lane``, left to right: their fill's name, where they start and end.

        Read marks cross a bar's upper half only and write marks its lower half; a link crosses
        either half at a given point, not both (but where it leaves a read mark). So a column
        shows the bar's fill in one half at least.
        """
        runs: list[list] = []
        upper, lower = self.row(lane - BAR_HALF / 2), self.row(lane + BAR_HALF / 2)
        for column in range(self.left + 1, self.right):
            name = _FILL_NAMES.get(tuple(upper[column])) or _FILL_NAMES.get(tuple(lower[column]))
            if name is None:
                continue
            if runs and runs[-1][0] == name and column - runs[-1][2] <= MERGE_GAP_PIXELS:
                runs[-1][2] = column
            else:
                runs.append([name, column, column])
        # The outline is drawn over the fill's first and last column: the bar spans one more each side.
        return [
            (name, self.ms(first - 1), self.ms(last + 1))
            for name, first, last in runs
            if last - first + 1 > MIN_BAR_PIXELS
        ]

    def link_crossings(self, gap: float) -> list[float]:
        """Where lost-update links cross the row ``gap`` (between two lanes), in ms."""
        row = self.row(gap)
        columns = [column for column in range(self.left + 1, self.right) if is_link_red(row[column])]
        groups: list[list[int]] = []
        for column in columns:
            if groups and column - groups[-1][-1] <= 1:
                groups[-1].append(column)
            else:
                groups.append([column])
        return [self.ms(sum(group) / len(group)) for group in groups]


def plot_of(picture: Picture, *, span_ms: tuple[float, float], lanes: int) -> Plot:
    """The plot inside the frame: the rows and columns that are black across most of the picture."""
    black = (picture.pixels == 0).all(axis=2)
    height, width = black.shape
    rows = np.flatnonzero(black.sum(axis=1) > width // 2)
    columns = np.flatnonzero(black.sum(axis=0) > height // 4)
    assert len(rows) >= 2 and len(columns) >= 2, "no plot frame in the picture"
    return Plot(
        picture=picture,
        span_ms=span_ms,
        lanes=lanes,
        top=int(rows.min()),
        bottom=int(rows.max()),
        left=int(columns.min()),
        right=int(columns.max()),
    )
