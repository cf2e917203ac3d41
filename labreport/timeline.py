"""The layout of a Jepsen-style timeline: one bar per recorded request, in lanes per worker.

Pure Python and no Django, so the page, the PNG renderer and the tests share one layout without
settings. Times are milliseconds on the server's clock from the run's first arrival; a lane is
one Gunicorn worker, or a sub-lane of it when its requests overlap (threads).

A lost update is a set of ledger rows that read the same balance: each overwrote the others'
write. Like the audit, the group counts every ledger row (a row means the withdrawal committed,
whatever the client was told); only the members the server answered 2xx are flagged ``lost``.
The run is assumed to hammer one account, so equal ``balance_before`` means the same balance.
"""

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_ONE_MS = timedelta(milliseconds=1)


class RequestOutcome(enum.StrEnum):
    # A 2xx answer: the withdrawal happened.
    OK = "ok"
    # A 4xx answer: the server refused it.
    REFUSED = "refused"
    # A 5xx or any other answer: it may or may not have happened.
    INDETERMINATE = "indeterminate"


def outcome_of(*, status: int) -> RequestOutcome:
    if 200 <= status < 300:
        return RequestOutcome.OK
    if 400 <= status < 500:
        return RequestOutcome.REFUSED
    return RequestOutcome.INDETERMINATE


@dataclass(frozen=True, kw_only=True)
class TimedRequest:
    request_id: int  # the recorded row's id, unique within a run
    worker: int  # Gunicorn worker pid
    arrived_at: datetime  # aware datetimes (UTC)
    read_at: datetime | None  # None when the request never read (refused early, error)
    written_at: datetime | None
    answered_at: datetime
    status: int  # HTTP status the server answered
    ledger_id: int | None  # the ledger row it wrote, None if none
    balance_before: int | None  # the balance its ledger row says it read (None without a row)
    balance_after: int | None


@dataclass(frozen=True, kw_only=True)
class Lane:
    index: int  # 0 is drawn at the top
    worker: int
    sub_lane: int  # 0 for a worker's first lane, 1 for the second its overlapping requests need...
    label: str


@dataclass(frozen=True, kw_only=True)
class Bar:
    request_id: int
    worker: int
    lane: int
    start_ms: float
    end_ms: float
    read_ms: float | None
    write_ms: float | None
    outcome: RequestOutcome
    lost: bool
    status: int
    ledger_id: int | None
    balance_before: int | None
    balance_after: int | None
    title: str

    @property
    def anchor_ms(self) -> float:
        """Where a lost-update link meets this bar: its read, or its middle if it never read."""
        return self.read_ms if self.read_ms is not None else (self.start_ms + self.end_ms) / 2


@dataclass(frozen=True, kw_only=True)
class LostGroup:
    balance_before: int
    request_ids: tuple[int, ...]  # ordered by anchor time, like points
    balances_after: tuple[int, ...]  # what each member wrote, in the same order
    # (ms, lane) of each member's read mark (or bar middle): the renderer joins them in order.
    points: tuple[tuple[float, int], ...]
    title: str


@dataclass(frozen=True, kw_only=True)
class TimelineTotals:
    """The whole run's counts, the same for every window of it."""

    requests: int
    ok: int
    refused: int
    indeterminate: int
    lost: int  # ok requests in a lost-update group
    lost_groups: int
    duration_ms: float  # from the first arrival to the last answer


@dataclass(frozen=True, kw_only=True)
class TimelineLayout:
    started_at: datetime | None  # t0, the first arrival; None for no requests
    lanes: tuple[Lane, ...]  # from all requests, so they stay put from window to window
    bars: tuple[Bar, ...]  # the window's bars, by arrival then request id
    lost_groups: tuple[LostGroup, ...]  # the groups with a member among bars
    span_ms: tuple[float, float]  # the x range to draw: the window, or the whole run
    window: tuple[float, float] | None
    totals: TimelineTotals


