"""The candidate trainer (``trainer.training.fit`` for a retrain): several markets for a shared model,
warm start (continual learning) from a saved model, and the training time limit, on real
candles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from config.settings import Settings, TrainSettings
from env.crypto_trading_env import CryptoTradingEnv
from strategies.model_metadata import load_metadata
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX
from trainer.retrain.candidate import train_candidate

TINY = TrainSettings(n_envs=2, n_steps=64, batch_size=64, episode_length=64, n_epochs=1, total_timesteps=128,
                     progress=False)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def test_a_shared_candidate_trains_on_every_market(tmp_path: Path, btc_candles: pd.DataFrame,
                                                   eth_candles: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    btc, eth = btc_candles.iloc[:600], eth_candles.iloc[:500]
    envs_on: list[int] = []
    real = CryptoTradingEnv.from_settings.__func__

    def recording(cls, df, settings, **kwargs):
        envs_on.append(len(df))
        return real(cls, df, settings, **kwargs)

    monkeypatch.setattr(CryptoTradingEnv, "from_settings", classmethod(recording))
    path = train_candidate([btc, eth], Settings(train=TINY), tmp_path, seed=3, symbol="BTCUSDT,ETHUSDT",
                           timeframe="1m", warm_start=None, time_limit_s=None)
    meta = load_metadata(path)
    assert (meta.symbol, meta.timeframe, meta.seed, meta.num_timesteps) == ("BTCUSDT,ETHUSDT", "1m", 3, 128)
    assert meta.data_range == {"start_ms": int(btc["open_time_ms"].iloc[PREFIX]),
                               "end_ms": int(eth["open_time_ms"].iloc[-1]), "n_candles": 1100 - 2 * PREFIX}
    assert meta.hyperparameters["n_steps"] == 64 and meta.extra["warm_start"] is None
    assert envs_on == [600, 500]  # env i trades market i
    assert PPOStrategy.load(path, 20).fast


def test_the_time_limit_stops_training_and_still_saves_the_model(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    long_run = Settings(train=TINY.model_copy(update={"total_timesteps": 1_000_000}))
    path = train_candidate([btc_candles.iloc[:600]], long_run, tmp_path, seed=0, symbol="BTCUSDT", timeframe="1m",
                           warm_start=None, time_limit_s=0.5)
    assert 0 < load_metadata(path).num_timesteps < 1_000_000


def test_warm_start_continues_the_model_with_its_own_hyperparameters(tmp_path: Path, btc_candles: pd.DataFrame,
                                                                      ppo_model: Path) -> None:
    parent = load_metadata(ppo_model)
    path = train_candidate([btc_candles.iloc[4000:4600]], Settings(train=TINY), tmp_path, seed=1, symbol="BTCUSDT",
                           timeframe="1m", warm_start=ppo_model, time_limit_s=None)
    meta = load_metadata(path)
    assert meta.num_timesteps >= parent.num_timesteps + 128  # the step count continues
    assert meta.hyperparameters["n_steps"] == parent.hyperparameters["n_steps"]  # the parent's, not [train]'s
    assert meta.extra["warm_start"] == str(ppo_model)
    # its own action mode and stride too: [env] (the default profile) says target, the parent trades
    assert Settings().env.action_mode == "target" and (meta.action_mode, meta.decision_stride) == ("trade", 1)
    assert meta.env["action_mode"] == "trade"
