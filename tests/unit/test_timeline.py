"""The timeline's layout and its SVG and PNG pictures, from hand-made requests (no database)."""

import dataclasses
import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
import pytest

from labreport.timeline import (
    RequestOutcome,
    TimedRequest,
    layout_timeline,
    outcome_of,
    windows,
)
from labreport.timeline_png import render_png
from labreport.timeline_svg import AXIS_LABEL, EMPTY_TEXT, nice_ticks, render_svg
from tests.pictures import Plot, plot_of, read_picture

pytestmark = pytest.mark.database_independent

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def timed(
    request_id: int,
    *,
    worker: int = 100,
    arrive: float = 0.0,
    answer: float = 1.0,
    read: float | None = None,
    write: float | None = None,
    status: int = 200,
    ledger_id: int | None = None,
    before: int | None = None,
    after: int | None = None,
) -> TimedRequest:
    """A request at ``arrive``..``answer`` ms after T0; give ``before`` for a ledger row."""
    if before is not None and ledger_id is None:
        ledger_id = 1000 + request_id
    if before is not None and after is None:
        after = before - 1
    return TimedRequest(
        request_id=request_id,
        worker=worker,
        arrived_at=at(arrive),
        read_at=None if read is None else at(read),
        written_at=None if write is None else at(write),
        answered_at=at(answer),
        status=status,
        ledger_id=ledger_id,
        balance_before=before,
        balance_after=after,
    )


def synthetic_run(count: int, *, workers: int = 4, seed: int = 7) -> list[TimedRequest]:
    """``count`` requests about 0.5 ms apart, ~4 ms long, some refused or failed, some lost."""
    rng = random.Random(seed)
    balance = 1_000_000
    requests = []
    for request_id in range(1, count + 1):
        arrive = request_id * 0.5 + rng.uniform(0, 0.3)
        answer = arrive + rng.uniform(1, 7)
        status = rng.choices([200, 409, 500], weights=[85, 10, 5])[0]
        if status == 200:
            # Now and then a request reads the balance its predecessor read: a lost update.
            before = balance if rng.random() > 0.2 else balance + 1
            balance = before - 1
            requests.append(
                timed(
                    request_id,
                    worker=1000 + rng.randrange(workers),
                    arrive=arrive,
                    answer=answer,
                    read=arrive + 0.3,
                    write=answer - 0.3,
                    before=before,
                )
            )
        else:
            requests.append(
                timed(
                    request_id,
                    worker=1000 + rng.randrange(workers),
                    arrive=arrive,
                    answer=answer,
                    status=status,
                )
            )
    return requests


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def with_class(root: ET.Element, tag: str, *classes: str) -> list[ET.Element]:
    return [
        element
        for element in root.iter(f"{SVG}{tag}")
        if set(classes) <= set(element.get("class", "").split())
    ]


# The layout


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, RequestOutcome.OK),
        (201, RequestOutcome.OK),
        (299, RequestOutcome.OK),
        (400, RequestOutcome.REFUSED),
        (409, RequestOutcome.REFUSED),
        (499, RequestOutcome.REFUSED),
        (500, RequestOutcome.INDETERMINATE),
        (503, RequestOutcome.INDETERMINATE),
        (302, RequestOutcome.INDETERMINATE),
        (199, RequestOutcome.INDETERMINATE),
    ],
)
def test_outcome_of_status(status, outcome):
    assert outcome_of(status=status) is outcome


def test_times_are_ms_from_the_first_arrival_whatever_the_input_order():
    layout = layout_timeline(
        requests=[
            timed(2, arrive=12.5, answer=20.25, read=13.0, write=19.75, before=50),
            timed(1, worker=200, arrive=10.0, answer=11.0),
        ]
    )

    assert layout.started_at == at(10.0)
    bars = {bar.request_id: bar for bar in layout.bars}
    assert (bars[1].start_ms, bars[1].end_ms, bars[1].read_ms, bars[1].write_ms) == (0.0, 1.0, None, None)
    assert (bars[2].start_ms, bars[2].end_ms) == (2.5, 10.25)
    assert (bars[2].read_ms, bars[2].write_ms) == (3.0, 9.75)
    assert layout.totals.duration_ms == 10.25
    assert layout.span_ms == (0.0, 10.25)
    assert [bar.request_id for bar in layout.bars] == [1, 2]


def test_microseconds_survive_the_ms_arithmetic():
    layout = layout_timeline(
        requests=[timed(1, arrive=0.0, answer=0.001), timed(2, arrive=0.002, answer=0.005)]
    )

    assert [(bar.start_ms, bar.end_ms) for bar in layout.bars] == [(0.0, 0.001), (0.002, 0.005)]


