"""fit(): the one training routine (train_ppo, walk-forward folds, tuning trials and the
retrain job share it), on real candles: determinism, warm start, time limit, stopping
callbacks, several markets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from config.settings import EnvSettings, Settings, TrainSettings
from strategies.model_metadata import ModelMismatchError, load_metadata, metadata_path
from tests.conftest import PREFIX
from trainer.training.fit import FitError, fit, make_vec_env
from trainer.training.model_io import load_ppo

TINY = {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "episode_length": 40,
        "progress": False}


def settings(**train: object) -> Settings:
    return Settings.model_construct(train=TrainSettings(**(TINY | train)), env=EnvSettings())


@pytest.fixture(scope="module")
def btc(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:700].reset_index(drop=True)


def policy_weights(path: Path) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in load_ppo(path).policy.parameters()]


def test_same_seed_same_model_and_metadata(tmp_path: Path, btc: pd.DataFrame) -> None:
    a = fit(btc, None, settings(), tmp_path / "a", seed=4, symbol="BTCUSDT", timeframe="1m", extra={"k": 1})
    b = fit(btc, None, settings(), tmp_path / "b", seed=4, symbol="BTCUSDT", timeframe="1m")
    c = fit(btc, None, settings(), tmp_path / "c", seed=5, symbol="BTCUSDT", timeframe="1m")
    assert a.model_path == tmp_path / "a" / "model.zip" and metadata_path(a.model_path).is_file()
    weights_a, weights_b, weights_c = (policy_weights(r.model_path) for r in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(weights_a, weights_b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(weights_a, weights_c, strict=True))
    meta = load_metadata(a.model_path)
    assert meta == a.metadata and meta.extra == {"k": 1} and a.stop_reason is None and a.num_timesteps == 64
    # The traded candles: after the warm-up rows.
    assert meta.data_range == {"start_ms": int(btc["open_time_ms"].iloc[PREFIX]),
                               "end_ms": int(btc["open_time_ms"].iloc[-1]), "n_candles": len(btc) - PREFIX}
    expected = {"n_steps": 32, "batch_size": 32, "ent_coef": 0.0, "net_arch": [64, 64]}
    assert expected.items() <= meta.hyperparameters.items()
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "a" / "best").exists()


def test_ent_coef_and_net_arch_reach_the_policy(tmp_path: Path, btc: pd.DataFrame) -> None:
    result = fit(btc, None, settings(ent_coef=0.02, net_arch=(16, 8, 4)), tmp_path, seed=0, symbol="BTCUSDT",
                 timeframe="1m")
    model = load_ppo(result.model_path)
    layers = [m.out_features for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    assert layers == [16, 8, 4] and model.ent_coef == 0.02
    assert result.metadata.hyperparameters["net_arch"] == [16, 8, 4]


def test_warm_start_continues_the_model_with_its_own_hyperparameters(tmp_path: Path, btc: pd.DataFrame) -> None:
    first = fit(btc, None, settings(learning_rate=1e-3), tmp_path / "first", seed=1, symbol="BTCUSDT", timeframe="1m")
    second = fit(btc, None, settings(learning_rate=5e-4), tmp_path / "second", seed=1, symbol="BTCUSDT",
                 timeframe="1m", warm_start=first.model_path)
    assert second.num_timesteps == 128 and second.metadata.num_timesteps == 128
    assert second.metadata.hyperparameters["learning_rate"] == 1e-3  # the incumbent's
    assert not all(np.array_equal(x, y) for x, y in
                   zip(policy_weights(first.model_path), policy_weights(second.model_path), strict=True))


def test_warm_start_refuses_a_model_for_another_lookback(tmp_path: Path, btc: pd.DataFrame) -> None:
    first = fit(btc, None, settings(), tmp_path / "first", seed=1, symbol="BTCUSDT", timeframe="1m")
    other = Settings.model_construct(train=TrainSettings(**TINY), env=EnvSettings(lookback_window=10))
    with pytest.raises(ModelMismatchError, match="trained with lookback_window=20, configured 10"):
        fit(btc, None, other, tmp_path / "second", seed=1, symbol="BTCUSDT", timeframe="1m",
            warm_start=first.model_path)
    assert not (tmp_path / "second" / "model.zip").exists()


def test_time_limit_stops_cleanly_and_still_saves(tmp_path: Path, btc: pd.DataFrame) -> None:
    result = fit(btc, None, settings(total_timesteps=10_000_000), tmp_path, seed=0, symbol="BTCUSDT",
                 timeframe="1m", time_limit_s=0.5)
    assert result.stop_reason == "time_limit"
    assert 0 < result.num_timesteps < 10_000_000 and result.elapsed_s < 5.0
    assert load_metadata(result.model_path).num_timesteps == result.num_timesteps
    assert load_ppo(result.model_path).num_timesteps == result.num_timesteps


class StopAfter(BaseCallback):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps


def test_a_callback_can_stop_training_and_the_model_is_saved(tmp_path: Path, btc: pd.DataFrame) -> None:
    result = fit(btc, None, settings(total_timesteps=1000), tmp_path, seed=0, symbol="BTCUSDT", timeframe="1m",
                 callback=StopAfter(40))
    assert result.stop_reason == "callback" and result.num_timesteps == 40
    assert result.model_path.is_file()


def test_several_markets_share_one_model(tmp_path: Path, btc: pd.DataFrame, eth_candles: pd.DataFrame) -> None:
    eth = eth_candles.iloc[:700].reset_index(drop=True)
    result = fit([btc, eth], [btc.iloc[-300:], eth.iloc[-300:]], settings(eval_freq=64), tmp_path, seed=0,
                 symbol="BTCUSDT,ETHUSDT", timeframe="1m", log_dir=tmp_path / "logs")
    meta = result.metadata
    assert meta.data_range["start_ms"] == btc["open_time_ms"].iloc[PREFIX]
    assert meta.data_range["end_ms"] == eth["open_time_ms"].iloc[-1]
    assert meta.data_range["n_candles"] == 2 * (700 - PREFIX)
    assert (tmp_path / "logs/env_0/monitor.csv").is_file() and (tmp_path / "logs/env_1/monitor.csv").is_file()
    evaluations = np.load(tmp_path / "logs" / "eval" / "evaluations.npz")
    assert evaluations["results"].shape == (1, 2)  # one evaluation, one episode per market
    assert result.best_model_path == tmp_path / "best" / "best_model.zip"
    assert metadata_path(result.best_model_path).is_file()


def test_training_envs_take_the_markets_in_turn(btc: pd.DataFrame, eth_candles: pd.DataFrame) -> None:
    eth = eth_candles.iloc[:700].reset_index(drop=True)
    vec = make_vec_env([btc, eth], EnvSettings(), TrainSettings(n_envs=3), None, append_logs=False)
    closes = [env.unwrapped.candles["close"].to_numpy() for env in vec.envs]
    assert np.array_equal(closes[0], btc["close"]) and np.array_equal(closes[1], eth["close"])
    assert np.array_equal(closes[2], btc["close"])
    vec.close()


def test_cuda_without_a_gpu_is_a_user_error(tmp_path: Path, btc: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(FitError, match="torch sees no CUDA device"):
        fit(btc, None, settings(device="cuda"), tmp_path, seed=0, symbol="BTCUSDT", timeframe="1m")
