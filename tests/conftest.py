"""Shared fixtures: the bundled real candles, small synthetic frames, small PPO models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.settings import EnvSettings
from env.features import warmup_prefix

REPO = Path(__file__).resolve().parent.parent
BTC_SAMPLE = REPO / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
ETH_SAMPLE = REPO / "data" / "sample" / "ethusdt_1m_2023-10.csv.gz"
PREFIX = warmup_prefix(EnvSettings().lookback_window)
"""Candles before the first decision with the default lookback: the env's ``first_step``."""


@pytest.fixture(scope="session")
def btc_candles() -> pd.DataFrame:
    """30,240 real BTC/USDT 1-minute candles (Binance.US, March 2023)."""
    from env.candles import load_candles

    return load_candles(BTC_SAMPLE)


@pytest.fixture(scope="session")
def eth_candles() -> pd.DataFrame:
    """10,000 real ETH/USDT 1-minute candles (Binance, October 2023)."""
    from env.candles import load_candles

    return load_candles(ETH_SAMPLE)


HOUR_MS = 3_600_000
FUNDING_BY_HOUR: dict[int, float] = {0: 4e-4, 8: -3e-4, 16: 5e-4}
"""A made-up perpetual's 8 h funding, by UTC hour: a positive, a negative and a positive rate."""


def funding_settlements(candles: pd.DataFrame, by_hour: dict[int, float] | None = None) -> list[tuple[int, float]]:
    """The 8 h funding settlements ``(time_ms, rate)`` from the first candle's open to one
    interval after the last (what an exchange's funding history holds for that span)."""
    rates = FUNDING_BY_HOUR if by_hour is None else by_hour
    first, last = int(candles["open_time_ms"].iloc[0]), int(candles["open_time_ms"].iloc[-1]) + 60_000
    start = -(-first // (8 * HOUR_MS)) * 8 * HOUR_MS
    return [(t, rates[t // HOUR_MS % 24]) for t in range(start, last + 1, 8 * HOUR_MS)]


def with_funding(candles: pd.DataFrame, by_hour: dict[int, float] | None = None) -> pd.DataFrame:
    """Real (spot) candles as a perpetual: the ``funding_rate`` column of :func:`funding_settlements`."""
    from env.candles import infer_interval_ms
    from env.funding import funding_rate_column

    frame = candles.copy()
    times = frame["open_time_ms"].to_numpy()
    frame["funding_rate"] = funding_rate_column(times, infer_interval_ms(times), funding_settlements(frame, by_hour))
    return frame


def make_candles(closes: list[float] | np.ndarray, start_ms: int = 1_700_000_000_000, step_ms: int = 60_000,
                 volume: float = 1.0) -> pd.DataFrame:
    """Flat-bodied candles at the given closes (open = previous close), for hand-made cases."""
    closes = np.asarray(closes, dtype=float)
    opens = np.concatenate([[closes[0]], closes[:-1]])
    return pd.DataFrame({
        "timestamp": start_ms + step_ms * np.arange(len(closes)),
        "open": opens,
        "high": np.maximum(opens, closes),
        "low": np.minimum(opens, closes),
        "close": closes,
        "volume": np.full(len(closes), volume),
    })


@pytest.fixture(scope="session")
def ppo_model(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame) -> Path:
    """A PPO model briefly trained (2,048 steps) on real BTC candles, saved with metadata."""
    import torch

    from config.settings import EnvSettings, TrainSettings
    from trainer.training.fold_trainer import PPOTrainer

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("ppo") / "model.zip"
    trainer = PPOTrainer(2048, TrainSettings(episode_length=256, n_steps=512, n_envs=1), symbol="BTCUSDT")
    return trainer(btc_candles.iloc[:4000].reset_index(drop=True), seed=0, model_path=path,
                   env_settings=EnvSettings(), extra={})


def decisive(model_zip: Path, path: Path) -> Path:
    """``model_zip`` with its action head scaled up and shuffled, saved to ``path``: a policy
    that uses all its actions with confident logits, so equality tests see every action (a
    briefly trained policy mostly repeats one)."""
    import shutil

    import torch
    from stable_baselines3 import PPO

    from strategies.model_metadata import metadata_path

    model = PPO.load(model_zip, device="cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.policy.action_net
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 3.0)
        head.bias.zero_()
    model.save(path)
    shutil.copy(metadata_path(model_zip), metadata_path(path))
    return path


@pytest.fixture(scope="session")
def decisive_ppo_model(tmp_path_factory: pytest.TempPathFactory, ppo_model: Path) -> Path:
    """``ppo_model`` made :func:`decisive`: all four trade actions, confidently."""
    return decisive(ppo_model, tmp_path_factory.mktemp("ppo_decisive") / "model.zip")


DECISION_SETUPS: dict[str, tuple[str, int]] = {
    "trade": ("trade", 1), "target": ("target", 1), "long_flat": ("long_flat", 1), "target-stride15": ("target", 15),
}
"""Models for parity tests, by name: (action mode, decision stride)."""


@pytest.fixture(scope="session")
def decisive_models(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame,
                    decisive_ppo_model: Path) -> Callable[[str], Path]:
    """A :func:`decisive` model of each :data:`DECISION_SETUPS` entry, trained briefly (2,048
    steps) on real BTC candles with that action mode and stride, made on first use."""
    import torch

    from config.settings import EnvSettings, TrainSettings
    from trainer.training.fold_trainer import PPOTrainer

    made: dict[str, Path] = {"trade": decisive_ppo_model}

    def model(setup: str) -> Path:
        if setup not in made:
            torch.set_num_threads(1)
            mode, stride = DECISION_SETUPS[setup]
            folder = tmp_path_factory.mktemp(f"ppo_{setup}")
            trainer = PPOTrainer(2048, TrainSettings(episode_length=256, n_steps=512, n_envs=1), symbol="BTCUSDT")
            trained = trainer(btc_candles.iloc[:4000].reset_index(drop=True), seed=0, model_path=folder / "model.zip",
                              env_settings=EnvSettings(action_mode=mode, decision_stride=stride), extra={})
            made[setup] = decisive(trained, folder / "decisive.zip")
        return made[setup]

    return model


@pytest.fixture(scope="session")
def eth_observations(eth_candles: pd.DataFrame) -> np.ndarray:
    """Every observation of a real test set: one episode over the ETH candles, driven by
    a seeded trader who mostly waits, so position and PnL features take all their values."""
    from config.settings import EnvSettings
    from env.crypto_trading_env import CryptoTradingEnv

    env = CryptoTradingEnv.from_settings(eth_candles, EnvSettings())
    rng = np.random.default_rng(7)
    actions = rng.choice(4, size=len(eth_candles), p=[0.94, 0.02, 0.02, 0.02])
    obs, _ = env.reset()
    seen = [obs]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(int(action))
        seen.append(obs)
        if terminated or truncated:
            break
    return np.array(seen)


@pytest.fixture(scope="session")
def btc_ledger(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame) -> Path:
    """A ledger as the daemon leaves it: seeded decisions (state.replay) over the first 1,700
    real BTCUSDT 1m candles, each stored with its candle."""
    import asyncio

    from state.ledger import Ledger
    from state.replay import replay_decisions

    async def fill(path: Path) -> None:
        async with await Ledger.open(path) as ledger:
            for record, _ in replay_decisions(btc_candles.iloc[:1700], symbol="BTCUSDT", interval="1m", seed=5):
                await ledger.record_decision(record)

    path = tmp_path_factory.mktemp("ledger") / "shadow.sqlite"
    asyncio.run(fill(path))
    return path
