"""Candle loading: both layouts, and a clear error (file, line, problem) for each kind of bad data."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from env.candles import (
    CandleDataError,
    RepairPolicy,
    candles_to_seed_csv,
    load_candles,
    normalize_candles,
    resample_candles,
)
from tests.conftest import BTC_SAMPLE

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "1677628800000,100,101,99,100.5,2",
    "1677628860000,100.5,102,100,101,3",
    "1677628920000,101,101.5,100.2,100.8,1",
    "1677628980000,100.8,101,100,100.1,4",
]


def write_csv(tmp_path: Path, lines: list[str], name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def test_loads_bundled_gzip_sample() -> None:
    df = load_candles(BTC_SAMPLE)
    assert len(df) == 30_240
    assert list(df.columns) == ["open_time_ms", "timestamp", "open", "high", "low", "close", "volume"]
    assert df["open_time_ms"].iloc[0] == 1677628800000
    assert df["timestamp"].iloc[0] == pd.Timestamp("2023-03-01 00:00:00")
    assert (np.diff(df["open_time_ms"]) == 60_000).all()


def test_seed_layout_round_trips(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    path = tmp_path / "test_data.csv"
    candles_to_seed_csv(btc_candles.iloc[:500], path)
    assert path.read_text().splitlines()[1].startswith("2023-03-01 00:00:00,")
    # The seed's own reading code: pd.read_csv then to_datetime on the column.
    seed_df = pd.read_csv(path)
    seed_df["timestamp"] = pd.to_datetime(seed_df["timestamp"])
    again = normalize_candles(seed_df)
    pd.testing.assert_frame_equal(again, btc_candles.iloc[:500].reset_index(drop=True))


def test_gzip_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "\n".join(GOOD) + "\n")
    assert len(load_candles(path)) == 4


@pytest.mark.parametrize(
    ("line_no", "bad_line", "message"),
    [
        (3, "1677628860000,100.5,102,NaN,101,3", "NaN or infinite"),
        (3, "1677628860000,100.5,102,100,inf,3", "NaN or infinite"),
        (4, "1677628920000,101,101.5,100.2,-100.8,1", "non-positive price"),
        (4, "1677628920000,0,101.5,0,100.8,1", "non-positive price"),
        (3, "1677628860000,100.5,99,100,100,3", "high 99.0 < low 100.0"),
        (3, "1677628860000,100.5,102,100,103,3", "outside [low, high]"),
        (3, "1677628860000,100.5,102,100,101,-3", "negative volume"),
        (3, "1677628860000,100.5,102,abc,101,3", "low 'abc' is not a number"),
        (3, "not-a-date,100.5,102,100,101,3", "timestamp 'not-a-date' is not whole epoch milliseconds"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path: Path, line_no: int, bad_line: str, message: str) -> None:
    lines = list(GOOD)
    lines[line_no - 2] = bad_line
    path = write_csv(tmp_path, lines)
    with pytest.raises(CandleDataError) as err:
        load_candles(path)
    assert err.value.line == line_no
    assert message in str(err.value)
    assert str(path) in str(err.value) and f"line {line_no}" in str(err.value)


def test_bad_date_time_text(tmp_path: Path) -> None:
    path = tmp_path / "test_data.csv"
    path.write_text(HEADER + "2023-03-01 00:00:00,1,2,1,1,1\n2023-13-01 00:01:00,1,2,1,1,1\n")
    with pytest.raises(CandleDataError, match=r"line 3: timestamp '2023-13-01 00:01:00' is not a date-time"):
        load_candles(path)


def test_unsorted_timestamps(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [GOOD[0], GOOD[2], GOOD[1], GOOD[3]])
    with pytest.raises(CandleDataError, match=r"line 4: timestamp 2023-03-01 00:01:00 is out of order"):
        load_candles(path)


def test_duplicate_timestamps(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [GOOD[0], GOOD[1], GOOD[1], GOOD[2]])
    with pytest.raises(CandleDataError, match=r"line 4: timestamp 2023-03-01 00:01:00 is duplicate"):
        load_candles(path)


def test_gap_is_an_error_with_its_size(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [GOOD[0], GOOD[1], GOOD[3]])
    with pytest.raises(CandleDataError, match=r"line 4: gap: 1 candle\(s\) missing between 2023-03-01 00:01:00"):
        load_candles(path)


def test_off_grid_timestamp(tmp_path: Path) -> None:
    lines = [*GOOD, "1677629040000,100.1,100.4,99.9,100.2,2", "1677629100000,100.2,100.4,99.9,100.3,2"]
    lines[2] = "1677628925000,101,101.5,100.2,100.8,1"
    with pytest.raises(CandleDataError, match=r"line 4: timestamp 2023-03-01 00:02:05 is not on the 60 s candle grid"):
        load_candles(write_csv(tmp_path, lines))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("timestamp,open,high,low,close\n1,2,3,1,2\n", "missing column(s) volume"),
        (HEADER, "no candles"),
        ("", "not a readable CSV"),
    ],
)
def test_unusable_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(CandleDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_candles(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CandleDataError, match=r"nope\.csv: file not found"):
        load_candles(tmp_path / "nope.csv")


def test_repair_policy_fixes_and_logs_everything(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [
        GOOD[0],
        GOOD[2],  # out of order
        GOOD[1],
        GOOD[1].replace(",3", ",9"),  # duplicate of line 3, keep the last
        "1677629040000,100.1,100.4,99.9,NaN,2",  # invalid, dropped
        "1677629100000,100.1,100.4,99.9,100.2,2",  # after a 2-candle gap
    ]
    with caplog.at_level(logging.WARNING):
        df = load_candles(write_csv(tmp_path, lines), repair=RepairPolicy.REPAIR)
    assert (np.diff(df["open_time_ms"]) == 60_000).all()
    assert len(df) == 6  # 00:00 .. 00:05
    assert df.loc[1, "volume"] == 9  # the last duplicate was kept
    filled = df.iloc[3:5]
    assert (filled[["open", "high", "low", "close"]].to_numpy() == 100.8).all()  # previous close
    assert (filled["volume"] == 0).all()
    text = caplog.text
    assert "dropped 1 invalid candle" in text
    assert "sorted 1 out-of-order" in text and "dropped 1 duplicate" in text
    assert "filled 2 missing candle(s) in 1 gap(s)" in text


def test_resample_builds_the_candles_an_exchange_would(btc_candles: pd.DataFrame) -> None:
    hourly = resample_candles(btc_candles, 3_600_000)
    assert len(hourly) == 504  # 21 whole days of real 1m candles
    assert list(hourly.columns) == list(btc_candles.columns)
    assert hourly.dtypes.equals(btc_candles.dtypes)
    assert (np.diff(hourly["open_time_ms"]) == 3_600_000).all() and (hourly["open_time_ms"] % 3_600_000 == 0).all()
    hour = btc_candles.iloc[60 * 7:60 * 8]  # 07:00 .. 07:59 on 2023-03-01
    row = hourly.iloc[7]
    assert row["timestamp"] == pd.Timestamp("2023-03-01 07:00")
    assert (row["open"], row["high"], row["low"], row["close"]) == (
        hour["open"].iloc[0], hour["high"].max(), hour["low"].min(), hour["close"].iloc[-1])
    assert row["volume"] == pytest.approx(hour["volume"].sum(), rel=1e-12)
    pd.testing.assert_frame_equal(normalize_candles(hourly.drop(columns="timestamp").rename(
        columns={"open_time_ms": "timestamp"})), hourly)  # sorted, gap-free, valid
    # Resampling in two steps gives the same candles as in one.
    via_5m = resample_candles(resample_candles(btc_candles, 300_000), 3_600_000)
    pd.testing.assert_frame_equal(via_5m, hourly, check_exact=False, rtol=1e-12)


def test_resample_drops_bins_the_data_does_not_fill(btc_candles: pd.DataFrame) -> None:
    part = btc_candles.iloc[10:60 * 5 + 20].reset_index(drop=True)  # 00:10 .. 05:19
    hourly = resample_candles(part, 3_600_000)
    assert list(hourly["timestamp"].dt.hour) == [1, 2, 3, 4]
    assert resample_candles(part, 60_000).equals(part)


def test_resample_refuses_an_interval_that_is_not_a_multiple(btc_candles: pd.DataFrame) -> None:
    five_minutes = resample_candles(btc_candles, 300_000)
    with pytest.raises(CandleDataError,
                       match="cannot resample 300 s candles into 420 s ones: the new interval must be a whole "
                             "multiple"):
        resample_candles(five_minutes, 420_000)
    with pytest.raises(CandleDataError, match="cannot resample 300 s candles into 60 s ones"):
        resample_candles(five_minutes, 60_000)
