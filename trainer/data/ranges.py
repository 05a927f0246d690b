"""Date ranges of candles: ``--from``/``--to`` parsed strictly, and a frame cut to a range
with all the history before its first decision (the history rule of
:func:`env.features.warmup_prefix`).

``shadow backtest`` cuts a candle file with :func:`select_range`; candles read from the
ledger (:mod:`trainer.data.ledger_source`) go through the same function.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from config.errors import UserError
from env.candles import format_ms


class RangeError(UserError, ValueError):
    """A date range that selects no usable candles."""


def select_range(
    candles: pd.DataFrame, warmup: int, start: str | None = None, end: str | None = None
) -> tuple[pd.DataFrame, int]:
    """Cut ``candles`` to ``[first candle, end)`` for a backtest whose first decision is
    at ``start``.

    Every candle before ``start`` stays in the frame, because the features of a decision
    run over the whole series before it (the history rule of
    :func:`env.features.warmup_prefix`): the live daemon's features run over every candle
    its ledger stored, so a backtest over the ledger's candles from ``start`` decides
    exactly what the daemon decided at ``start``, and a backtest over a file decides the
    same from ``start`` whatever ``start`` is.

    Args:
        candles: validated candles.
        warmup: candles needed before the first decision (``warmup_prefix(lookback_window)``,
            the env's ``first_step``).
        start: first decision time (inclusive), any date-time pandas parses (UTC).
        end: end time (exclusive).

    Returns:
        ``(frame, start_index)``: the candles to build the env on and the first decision
        candle's index in it (the candle at ``start``, or ``warmup`` when the data holds
        fewer candles before ``start``: decisions then begin after the warm-up).

    Raises:
        RangeError: an unparsable date, ``start >= end``, no candles in the range, or too
            few to trade.
    """
    times = candles["open_time_ms"].to_numpy()
    start_ms, end_ms = parse_range(start, end)
    first = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
    stop = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="left"))
    span = f"the data covers {format_ms(times[0])} .. {format_ms(times[-1])}"
    if first >= stop:
        raise RangeError(f"no candles in [{start or 'start'}, {end or 'end'}); {span}")
    start_index = max(first, warmup)
    if stop - start_index < 2:
        raise RangeError(
            f"[{start or 'start'}, {end or 'end'}) leaves {max(stop - start_index, 0)} candle(s) to trade: need "
            f"{warmup} candles of warm-up before the first decision and at least 2 to trade; {span}"
        )
    return candles.iloc[:stop].reset_index(drop=True), start_index


def parse_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``--from``/``--to`` as epoch ms (``None`` where not given).

    Raises:
        RangeError: an unparsable date, or ``start >= end``.
    """
    start_ms = None if start is None else _parse_time_ms(start, "--from")
    end_ms = None if end is None else _parse_time_ms(end, "--to")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise RangeError(f"--from {start} is not before --to {end}")
    return start_ms, end_ms


def _parse_time_ms(text: str, flag: str) -> int:
    """ISO 8601 date or date-time (naive = UTC) to epoch ms; strict, so a typo is an error,
    not a guess."""
    stamp: pd.Timestamp | None
    try:
        stamp = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or pd.isna(stamp):  # "NaT" parses, to NaT
        raise RangeError(f"{flag} {text!r} is not a date or date-time (e.g. 2023-03-10 or 2023-03-10T12:00)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.asm8.astype("datetime64[ms]").astype(np.int64))

