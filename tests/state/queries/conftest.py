"""A sample ledger of real candles (BTCUSDT and ETHUSDT decisions, registry, retrains, a
rollback, a risk event, sessions), read by every query test."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from state.database import connect_reader
from state.sample_ledger import SampleSpan, build_sample_ledger


@pytest.fixture(scope="session")
def sample_frames(btc_candles: pd.DataFrame, eth_candles: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"BTCUSDT": btc_candles.iloc[:3000].reset_index(drop=True),
            "ETHUSDT": eth_candles.iloc[:2000].reset_index(drop=True)}


@pytest.fixture(scope="session")
def sample_ledger(tmp_path_factory: pytest.TempPathFactory,
                  sample_frames: dict[str, pd.DataFrame]) -> tuple[Path, SampleSpan]:
    path = tmp_path_factory.mktemp("sample") / "shadow.sqlite"
    span = asyncio.run(build_sample_ledger(path, sample_frames))
    return path, span


@pytest.fixture
def conn(sample_ledger: tuple[Path, SampleSpan]) -> Iterator[sqlite3.Connection]:
    with closing(connect_reader(sample_ledger[0])) as connection:
        yield connection
