"""Load and validate OHLCV candle files.

Two layouts are accepted:

- the seed's ``data/test_data.csv``: a ``timestamp`` column of date-time strings;
- the bundled gzip CSVs: ``timestamp,open,high,low,close,volume`` with integer epoch
  milliseconds (UTC).

Every loader returns the same frame: columns ``open_time_ms`` (int64, UTC epoch ms),
``timestamp`` (tz-naive UTC ``datetime64``), ``open high low close volume`` (float64),
sorted, unique and gap-free; plus ``funding_rate`` (float64) when the file has that column
(perpetual funding, :mod:`env.funding`: a rate on every row, 0 where no funding is due).
Bad data raises :class:`CandleDataError` naming the file, the line and the problem, unless
the caller picks ``RepairPolicy.REPAIR``, in which case every repair is logged with its
count (a bad funding rate is an error even then).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from config.errors import UserError
from env.funding import FUNDING_RATE_COLUMN, funding_rate_column, funding_rate_problem
from env.intervals import CandleGrid, infer_grid

log = logging.getLogger(__name__)

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
OHLCV_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")

# Spreadsheet-style line numbers: the header is line 1, the first candle line 2.
_FIRST_DATA_LINE = 2


class CandleDataError(UserError, ValueError):
    """A candle file or frame that cannot be used as it is.

    Args:
        source: file name (or a description such as ``"DataFrame"``).
        problem: what is wrong, in words a user can act on.
        line: 1-based line in the file (header = line 1), when one line is at fault.
    """

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {problem}")


class RepairPolicy(StrEnum):
    """What to do with bad candles.

    - ``STRICT``: raise :class:`CandleDataError` on the first problem (the default).
    - ``REPAIR``: sort, drop duplicate timestamps (keep the last), drop rows with
      NaN/inf, non-positive prices, negative volume or high < low, and fill gaps with
      flat candles (OHLC = previous close, volume 0). Each repair is logged with counts.
    """

    STRICT = "strict"
    REPAIR = "repair"


def load_candles(
    path: str | Path,
    *,
    repair: RepairPolicy = RepairPolicy.STRICT,
    grid: CandleGrid | None = None,
) -> pd.DataFrame:
    """Read a candle CSV (plain or ``.gz``) in either accepted layout and validate it.

    Args:
        path: the file.
        repair: see :class:`RepairPolicy`.
        grid: where the candles must open (:func:`env.intervals.grid`, e.g. Bybit's
            Monday-based weeks); inferred from the data when ``None``.

    Returns:
        The validated frame described in the module docstring.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise CandleDataError(source, "file not found")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise CandleDataError(source, f"not a readable CSV ({exc})") from None
    return normalize_candles(raw, source=source, repair=repair, grid=grid)


def normalize_candles(
    raw: pd.DataFrame,
    *,
    source: str = "DataFrame",
    repair: RepairPolicy = RepairPolicy.STRICT,
    grid: CandleGrid | None = None,
) -> pd.DataFrame:
    """Validate an in-memory frame (``timestamp`` as ms integers or date-times) and
    return it in the canonical layout. Same checks and errors as :func:`load_candles`."""
    missing = [c for c in ("timestamp", *OHLCV_COLUMNS) if c not in raw.columns]
    if missing:
        raise CandleDataError(
            source,
            f"missing column(s) {', '.join(missing)}; expected timestamp,open,high,low,close,volume",
        )
    value_columns = (*OHLCV_COLUMNS, FUNDING_RATE_COLUMN) if FUNDING_RATE_COLUMN in raw.columns else OHLCV_COLUMNS
    frame = pd.DataFrame(
        {"open_time_ms": _timestamps_to_ms(raw["timestamp"], source)}
        | {c: _to_float(raw[c], c, source) for c in value_columns}
    )
    frame.index = pd.RangeIndex(_FIRST_DATA_LINE, _FIRST_DATA_LINE + len(frame))  # file lines
    if len(frame) == 0:
        raise CandleDataError(source, "no candles")
    if FUNDING_RATE_COLUMN in frame:
        _check_funding(frame, source)
    frame = _check_rows(frame, source, repair)
    frame = _check_order(frame, source, repair)
    frame = _check_gaps(frame, source, repair, grid)
    frame = frame.reset_index(drop=True)
    frame.insert(1, "timestamp", pd.to_datetime(frame["open_time_ms"], unit="ms"))
    return frame


def infer_interval_ms(open_time_ms: np.ndarray) -> int:
    """The candle length (robust to a few gaps; a calendar month counts as its mean length)."""
    return infer_grid(open_time_ms).nominal_ms