def test_one_lane_per_worker_ordered_by_pid():
    layout = layout_timeline(
        requests=[
            timed(1, worker=300, arrive=0, answer=5),
            timed(2, worker=100, arrive=1, answer=2),
            timed(3, worker=100, arrive=3, answer=4),
            timed(4, worker=200, arrive=2, answer=9),
        ]
    )

    assert [(lane.index, lane.worker, lane.sub_lane, lane.label) for lane in layout.lanes] == [
        (0, 100, 0, "worker 100"),
        (1, 200, 0, "worker 200"),
        (2, 300, 0, "worker 300"),
    ]
    assert {bar.request_id: bar.lane for bar in layout.bars} == {1: 2, 2: 0, 3: 0, 4: 1}


def test_overlapping_requests_of_one_worker_take_sub_lanes():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=10),
            timed(2, arrive=2, answer=4),  # overlaps 1: a second sub-lane
            timed(3, arrive=3, answer=6),  # overlaps 1 and 2: a third
            timed(4, arrive=4, answer=8),  # 2 ended at 4, "at or before": reuses the second
            timed(5, arrive=10, answer=12),  # 1 ended at 10: back in the first
            timed(6, worker=50, arrive=1, answer=2),
        ]
    )

    assert [lane.label for lane in layout.lanes] == [
        "worker 50",
        "worker 100",
        "worker 100 (2)",
        "worker 100 (3)",
    ]
    assert {bar.request_id: bar.lane for bar in layout.bars} == {1: 1, 2: 2, 3: 3, 4: 2, 5: 1, 6: 0}


def test_three_requests_that_read_one_balance_are_one_lost_group():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=4, read=1.0, write=3.0, before=999_972),
            timed(2, worker=200, arrive=0.5, answer=4, read=1.5, write=3.5, before=999_972),
            timed(3, worker=300, arrive=0.2, answer=4, read=0.8, write=2.5, before=999_972),
            timed(4, arrive=5, answer=6, read=5.2, write=5.8, before=999_971),  # alone: not lost
        ]
    )

    (group,) = layout.lost_groups
    assert group.balance_before == 999_972
    # In read order, each point at its read mark in its lane.
    assert group.request_ids == (3, 1, 2)
    assert group.points == ((0.8, 2), (1.0, 0), (1.5, 1))
    assert group.balances_after == (999_971, 999_971, 999_971)
    assert group.title == "lost update: 3 requests read 999972 before any wrote, and all wrote 999971"
    assert {bar.request_id: bar.lost for bar in layout.bars} == {1: True, 2: True, 3: True, 4: False}
    assert layout.totals.lost == 3
    assert layout.totals.lost_groups == 1


def test_two_lost_requests_read_in_jepsen_words():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=4, read=1, write=3, ledger_id=28, before=999_972),
            timed(2, worker=200, arrive=0, answer=4, read=2, write=3, ledger_id=29, before=999_972),
        ]
    )

    assert (
        layout.lost_groups[0].title
        == "lost update: 2 requests read 999972 before either wrote, and both wrote 999971"
    )
    bar = layout.bars[0]
    assert bar.title == (
        "request 1, worker 100: read 999972, wrote 999971 (ledger row 28), 0.00–4.00 ms, "
        "lost update: 2 requests read 999972"
    )


def test_a_link_meets_a_bar_without_a_read_at_its_middle():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=4, before=10),
            timed(2, worker=200, arrive=1, answer=3, read=2.5, before=10),
        ]
    )

    assert layout.lost_groups[0].points == ((2.0, 0), (2.5, 1))


def test_refused_and_failed_requests_are_never_lost():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=3, read=1, write=2, before=500),
            timed(2, worker=200, arrive=0, answer=3, read=1, write=2, before=500),
            # Read the same balance but wrote no row: refused for want of funds.
            timed(3, worker=300, arrive=0, answer=2, read=1, status=409),
            # Wrote a row, then the answer failed: in the group (the money went), but not "lost".
            timed(4, worker=400, arrive=0, answer=3, read=1, write=2, status=500, before=500),
        ]
    )

    assert {bar.request_id: (bar.outcome, bar.lost) for bar in layout.bars} == {
        1: (RequestOutcome.OK, True),
        2: (RequestOutcome.OK, True),
        3: (RequestOutcome.REFUSED, False),
        4: (RequestOutcome.INDETERMINATE, False),
    }
    (group,) = layout.lost_groups
    assert sorted(group.request_ids) == [1, 2, 4]
    assert (layout.totals.ok, layout.totals.refused, layout.totals.indeterminate) == (2, 1, 1)
    assert layout.totals.lost == 2


