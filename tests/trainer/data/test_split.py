"""The chronological split: disjoint traded ranges in time order, warm-up prefixes, and an
env on each slice that trades exactly that slice's candles. Real candles from data/sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from env.candles import CandleDataError, candles_to_seed_csv, load_candles
from env.crypto_trading_env import CryptoTradingEnv
from env.features import warmup_prefix
from env.types import Action
from trainer.data.split import MIN_SLICE_STEPS, chronological_split, min_candles

LOOKBACK = 20
PREFIX = warmup_prefix(LOOKBACK)


@pytest.fixture(scope="module")
def candles(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:5000].reset_index(drop=True)


def traded_times(env: CryptoTradingEnv) -> list[int]:
    """Open times of every candle the env acts or marks at, over one full episode."""
    env.reset()
    times, done = [env.candles["open_time_ms"].iloc[env.current_index]], False
    while not done:
        _, _, terminated, truncated, _ = env.step(Action.HOLD)
        times.append(int(env.candles["open_time_ms"].iloc[env.current_index]))
        done = terminated or truncated
    return times


def test_slices_are_chronological_disjoint_and_cover_every_tradable_candle(candles) -> None:
    split = chronological_split(candles, prefix=PREFIX, validation_fraction=0.15, test_fraction=0.15)
    traded = [s.traded["open_time_ms"].to_numpy() for s in (split.train, split.validation, split.test)]
    assert traded[0][-1] < traded[1][0] and traded[1][-1] < traded[2][0]
    assert np.array_equal(np.concatenate(traded), candles["open_time_ms"].to_numpy()[PREFIX:])
    tradable = len(candles) - PREFIX
    share = round(0.15 * tradable)
    assert [len(t) for t in traded] == [tradable - 2 * share, share, share]
    for part in (split.train, split.validation, split.test):
        start = int(np.searchsorted(candles["open_time_ms"], part.traded["open_time_ms"].iloc[0]))
        assert part.frame.equals(candles.iloc[start - PREFIX:start + len(part.traded)].reset_index(drop=True))


@pytest.mark.parametrize("name", ["train", "validation", "test"])
def test_an_env_on_a_slice_trades_exactly_that_slice(candles, name: str) -> None:
    part = getattr(chronological_split(candles, prefix=PREFIX, validation_fraction=0.15, test_fraction=0.15), name)
    env = CryptoTradingEnv(part.frame, lookback_window=LOOKBACK)
    assert traded_times(env) == part.traded["open_time_ms"].tolist()


def test_test_slice_round_trips_through_the_seed_csv(candles, tmp_path: Path) -> None:
    split = chronological_split(candles, prefix=PREFIX, validation_fraction=0.2, test_fraction=0.1)
    candles_to_seed_csv(split.test.frame, tmp_path / "test_data.csv")
    env = CryptoTradingEnv(load_candles(tmp_path / "test_data.csv"), lookback_window=LOOKBACK)
    assert traded_times(env) == split.test.traded["open_time_ms"].tolist()


def test_too_few_candles_name_the_minimum(candles) -> None:
    need = min_candles(PREFIX, 0.15, 0.15)
    chronological_split(candles.iloc[:need], prefix=PREFIX, validation_fraction=0.15, test_fraction=0.15)
    message = rf"x.csv: {need - 1} candles is too short: need at least {need} \({PREFIX} "
    with pytest.raises(CandleDataError, match=message):
        chronological_split(candles.iloc[:need - 1], prefix=PREFIX, validation_fraction=0.15, test_fraction=0.15,
                            source="x.csv")
    assert need - PREFIX >= 3 * (MIN_SLICE_STEPS + 1)