def resample_candles(candles: pd.DataFrame, interval_ms: int, *, source: str = "candles") -> pd.DataFrame:
    """Aggregate validated candles into longer ones, as the exchange would build them.

    Bins start at whole multiples of ``interval_ms`` since the epoch (where Bybit opens its
    5m, 1h, 4h and 1d candles); a bin the data does not cover completely, at either end,
    is dropped rather than passed off as a full candle.

    Args:
        candles: a frame from :func:`normalize_candles` (sorted, gap-free).
        interval_ms: the new spacing, a whole multiple of the frame's.
        source: the data's name for the error message.

    Returns:
        A frame in the same layout: open of the first candle, highest high, lowest low,
        close of the last candle, summed volume; and, when the candles carry funding, each
        settlement's rate on the first new row opening at or after it
        (:func:`env.funding.funding_rate_column`, as the exchange's history is laid out).

    Raises:
        CandleDataError: ``interval_ms`` is not a whole multiple of the candles' spacing.
    """
    times = candles["open_time_ms"].to_numpy()
    step = infer_interval_ms(times)
    if interval_ms <= 0 or interval_ms % step != 0:
        raise CandleDataError(source, f"cannot resample {step // 1000} s candles into {interval_ms // 1000} s ones: "
                                      "the new interval must be a whole multiple of the old")
    grouped = candles.groupby(times - times % interval_ms, sort=True)
    bins = grouped.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
                       volume=("volume", "sum"), n=("close", "size"))
    frame = bins[bins.pop("n") == interval_ms // step].rename_axis("open_time_ms").reset_index()
    frame.insert(1, "timestamp", pd.to_datetime(frame["open_time_ms"], unit="ms"))
    if FUNDING_RATE_COLUMN in candles:
        rates = candles[FUNDING_RATE_COLUMN].to_numpy()
        settled = np.flatnonzero(rates)
        frame[FUNDING_RATE_COLUMN] = funding_rate_column(frame["open_time_ms"].to_numpy(), interval_ms,
                                                         zip(times[settled].tolist(), rates[settled].tolist(),
                                                             strict=True))
    return frame


def _timestamps_to_ms(column: pd.Series, source: str) -> np.ndarray:
    """Epoch-ms integers, or date-time text/values (treated as UTC when naive)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(column, utc=True)
    else:
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().sum() * 2 > len(column):  # mostly numbers: epoch milliseconds
            values = numeric.to_numpy(dtype=np.float64)
            _raise_first(~np.isfinite(values) | (values % 1 != 0), column, source, "is not whole epoch milliseconds")
            return values.astype(np.int64)
        parsed = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
    _raise_first(parsed.isna().to_numpy(), column, source, "is not a date-time")
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _raise_first(bad: np.ndarray, column: pd.Series, source: str, problem: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise CandleDataError(source, f"{column.name} {column.iloc[i]!r} {problem}", _FIRST_DATA_LINE + i)


def _to_float(column: pd.Series, name: str, source: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    _raise_first(np.isnan(values) & column.notna().to_numpy(), column, source, "is not a number")
    return values


def _check_funding(frame: pd.DataFrame, source: str) -> None:
    """Funding is money: a gap, an infinite or an absurd rate is an error even when
    repairing candles (a guessed rate would be a made-up charge)."""
    problem = funding_rate_problem(frame[FUNDING_RATE_COLUMN].to_numpy())
    if problem is not None:
        row, text = problem
        raise CandleDataError(source, text, int(frame.index[row]))


def _row_problems(frame: pd.DataFrame) -> pd.Series:
    """A text per bad row (empty string for a good one), first problem only."""
    values = frame[list(OHLCV_COLUMNS)].to_numpy()
    problems = np.full(len(frame), "", dtype=object)
    checks = [
        (
            (frame["high"].to_numpy() < np.maximum(frame["open"].to_numpy(), frame["close"].to_numpy()))
            | (frame["low"].to_numpy() > np.minimum(frame["open"].to_numpy(), frame["close"].to_numpy())),
            "open/close outside [low, high] (open {open}, high {high}, low {low}, close {close})",
        ),
        (frame["high"].to_numpy() < frame["low"].to_numpy(), "high {high} < low {low}"),
        (frame["volume"].to_numpy() < 0, "negative volume {volume}"),
        ((frame[list(PRICE_COLUMNS)].to_numpy() <= 0).any(axis=1),
         "non-positive price (open {open}, high {high}, low {low}, close {close})"),
        (~np.isfinite(values).all(axis=1),
         "NaN or infinite value (open {open}, high {high}, low {low}, close {close}, volume {volume})"),
    ]
    # Later checks win, so the most basic problem (NaN) is the one reported for a row.
    for mask, template in checks:
        for i in np.flatnonzero(mask):
            row = frame.iloc[i]
            problems[i] = template.format(**{column: row[column] for column in OHLCV_COLUMNS})
    return pd.Series(problems, index=frame.index)


def _check_rows(frame: pd.DataFrame, source: str, repair: RepairPolicy) -> pd.DataFrame:
    problems = _row_problems(frame)
    bad = problems != ""
    if not bad.any():
        return frame
    if repair is RepairPolicy.STRICT:
        line = int(problems.index[bad.to_numpy()][0])
        raise CandleDataError(source, str(problems[line]), line)
    log.warning("%s: repair: dropped %d invalid candle(s), first at line %d (%s)",
                source, int(bad.sum()), int(problems.index[bad.to_numpy()][0]), problems[bad].iloc[0])
    kept = frame[~bad]
    if kept.empty:
        raise CandleDataError(source, "no valid candles left after repair")
    return kept


def _check_order(frame: pd.DataFrame, source: str, repair: RepairPolicy) -> pd.DataFrame:
    times = frame["open_time_ms"].to_numpy()
    diffs = np.diff(times)
    if (diffs > 0).all():
        return frame
    if repair is RepairPolicy.STRICT:
        i = int(np.argmax(diffs <= 0)) + 1
        line = int(frame.index[i])
        kind = "duplicate" if diffs[i - 1] == 0 else "out of order"
        raise CandleDataError(
            source, f"timestamp {_fmt_ms(times[i])} is {kind} (previous line has {_fmt_ms(times[i - 1])})", line
        )
    unsorted = int((diffs < 0).sum())
    ordered = frame.sort_values("open_time_ms", kind="stable")
    deduped = ordered[~ordered["open_time_ms"].duplicated(keep="last")]
    log.warning("%s: repair: sorted %d out-of-order candle(s), dropped %d duplicate timestamp(s)",
                source, unsorted, len(ordered) - len(deduped))
    return deduped


def _check_gaps(frame: pd.DataFrame, source: str, repair: RepairPolicy, grid: CandleGrid | None) -> pd.DataFrame:
    times = frame["open_time_ms"].to_numpy()
    grid = grid or infer_grid(times)
    off_grid = np.flatnonzero(grid.off_grid(times))
    if len(off_grid):
        i = int(off_grid[0])
        raise CandleDataError(
            source, f"timestamp {_fmt_ms(times[i])} is not on the {grid.describe()} candle grid", int(frame.index[i])
        )
    candles_after = np.diff(grid.indices(times))
    gaps = np.flatnonzero(candles_after > 1)
    if len(gaps) == 0:
        return frame
    if repair is RepairPolicy.STRICT:
        i = int(gaps[0]) + 1
        missing = int(candles_after[i - 1]) - 1
        raise CandleDataError(
            source,
            f"gap: {missing} candle(s) missing between {_fmt_ms(times[i - 1])} and {_fmt_ms(times[i])} "
            f"({len(gaps)} gap(s) in total); repairing (RepairPolicy.REPAIR, --repair in shadow backtest and "
            "evaluate) fills them with flat candles",
            int(frame.index[i]),
        )
    full = grid.range_ms(int(times[0]), int(times[-1]))
    filled = frame.set_index("open_time_ms").reindex(full)
    n_filled = int(filled["close"].isna().sum())
    filled["close"] = filled["close"].ffill()
    for col in ("open", "high", "low"):
        filled[col] = filled[col].fillna(filled["close"])
    filled["volume"] = filled["volume"].fillna(0.0)
    if FUNDING_RATE_COLUMN in filled:  # a made-up candle settles no funding
        filled[FUNDING_RATE_COLUMN] = filled[FUNDING_RATE_COLUMN].fillna(0.0)
    log.warning("%s: repair: filled %d missing candle(s) in %d gap(s) with flat candles", source, n_filled, len(gaps))
    return filled.rename_axis("open_time_ms").reset_index()


def _fmt_ms(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms").strftime("%Y-%m-%d %H:%M:%S")


def format_ms(ms: int) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM`` (UTC): how every message and summary names a candle."""
    return pd.Timestamp(int(ms), unit="ms").strftime("%Y-%m-%d %H:%M")


def candles_to_seed_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write candles in the seed's ``data/test_data.csv`` layout (date-time ``timestamp``),
    with the ``funding_rate`` column when the frame has one."""
    out = frame[["timestamp", *OHLCV_COLUMNS, *([FUNDING_RATE_COLUMN] if FUNDING_RATE_COLUMN in frame else [])]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