def layout_timeline(
    *, requests: Sequence[TimedRequest], window: tuple[float, float] | None = None
) -> TimelineLayout:
    """Lay out every request; with ``window=(from_ms, to_ms)`` keep only the bars that overlap it."""
    if window is not None and window[0] > window[1]:
        raise ValueError(f"A window must not end before it starts: {window!r}.")
    if len({request.request_id for request in requests}) != len(requests):
        raise ValueError("Each request must have its own request_id.")
    if not requests:
        totals = TimelineTotals(
            requests=0, ok=0, refused=0, indeterminate=0, lost=0, lost_groups=0, duration_ms=0.0
        )
        return TimelineLayout(
            started_at=None,
            lanes=(),
            bars=(),
            lost_groups=(),
            span_ms=window or (0.0, 0.0),
            window=window,
            totals=totals,
        )

    t0 = min(request.arrived_at for request in requests)
    ordered = sorted(requests, key=lambda request: (request.arrived_at, request.request_id))
    lanes, lane_of = _lanes(ordered)
    groups = _lost_groups(ordered)
    lost_balances = {balance for balance, members in groups.items() if len(members) > 1}

    bars = []
    for request in ordered:
        outcome = outcome_of(status=request.status)
        lost = outcome is RequestOutcome.OK and _has_row(request) and request.balance_before in lost_balances
        bar = _bar(
            request,
            t0=t0,
            lane=lane_of[request.request_id],
            outcome=outcome,
            lost_with=len(groups[request.balance_before]) if lost else 0,
        )
        bars.append(bar)
    bar_of = {bar.request_id: bar for bar in bars}
    lost_groups = sorted(
        (
            _lost_group(balance, [bar_of[request.request_id] for request in groups[balance]])
            for balance in lost_balances
        ),
        key=lambda group: (group.points[0][0], group.balance_before),
    )

    counts = defaultdict(int)
    for bar in bars:
        counts[bar.outcome] += 1
    totals = TimelineTotals(
        requests=len(bars),
        ok=counts[RequestOutcome.OK],
        refused=counts[RequestOutcome.REFUSED],
        indeterminate=counts[RequestOutcome.INDETERMINATE],
        lost=sum(bar.lost for bar in bars),
        lost_groups=len(lost_groups),
        duration_ms=max(bar.end_ms for bar in bars),
    )

    if window is not None:
        low, high = window
        bars = [bar for bar in bars if bar.start_ms <= high and bar.end_ms >= low]
        shown = {bar.request_id for bar in bars}
        lost_groups = [group for group in lost_groups if shown.intersection(group.request_ids)]
    return TimelineLayout(
        started_at=t0,
        lanes=tuple(lanes),
        bars=tuple(bars),
        lost_groups=tuple(lost_groups),
        span_ms=window or (0.0, totals.duration_ms),
        window=window,
        totals=totals,
    )


def windows(*, layout: TimelineLayout, max_bars: int) -> list[tuple[float, float]]:
    """Consecutive windows covering ``layout.span_ms``, each holding about ``max_bars`` bars.

    Window i is cut so that the bars *starting* in it are the i-th run of ``max_bars`` bars in
    start order; a cut falls in the idle gap after those bars when there is one, so no bar
    straddles it. Bars still running at a cut (concurrent ones) show in both windows, and bars
    that start at the same instant are never split, so a window may hold a few more. Pass a
    layout of the whole run; each window then goes back to ``layout_timeline(window=...)``.
    """
    if max_bars < 1:
        raise ValueError(f"max_bars must be 1 or more, not {max_bars}.")
    if not layout.bars:
        return []
    spans = sorted((bar.start_ms, bar.end_ms) for bar in layout.bars)
    low, high = layout.span_ms
    cuts = [low]
    latest_end = float("-inf")
    chunk_start = 0
    for index, (start, end) in enumerate(spans):
        if index - chunk_start >= max_bars and start > spans[index - 1][0]:
            # Cut midway through the idle gap if the earlier bars have all ended, else midway
            # from the previous start: either way this bar starts in the next window only.
            gap_start = latest_end if latest_end < start else spans[index - 1][0]
            cut = (gap_start + start) / 2
            if low < cut < high:
                cuts.append(cut)
                chunk_start = index
        latest_end = max(latest_end, end)
    cuts.append(high)
    return list(zip(cuts, cuts[1:], strict=False))


def _has_row(request: TimedRequest) -> bool:
    return request.ledger_id is not None and request.balance_before is not None