def test_a_row_shared_only_with_a_failed_request_leaves_the_ok_one_lost():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=3, before=500),
            timed(2, worker=200, arrive=0, answer=3, status=502, before=500),
        ]
    )

    assert [bar.lost for bar in layout.bars] == [True, False]
    assert len(layout.lost_groups) == 1


def test_titles_say_what_happened():
    layout = layout_timeline(
        requests=[
            timed(1, arrive=0, answer=1.5, status=409),
            timed(2, arrive=2, answer=3, status=500),
            timed(3, arrive=4, answer=5, status=200),
        ]
    )

    assert [bar.title for bar in layout.bars] == [
        "request 1, worker 100: refused (409), 0.00–1.50 ms",
        "request 2, worker 100: indeterminate (500), 2.00–3.00 ms",
        "request 3, worker 100: ok (200), no ledger row, 4.00–5.00 ms",
    ]


def test_request_ids_must_be_unique():
    with pytest.raises(ValueError, match="request_id"):
        layout_timeline(requests=[timed(1), timed(1, worker=2)])


def test_no_requests_lay_out_empty():
    layout = layout_timeline(requests=[])

    assert (layout.bars, layout.lanes, layout.lost_groups, layout.started_at) == ((), (), (), None)
    assert layout.totals.requests == 0


# Windows


def test_a_window_keeps_the_bars_that_overlap_it_and_every_lane():
    requests = [
        timed(1, arrive=0, answer=2, before=10),
        timed(2, worker=200, arrive=1, answer=3, read=1.5, before=10),
        timed(3, arrive=4, answer=6),
        timed(4, worker=300, arrive=7, answer=9),  # its lane stays though its bar is outside
        timed(5, arrive=6, answer=7),  # touches the window's end: in
    ]
    whole = layout_timeline(requests=requests)

    window = layout_timeline(requests=requests, window=(2.5, 6.0))

    assert [bar.request_id for bar in window.bars] == [2, 3, 5]
    assert window.lanes == whole.lanes
    assert window.totals == whole.totals
    assert window.span_ms == window.window == (2.5, 6.0)
    # Request 1 is outside, but its group shows: the link runs off the window's edge.
    (group,) = window.lost_groups
    assert group.request_ids == (1, 2)
    assert [bar for bar in whole.bars if bar.request_id in (2, 3, 5)] == list(window.bars)


def test_a_window_must_not_end_before_it_starts():
    with pytest.raises(ValueError, match="window"):
        layout_timeline(requests=[timed(1)], window=(5.0, 1.0))


def test_windows_split_a_run_into_consecutive_windows_of_max_bars():
    # Ten one-millisecond requests two milliseconds apart in one lane.
    requests = [timed(i, arrive=2 * i, answer=2 * i + 1) for i in range(10)]
    layout = layout_timeline(requests=requests)

    spans = windows(layout=layout, max_bars=3)

    assert spans[0][0] == 0.0
    assert spans[-1][1] == layout.totals.duration_ms == 19.0
    assert all(earlier[1] == later[0] for earlier, later in zip(spans, spans[1:], strict=False))
    # Cuts in the idle gaps: 5.5 lies between request 2's end (5) and request 3's start (6).
    assert spans == [(0.0, 5.5), (5.5, 11.5), (11.5, 17.5), (17.5, 19.0)]
    shown = [
        [bar.request_id for bar in layout_timeline(requests=requests, window=span).bars] for span in spans
    ]
    assert shown == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_windows_never_split_requests_that_start_together():
    requests = [timed(i, worker=i, arrive=0 if i < 4 else 10, answer=1 if i < 4 else 11) for i in range(6)]
    layout = layout_timeline(requests=requests)

    spans = windows(layout=layout, max_bars=2)

    assert spans == [(0.0, 5.5), (5.5, 11.0)]


def test_windows_of_a_long_run_stay_near_max_bars_and_miss_no_bar():
    requests = synthetic_run(2_000)
    layout = layout_timeline(requests=requests)

    spans = windows(layout=layout, max_bars=300)

    assert len(spans) == 7
    seen = set()
    for span in spans:
        bars = layout_timeline(requests=requests, window=span).bars
        # Requests still running at a cut show on both sides of it: a handful, not hundreds.
        assert len(bars) <= 300 + 20
        seen.update(bar.request_id for bar in bars)
    assert seen == {request.request_id for request in requests}


