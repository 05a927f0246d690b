"""Candle grids: Bybit's weeks open on Monday 00:00 UTC and its months on the 1st, and every
rule that steps between candles (closing, gaps, repair, validation) follows the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from env.candles import CandleDataError, RepairPolicy, normalize_candles
from env.intervals import GRIDS, grid, infer_grid


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@pytest.mark.parametrize(
    ("name", "now", "newest_closed"),
    [
        ("1m", "2024-03-07 12:34:56", "2024-03-07 12:33"),
        ("1d", "2024-03-07 00:00", "2024-03-06"),
        # 2024-03-07 is a Thursday: the week that closed is the one opened Monday 02-26, not Thursday 02-29.
        ("1w", "2024-03-07 12:00", "2024-02-26"),
        ("1w", "2024-03-04 00:00", "2024-02-26"),  # the very instant a week closes
        ("1w", "2024-03-03 23:59:59.999", "2024-02-19"),
        ("1M", "2024-03-01 00:00", "2024-02-01"),
        ("1M", "2024-03-31 23:59", "2024-02-01"),
        ("1M", "2024-01-15", "2023-12-01"),
    ],
)
def test_the_newest_closed_candle_is_on_bybits_grid(name: str, now: str, newest_closed: str) -> None:
    assert grid(name).newest_closed_open_ms(ms(now)) == ms(newest_closed)


def test_weeks_open_on_mondays_and_months_on_the_first() -> None:
    week, month = grid("1w"), grid("1M")
    assert pd.Timestamp(week.floor(ms("2024-03-07 12:00")), unit="ms").day_name() == "Monday"
    assert week.shift(ms("2024-02-26"), 2) == ms("2024-03-11")
    assert month.shift(ms("2024-01-01"), 1) == ms("2024-02-01")  # 31 days
    assert month.close_ms(ms("2024-02-01")) == ms("2024-03-01")  # 29 days in a leap year
    assert month.shift(ms("2024-03-01"), -14) == ms("2023-01-01")
    assert month.steps(ms("2023-11-01"), ms("2024-02-01")) == 3
    assert list(month.range_ms(ms("2023-12-01"), ms("2024-02-01"))) == [ms("2023-12-01"), ms("2024-01-01"),
                                                                        ms("2024-02-01")]
    assert month.on_grid(ms("2024-02-01")) and not month.on_grid(ms("2024-02-02"))
    assert not week.on_grid(ms("2024-02-29"))  # a Thursday: 7-day multiples from the epoch
    assert month.longest_ms == 31 * 86_400_000 and 12 * month.nominal_ms == 365.2425 * 86_400_000


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (pd.date_range("2023-01-02", periods=6, freq="7D"), "1w"),
        (pd.date_range("2020-01-01", periods=30, freq="MS"), "1M"),
        (pd.date_range("2024-01-01", periods=10, freq="4h"), "4h"),
    ],
    ids=["mondays", "months", "4h"],
)
def test_the_grid_is_read_from_the_data(times: pd.DatetimeIndex, expected: str) -> None:
    assert infer_grid(times.as_unit("ms").asi8).name == expected


def test_a_thursday_weekly_file_keeps_its_own_grid_unless_the_week_is_named() -> None:
    thursdays = pd.date_range("2023-01-05", periods=4, freq="7D").as_unit("ms").asi8
    frame = candles(thursdays)
    assert len(normalize_candles(frame)) == 4  # judged by its spacing, as any file
    with pytest.raises(CandleDataError, match=r"line 2: timestamp 2023-01-05 00:00:00 is not on the 1w "
                                              r"\(Monday 00:00 UTC\) candle grid"):
        normalize_candles(frame, grid=GRIDS["1w"])


def test_a_missing_month_is_a_gap_of_one_and_repair_fills_the_calendar_month() -> None:
    months = pd.date_range("2023-10-01", periods=6, freq="MS").as_unit("ms").asi8
    holed = np.delete(months, 3)  # no 2024-01
    with pytest.raises(CandleDataError, match=r"gap: 1 candle\(s\) missing between 2023-12-01 00:00:00 and "
                                              r"2024-02-01 00:00:00"):
        normalize_candles(candles(holed), grid=GRIDS["1M"])
    repaired = normalize_candles(candles(holed), repair=RepairPolicy.REPAIR, grid=GRIDS["1M"])
    assert repaired["open_time_ms"].tolist() == months.tolist()
    assert len(normalize_candles(candles(months))) == 6  # months of 30 and 31 days, inferred, no gap


def candles(times: np.ndarray) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({"timestamp": times, "open": np.full(n, 10.0), "high": np.full(n, 11.0),
                         "low": np.full(n, 9.0), "close": np.full(n, 10.5), "volume": np.ones(n)})
