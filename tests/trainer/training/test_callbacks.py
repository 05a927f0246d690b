"""The trainer's SB3 callbacks, each on its own: checkpoint names and metadata, the best
model's metadata, a resumed evaluation log, the TensorBoard records, Ctrl-C and the time
limit. A small real PPO on real candles drives them."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.logger import HParam, KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from config.settings import EnvSettings
from env.crypto_trading_env import CryptoTradingEnv
from strategies.model_metadata import ModelMetadata, load_metadata
from trainer.training.callbacks import (
    CheckpointWithMetadata,
    ContinuingEvalCallback,
    HParamsToTensorBoard,
    MetadataOnNewBest,
    StopAtDeadline,
    StopOnInterrupt,
    TradeMetrics,
)


class Capture(KVWriter):
    """A logger output that keeps every dump in memory."""

    def __init__(self) -> None:
        self.dumps: list[tuple[dict[str, Any], dict[str, tuple[str, ...]]]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        self.dumps.append((dict(key_values), dict(key_excluded)))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:400].reset_index(drop=True)


def model_on(frame: pd.DataFrame, n_envs: int = 2) -> PPO:
    def make() -> CryptoTradingEnv:
        return CryptoTradingEnv.from_settings(frame, EnvSettings(), random_start=True, episode_length=32)

    return PPO("MlpPolicy", DummyVecEnv([make] * n_envs), n_steps=16, batch_size=16, n_epochs=1, seed=0,
               device="cpu")


def stamp(num_timesteps: int) -> ModelMetadata:
    return ModelMetadata.for_current_code(lookback_window=20, env=EnvSettings().model_dump(), symbol="BTCUSDT",
                                          timeframe="1m", data_range={}, hyperparameters={}, seed=0,
                                          num_timesteps=num_timesteps)


def test_checkpoints_are_named_by_environment_steps_and_carry_their_metadata(tmp_path: Path,
                                                                            frame: pd.DataFrame) -> None:
    model = model_on(frame, n_envs=2)
    saver = CheckpointWithMetadata(tmp_path, every_steps=32, stamp=stamp)
    model.learn(total_timesteps=96, callback=saver)
    names = sorted(p.name for p in tmp_path.glob("*.zip"))
    assert names == ["ppo_model_32_steps.zip", "ppo_model_64_steps.zip", "ppo_model_96_steps.zip"]
    assert load_metadata(tmp_path / "ppo_model_64_steps.zip").num_timesteps == 64

    resumed = CheckpointWithMetadata(tmp_path / "resumed", every_steps=32, stamp=stamp)
    model.learn(total_timesteps=32, callback=resumed, reset_num_timesteps=False)  # continues at step 96
    assert [p.name for p in (tmp_path / "resumed").glob("*.zip")] == ["ppo_model_128_steps.zip"]


def test_a_new_best_model_gets_its_metadata_and_a_resumed_log_keeps_the_old_best(tmp_path: Path,
                                                                               frame: pd.DataFrame) -> None:
    model = model_on(frame, n_envs=1)
    eval_env = DummyVecEnv([lambda: Monitor(CryptoTradingEnv.from_settings(frame, EnvSettings()))])
    best_zip = tmp_path / "best" / "best_model.zip"
    evaluation = ContinuingEvalCallback(eval_env, n_eval_episodes=1, eval_freq=16, log_path=str(tmp_path / "eval"),
                                        best_model_save_path=str(best_zip.parent), verbose=0,
                                        callback_on_new_best=MetadataOnNewBest(best_zip, stamp))
    model.learn(total_timesteps=32, callback=evaluation)
    assert best_zip.is_file() and load_metadata(best_zip).num_timesteps in (16, 32)
    first_best = evaluation.best_mean_reward

    with np.load(tmp_path / "eval" / "evaluations.npz") as data:
        assert data["timesteps"].tolist() == [16, 32]
    resumed = ContinuingEvalCallback(eval_env, n_eval_episodes=1, eval_freq=10**9, log_path=str(tmp_path / "eval"),
                                     resume=True, verbose=0)
    fresh = ContinuingEvalCallback(eval_env, n_eval_episodes=1, eval_freq=10**9, log_path=str(tmp_path / "eval"),
                                   verbose=0)
    model.learn(total_timesteps=16, callback=[resumed], reset_num_timesteps=False)
    fresh.init_callback(model)
    assert resumed.best_mean_reward == first_best and resumed.evaluations_timesteps == [16, 32]
    assert fresh.best_mean_reward == -np.inf and fresh.evaluations_timesteps == []


def test_hparams_and_trade_metrics_reach_the_logger(frame: pd.DataFrame) -> None:
    model = model_on(frame, n_envs=2)
    capture = Capture()
    model.set_logger(Logger(None, [capture]))
    hparams = HParamsToTensorBoard({"learning_rate": 3e-4, "seed": 7})
    trades = TradeMetrics(initial_balance=200.0)
    for callback in (hparams, trades):
        callback.init_callback(model)
    hparams.on_training_start({}, {})
    info = {"total_pnl": -10.0, "total_trades": 4, "fees_paid": 0.5, "max_drawdown": 0.2}
    trades.update_locals({"dones": np.array([True, False]), "infos": [info, {"total_pnl": 99.0}]})
    assert trades.on_step()
    trades.update_locals({"dones": np.array([False, True]),
                          "infos": [{}, info | {"total_pnl": 30.0, "total_trades": 2}]})
    assert trades.on_step()
    model.logger.dump(step=32)
    (values, excluded), = capture.dumps
    assert isinstance(values["hparams"], HParam) and values["hparams"].hparam_dict == {"learning_rate": 3e-4, "seed": 7}
    assert set(excluded["hparams"]) == {"stdout", "log", "json", "csv"}  # TensorBoard only
    assert values["trade/total_pnl_pct"] == pytest.approx((-5.0 + 15.0) / 2)  # mean of the finished episodes only
    assert values["trade/total_trades"] == pytest.approx(3.0)
    assert (values["trade/fees_paid"], values["trade/max_drawdown"]) == (pytest.approx(0.5), pytest.approx(0.2))


def test_ctrl_c_stops_at_the_next_step_and_a_second_one_interrupts(frame: pd.DataFrame) -> None:
    previous = signal.getsignal(signal.SIGINT)
    stopper = StopOnInterrupt()
    stopper.init_callback(model_on(frame))
    stopper.on_training_start({}, {})
    try:
        assert stopper.on_step()
        os.kill(os.getpid(), signal.SIGINT)
        assert stopper.interrupted and not stopper.on_step()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stopper.on_training_end()
    assert signal.getsignal(signal.SIGINT) is previous


def test_the_deadline_stops_training_once_its_time_is_up(frame: pd.DataFrame) -> None:
    now = [100.0]
    deadline = StopAtDeadline(30.0, clock=lambda: now[0])
    deadline.init_callback(model_on(frame))
    deadline.on_training_start({}, {})
    now[0] = 129.9
    assert deadline.on_step() and not deadline.expired
    now[0] = 130.0
    assert not deadline.on_step() and deadline.expired
