"""The sample ledger of real candles (BTCUSDT and ETHUSDT decisions, registry, retrains, a
rollback, a risk event, sessions), read by every query test."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from state.database import connect_reader
from state.sample_ledger import SampleSpan
from tests.ledgers import sample_frames, sample_ledger  # noqa: F401  (fixtures)


@pytest.fixture
def conn(sample_ledger: tuple[Path, SampleSpan]) -> Iterator[sqlite3.Connection]:  # noqa: F811
    with closing(connect_reader(sample_ledger[0])) as connection:
        yield connection
