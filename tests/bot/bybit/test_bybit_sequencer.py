"""The per-symbol sequencer: in order, exactly once, no holes, whatever the arrival order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.bybit.sequencer import CandleSequencer, FeedCandle, Source
from env.intervals import GRIDS
from env.types import Candle

MINUTES = GRIDS["1m"]
STEP = 60_000
BASE = 1_677_628_800_000  # 2023-03-01 00:00 UTC


def item(n: int, source: Source = "stream") -> FeedCandle:
    close = 100.0 + n
    return FeedCandle(Candle("BTCUSDT", "1m", BASE + n * STEP, close, close, close, close, 1.0), source, n)


def opens(items: list[FeedCandle]) -> list[int]:
    return [(i.candle.open_time_ms - BASE) // STEP for i in items]


def test_in_order_candles_pass_straight_through() -> None:
    seq = CandleSequencer(MINUTES, BASE - STEP)
    for n in range(3):
        offer = seq.offer(item(n))
        assert opens(offer.released) == [n] and not offer.duplicate and not offer.opened_gap
    assert seq.next_open_ms == BASE + 3 * STEP


def test_a_candle_after_a_hole_waits_for_the_backfill() -> None:
    seq = CandleSequencer(MINUTES, BASE - STEP)
    seq.offer(item(0))
    ahead = seq.offer(item(2))
    assert ahead.released == [] and ahead.opened_gap and seq.has_gap
    assert not seq.offer(item(3)).opened_gap  # same hole, not a new one
    filled = seq.offer(item(1, "rest"))
    assert opens(filled.released) == [1, 2, 3] and not seq.has_gap
    assert [i.source for i in filled.released] == ["rest", "stream", "stream"]


def test_copies_are_dropped_whether_released_or_waiting() -> None:
    seq = CandleSequencer(MINUTES, BASE - STEP)
    seq.offer(item(0))
    seq.offer(item(2))
    assert seq.offer(item(0, "rest")).duplicate
    assert seq.offer(item(2, "rest")).duplicate
    assert seq.offer(item(-5)).duplicate  # older than the resume point


def test_a_late_stream_candle_is_flagged_out_of_order() -> None:
    seq = CandleSequencer(MINUTES, BASE - STEP)
    seq.offer(item(1))
    late = seq.offer(item(0))
    assert late.out_of_order and opens(late.released) == [0, 1]
    assert not seq.offer(item(0, "rest")).out_of_order  # REST is not the stream's order


def test_without_a_resume_point_the_first_candle_starts_the_sequence() -> None:
    seq = CandleSequencer(MINUTES)
    assert seq.next_open_ms is None
    assert opens(seq.offer(item(7)).released) == [7]
    assert seq.next_open_ms == BASE + 8 * STEP


def test_holes_the_exchange_proved_empty_are_skipped() -> None:
    seq = CandleSequencer(MINUTES, BASE - STEP)
    seq.offer(item(0))
    seq.offer(item(3))
    seq.offer(item(6))
    # REST answered for everything up to candle 4: candles 1-2 do not exist, 4-5 might still come.
    skip = seq.skip_absent(BASE + 4 * STEP)
    assert skip.ranges == [(BASE + STEP, BASE + 2 * STEP)] and opens(skip.released) == [3]
    assert seq.has_gap and seq.next_open_ms == BASE + 4 * STEP
    assert seq.skip_absent(BASE + 3 * STEP).ranges == []  # nothing proved about candles 4-5 yet


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 40),
    data=st.data(),
)
def test_any_arrival_order_with_copies_releases_each_candle_once_in_order(n: int, data: st.DataObject) -> None:
    arrivals = [item(k, data.draw(st.sampled_from(["stream", "rest"]))) for k in range(n)]
    arrivals += data.draw(st.lists(st.sampled_from(arrivals), max_size=n))  # copies
    arrivals = data.draw(st.permutations(arrivals))
    seq = CandleSequencer(MINUTES, BASE - STEP)
    released = [c for a in arrivals for c in seq.offer(a).released]
    assert opens(released) == list(range(n))
    assert not seq.has_gap


def test_months_follow_the_calendar_and_a_proven_hole_is_a_whole_month() -> None:
    """2024: January has 31 days, February 29: the next candle is the next month's first."""
    months = GRIDS["1M"]
    jan, feb, mar, apr = (months.open_ms(months.index(BASE) + k) for k in (10, 11, 12, 13))  # 2024-01 .. 2024-04
    seq = CandleSequencer(months, jan)
    assert seq.next_open_ms == feb == jan + 31 * 86_400_000
    offer = seq.offer(FeedCandle(Candle("BTCUSDT", "1M", apr, 1.0, 1.0, 1.0, 1.0, 1.0), "stream", 0))
    assert offer.opened_gap and not offer.released
    skip = seq.skip_absent(covered_until_ms=mar)  # REST answered up to March: February and March do not exist
    assert skip.ranges == [(feb, mar)] and [i.candle.open_time_ms for i in skip.released] == [apr]