def test_windows_of_nothing_and_bad_max_bars():
    assert windows(layout=layout_timeline(requests=[]), max_bars=10) == []
    assert windows(layout=layout_timeline(requests=[timed(1)]), max_bars=10) == [(0.0, 1.0)]
    with pytest.raises(ValueError, match="max_bars"):
        windows(layout=layout_timeline(requests=[timed(1)]), max_bars=0)


# The SVG


def lost_run() -> list[TimedRequest]:
    return [
        timed(1, arrive=0, answer=4, read=1, write=3, before=999_972),
        timed(2, worker=200, arrive=0.5, answer=4.5, read=1.2, write=3.5, before=999_972),
        timed(3, worker=300, arrive=5, answer=8, read=6, write=7, before=999_971),
        timed(4, worker=300, arrive=8.5, answer=9, read=8.7, status=409),
        timed(5, worker=200, arrive=9, answer=12, status=500),
        timed(6, arrive=10, answer=12, read=10.5, write=11, before=999_970),
        timed(7, worker=200, arrive=10, answer=12, read=10.6, write=11, before=999_970),
    ]


def test_svg_has_one_classed_bar_per_request():
    layout = layout_timeline(requests=lost_run())

    root = parse(render_svg(layout))

    assert root.tag == f"{SVG}svg"
    bars = with_class(root, "rect", "bar")
    assert len(bars) == 7
    assert [bar.get("data-request-id") for bar in bars] == ["1", "2", "3", "4", "5", "6", "7"]
    assert len(with_class(root, "rect", "bar", "ok")) == 5
    assert len(with_class(root, "rect", "bar", "lost")) == 4
    assert len(with_class(root, "rect", "bar", "refused")) == 1
    assert len(with_class(root, "rect", "bar", "indeterminate")) == 1
    by_id = {bar.get("data-request-id"): bar for bar in bars}
    assert by_id["1"].get("class") == "bar ok lost"
    assert by_id["3"].get("class") == "bar ok"
    assert (by_id["3"].get("data-ledger-id"), by_id["3"].get("data-worker")) == ("1003", "300")
    assert by_id["4"].get("data-ledger-id") == ""
    assert by_id["1"].find(f"{SVG}title").text == layout.bars[0].title


def test_svg_marks_and_lost_links():
    layout = layout_timeline(requests=lost_run())

    root = parse(render_svg(layout))

    assert len(with_class(root, "line", "mark", "read")) == 6
    assert len(with_class(root, "line", "mark", "write")) == 5
    links = with_class(root, "polyline", "lost-link")
    assert [link.get("data-balance-before") for link in links] == ["999972", "999970"]
    assert [len(link.get("points").split()) for link in links] == [2, 2]
    assert links[0].find(f"{SVG}title").text.startswith("lost update: 2 requests read 999972")


def test_svg_has_an_axis_lane_labels_and_a_legend():
    layout = layout_timeline(requests=lost_run())

    svg = render_svg(layout)
    texts = [text.text for text in parse(svg).iter(f"{SVG}text")]

    assert AXIS_LABEL in texts
    assert {"worker 100", "worker 200", "worker 300"} <= set(texts)
    assert {"0", "2", "4", "6", "8", "10", "12"} <= set(texts)
    assert {"ok", "lost update", "refused (4xx)"} <= set(texts)
    assert "<?xml" not in svg


def test_svg_grows_with_the_lanes():
    one = parse(render_svg(layout_timeline(requests=[timed(1)])))
    three = parse(render_svg(layout_timeline(requests=[timed(1), timed(2, worker=2), timed(3, worker=3)])))

    assert int(three.get("height")) > int(one.get("height"))


def test_svg_escapes_what_it_draws():
    layout = layout_timeline(requests=lost_run())
    hostile = "<script>alert('x')</script> & \"quotes\""
    bars = (dataclasses.replace(layout.bars[0], title=hostile), *layout.bars[1:])
    lanes = (dataclasses.replace(layout.lanes[0], label=hostile), *layout.lanes[1:])
    layout = dataclasses.replace(layout, bars=bars, lanes=lanes)

    svg = render_svg(layout)

    assert "<script>" not in svg
    root = parse(svg)
    assert with_class(root, "rect", "bar")[0].find(f"{SVG}title").text == hostile
    assert hostile in [text.text for text in root.iter(f"{SVG}text")]


def test_svg_of_nothing_says_so():
    root = parse(render_svg(layout_timeline(requests=[])))

    assert [text.text for text in root.iter(f"{SVG}text")] == [EMPTY_TEXT]
    assert with_class(root, "rect", "bar") == []


def test_svg_of_a_window_draws_its_bars_only():
    requests = lost_run()

    root = parse(render_svg(layout_timeline(requests=requests, window=(4.8, 8.2))))

    assert [bar.get("data-request-id") for bar in with_class(root, "rect", "bar")] == ["3"]


