"""One symbol's closed candles, released in open-time order, each exactly once, without holes.

Candles reach the feed from two sources that race each other: the websocket (late,
duplicated or reordered when the network misbehaves) and the REST backfill. The
sequencer is the single place that decides what to hand on. It is plain synchronous
code (no I/O, no clock), so every ordering rule is unit- and property-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from env.intervals import CandleGrid
from env.types import Candle

Source = Literal["stream", "rest"]


@dataclass(frozen=True, slots=True)
class FeedCandle:
    """A closed candle as the feed hands it on.

    Attributes:
        candle: the candle; ``(symbol, interval, open_time_ms)`` is its identity.
        source: ``"stream"`` (websocket ``confirm: true``) or ``"rest"`` (backfill).
        received_ns: ``time.perf_counter_ns()`` when its message or REST page arrived, so
            the consumer can measure arrival-to-decision latency.
    """

    candle: Candle
    source: Source
    received_ns: int


@dataclass(slots=True)
class Offer:
    """What one :meth:`CandleSequencer.offer` did."""

    released: list[FeedCandle] = field(default_factory=list)
    duplicate: bool = False  # already released or already waiting: dropped
    out_of_order: bool = False  # a stream candle older than one the stream already sent
    opened_gap: bool = False  # held back because an earlier candle is missing


@dataclass(slots=True)
class Skip:
    """Holes given up by :meth:`CandleSequencer.skip_absent` and the candles that then moved."""

    ranges: list[tuple[int, int]] = field(default_factory=list)  # (first_open_ms, last_open_ms) skipped
    released: list[FeedCandle] = field(default_factory=list)


class CandleSequencer:
    """Holds back candles that arrive ahead of a missing one until the hole is filled.

    Args:
        grid: where the interval's candles open (the next one is ``grid.shift(open, 1)``:
            weeks and months are not fixed multiples from the epoch).
        last_open_ms: open time of the last candle the consumer already has (from the
            ledger or the warm-up); ``None`` to start at the first candle offered.
    """

    def __init__(self, grid: CandleGrid, last_open_ms: int | None = None) -> None:
        self.grid = grid
        self.last_open_ms = last_open_ms
        self._waiting: dict[int, FeedCandle] = {}
        self._newest_stream_ms: int | None = None

    @property
    def next_open_ms(self) -> int | None:
        """Open time of the next candle to release, where a backfill must start."""
        return None if self.last_open_ms is None else self.grid.shift(self.last_open_ms, 1)

    @property
    def has_gap(self) -> bool:
        """True while candles wait behind a missing one."""
        return bool(self._waiting)

    def offer(self, item: FeedCandle) -> Offer:
        """Take one candle from either source; release it and any candles it unblocks."""
        result = Offer()
        open_ms = item.candle.open_time_ms
        if item.source == "stream":
            if self._newest_stream_ms is not None and open_ms < self._newest_stream_ms:
                result.out_of_order = True
            self._newest_stream_ms = max(open_ms, self._newest_stream_ms or open_ms)
        if self.last_open_ms is None:
            self.last_open_ms = self.grid.shift(open_ms, -1)
        if open_ms <= self.last_open_ms or open_ms in self._waiting:
            result.duplicate = True
            return result
        had_gap = self.has_gap
        self._waiting[open_ms] = item
        result.released = self._drain()
        result.opened_gap = self.has_gap and not had_gap
        return result

    def skip_absent(self, covered_until_ms: int) -> Skip:
        """Give up on holes the exchange has proved empty and release what waited behind them.

        Call after a successful backfill that returned every candle the exchange has up to
        ``covered_until_ms``: a hole at or below that bound will never be filled.
        """
        skip = Skip()
        while self._waiting and self.next_open_ms is not None:
            before_waiting = self.grid.shift(min(self._waiting), -1)
            if before_waiting > covered_until_ms:
                break
            skip.ranges.append((self.next_open_ms, before_waiting))
            self.last_open_ms = before_waiting
            skip.released.extend(self._drain())
        return skip

    def _drain(self) -> list[FeedCandle]:
        released = []
        while self.next_open_ms in self._waiting:
            item = self._waiting.pop(self.next_open_ms)
            released.append(item)
            self.last_open_ms = item.candle.open_time_ms
        return released
