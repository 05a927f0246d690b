"""Ledger fixtures shared by the query, web and browser tests (imported by their conftests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from state.sample_ledger import SampleSpan, build_sample_ledger

HOSTILE_SYMBOL = '<img src=x onerror="window.__pwned=1">BTC'
HOSTILE_STRATEGY = '=HYPERLINK("http://x")<script>window.__pwned=2</script>'
"""Markup that would run, and a cell a spreadsheet would run as a formula."""


@pytest.fixture(scope="session")
def sample_frames(btc_candles: pd.DataFrame, eth_candles: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """3,000 real BTCUSDT and 2,000 real ETHUSDT minutes."""
    return {"BTCUSDT": btc_candles.iloc[:3000].reset_index(drop=True),
            "ETHUSDT": eth_candles.iloc[:2000].reset_index(drop=True)}


@pytest.fixture(scope="session")
def sample_ledger(tmp_path_factory: pytest.TempPathFactory,
                  sample_frames: dict[str, pd.DataFrame]) -> tuple[Path, SampleSpan]:
    """:func:`state.sample_ledger.build_sample_ledger` of :func:`sample_frames`."""
    path = tmp_path_factory.mktemp("sample") / "shadow.sqlite"
    span = asyncio.run(build_sample_ledger(path, sample_frames))
    return path, span


@pytest.fixture(scope="session")
def hostile_ledger(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame) -> Path:
    """A sample ledger whose symbol and strategy names are markup, script and a spreadsheet formula."""
    path = tmp_path_factory.mktemp("hostile") / "shadow.sqlite"
    asyncio.run(build_sample_ledger(path, {"BTCUSDT": btc_candles.iloc[:1500].reset_index(drop=True)},
                                    symbol_names={"BTCUSDT": HOSTILE_SYMBOL}, strategy=HOSTILE_STRATEGY,
                                    trade_probability=0.05))
    return path