def test_ten_thousand_requests_render_to_svg():
    requests = synthetic_run(10_000)
    layout = layout_timeline(requests=requests)

    root = parse(render_svg(layout))

    assert len(with_class(root, "rect", "bar")) == 10_000
    assert len(with_class(root, "rect", "bar", "lost")) == layout.totals.lost > 0
    assert len(with_class(root, "polyline", "lost-link")) == layout.totals.lost_groups
    assert "dense" in root.get("class").split()


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0.0, 10.0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        (0.0, 78.1, [0, 10, 20, 30, 40, 50, 60, 70]),
        (2.5, 6.0, [2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]),
        (3.0, 3.0, [3.0]),
    ],
)
def test_nice_ticks(low, high, ticks):
    assert nice_ticks(low=low, high=high, wanted=10) == pytest.approx(ticks)


# The PNG


# 11 in wide at 120 dpi; 1.6 in high for the legend and the axis, and 0.28 in per lane.
PNG_WIDTH = 1320


def drawn_plot(path, layout) -> tuple[Plot, Callable[[float], object]]:
    """The plot of the PNG at ``path``, and ``near``: a value in ms give or take two pixels."""
    plot = plot_of(read_picture(path), span_ms=layout.span_ms, lanes=len(layout.lanes))
    return plot, partial(pytest.approx, abs=2 * plot.ms_per_pixel)


def test_png_draws_each_bar_in_its_outcomes_colour_and_joins_the_lost_ones(tmp_path):
    path = tmp_path / "timeline.png"
    layout = layout_timeline(requests=lost_run())

    render_png(layout, path=path)

    assert path.read_bytes().startswith(PNG_SIGNATURE)
    plot, near = drawn_plot(path, layout)
    assert plot.picture.size == (PNG_WIDTH, 326)  # 4 lanes: (1.6 + 4 x 0.28) in x 120 dpi
    # What the SVG test finds by class: 1, 2, 6 and 7 lost, 3 ok, 4 refused, 5 indeterminate.
    assert [plot.bars(lane) for lane in range(4)] == [
        [("lost", near(0.0), near(4.0)), ("lost", near(10.0), near(12.0))],
        [("lost", near(0.5), near(4.5)), ("indeterminate", near(9.0), near(12.0))],
        [("lost", near(10.0), near(12.0))],
        [("ok", near(5.0), near(8.0)), ("refused", near(8.5), near(9.0))],
    ]
    # 1 (lane 0, read at 1.0) joined to 2 (lane 1, 1.2); 6 (lane 0, 10.5) to 7 (lane 2, 10.6).
    assert [plot.link_crossings(gap) for gap in (0.5, 1.5, 2.5)] == [
        [near(1.1), near(10.525)],
        [near(10.575)],
        [],
    ]


def test_png_of_a_window_draws_only_what_lies_in_it(tmp_path):
    path = tmp_path / "window.png"
    layout = layout_timeline(requests=lost_run(), window=(4.0, 9.0))

    render_png(layout, path=path)

    plot, near = drawn_plot(path, layout)
    assert plot.picture.size == (PNG_WIDTH, 326)
    # 1 ends and 5 starts at the window's edges, 6 and 7 lie beyond it, and so do both links.
    assert [plot.bars(lane) for lane in range(4)] == [
        [],
        [("lost", near(4.0), near(4.5))],
        [],
        [("ok", near(5.0), near(8.0)), ("refused", near(8.5), near(9.0))],
    ]
    assert [plot.link_crossings(gap) for gap in (0.5, 1.5, 2.5)] == [[], [], []]


def test_png_of_nothing_says_so_in_its_middle_and_draws_no_bar(tmp_path):
    path = tmp_path / "empty.png"

    render_png(layout_timeline(requests=[]), path=path)

    picture = read_picture(path)
    assert picture.size == (PNG_WIDTH, 225)  # one lane's height: (1.6 + 0.28) in x 120 dpi
    # No colour at all: black and its anti-aliased greys on white, no bar, no frame, no axis; only
    # the one sentence (EMPTY_TEXT), a single line about the middle of the empty plot.
    assert {red == green == blue for red, green, blue in picture.colours()} == {True}
    rows, columns = np.nonzero((picture.pixels < 128).all(axis=2))
    assert rows.max() - rows.min() < 20 and 100 < columns.max() - columns.min() < 300
    assert abs((rows.min() + rows.max()) / 2 - 225 / 2) < 10
    assert abs((columns.min() + columns.max()) / 2 - PNG_WIDTH / 2) < 30