def _lanes(ordered: Sequence[TimedRequest]) -> tuple[list[Lane], dict[int, int]]:
    """Interval partitioning per worker: a request takes the worker's first sub-lane that is free."""
    sub_lane_ends: dict[int, list[datetime]] = defaultdict(list)
    sub_lane_of: dict[int, tuple[int, int]] = {}
    for request in ordered:
        ends = sub_lane_ends[request.worker]
        end = max(request.answered_at, request.arrived_at)
        for sub_lane, last_end in enumerate(ends):
            if last_end <= request.arrived_at:
                ends[sub_lane] = end
                break
        else:
            sub_lane = len(ends)
            ends.append(end)
        sub_lane_of[request.request_id] = (request.worker, sub_lane)

    lanes = []
    index_of: dict[tuple[int, int], int] = {}
    for worker in sorted(sub_lane_ends):
        for sub_lane in range(len(sub_lane_ends[worker])):
            label = f"worker {worker}" if sub_lane == 0 else f"worker {worker} ({sub_lane + 1})"
            index_of[worker, sub_lane] = len(lanes)
            lanes.append(Lane(index=len(lanes), worker=worker, sub_lane=sub_lane, label=label))
    return lanes, {request_id: index_of[key] for request_id, key in sub_lane_of.items()}


def _lost_groups(ordered: Sequence[TimedRequest]) -> dict[int, list[TimedRequest]]:
    """Every request with a ledger row, by the balance it read (groups of one included)."""
    groups: dict[int, list[TimedRequest]] = defaultdict(list)
    for request in ordered:
        if _has_row(request):
            groups[request.balance_before].append(request)
    return groups


def _ms(moment: datetime, *, t0: datetime) -> float:
    # timedelta arithmetic keeps microseconds exact; epoch floats lose them near 1.7e9 s.
    return (moment - t0) / _ONE_MS


def _bar(request: TimedRequest, *, t0: datetime, lane: int, outcome: RequestOutcome, lost_with: int) -> Bar:
    start_ms = _ms(request.arrived_at, t0=t0)
    end_ms = _ms(request.answered_at, t0=t0)
    read_ms = None if request.read_at is None else _ms(request.read_at, t0=t0)
    write_ms = None if request.written_at is None else _ms(request.written_at, t0=t0)
    return Bar(
        request_id=request.request_id,
        worker=request.worker,
        lane=lane,
        start_ms=start_ms,
        end_ms=end_ms,
        read_ms=read_ms,
        write_ms=write_ms,
        outcome=outcome,
        lost=lost_with > 1,
        status=request.status,
        ledger_id=request.ledger_id,
        balance_before=request.balance_before,
        balance_after=request.balance_after,
        title=_title(request, outcome=outcome, span=(start_ms, end_ms), lost_with=lost_with),
    )


def _title(
    request: TimedRequest, *, outcome: RequestOutcome, span: tuple[float, float], lost_with: int
) -> str:
    """``request 17, worker 1234: read 999972, wrote 999971 (ledger row 29), 0.00–4.20 ms``."""
    parts = []
    if outcome is not RequestOutcome.OK:
        parts.append(f"{outcome} ({request.status})")
    if _has_row(request):
        parts.append(
            f"read {request.balance_before}, wrote {request.balance_after} (ledger row {request.ledger_id})"
        )
    elif outcome is RequestOutcome.OK:
        parts.append(f"ok ({request.status}), no ledger row")
    parts.append(f"{span[0]:.2f}–{span[1]:.2f} ms")
    if lost_with > 1:
        parts.append(f"lost update: {lost_with} requests read {request.balance_before}")
    return f"request {request.request_id}, worker {request.worker}: " + ", ".join(parts)


def _lost_group(balance_before: int, members: list[Bar]) -> LostGroup:
    members = sorted(members, key=lambda bar: (bar.anchor_ms, bar.request_id))
    balances_after = tuple(bar.balance_after for bar in members)
    count = len(members)
    either = "either" if count == 2 else "any"
    if len(set(balances_after)) == 1:
        wrote = f"{'both' if count == 2 else 'all'} wrote {balances_after[0]}"
    else:
        wrote = "wrote " + ", ".join(str(balance) for balance in balances_after)
    return LostGroup(
        balance_before=balance_before,
        request_ids=tuple(bar.request_id for bar in members),
        balances_after=balances_after,
        points=tuple((bar.anchor_ms, bar.lane) for bar in members),
        title=f"lost update: {count} requests read {balance_before} before {either} wrote, and {wrote}",
    )
