"""The policy served without torch: the network exported beside the model zip decides as the
model does (on every real observation), loads no pickle and no torch, and is refused when
it does not belong to the zip beside it; the registry publishes and verifies it like the zip."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from strategies import ppo as ppo_module
from strategies.model_metadata import ModelMismatchError, file_sha256, metadata_path
from strategies.policy import PolicyStrategy, policy_path
from strategies.ppo import PPOStrategy, export_policy, load_ppo_strategy
from tests.conftest import REPO


def copy_model(source: Path, folder: Path, *, with_policy: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.zip"
    shutil.copy(source, target)
    shutil.copy(metadata_path(source), metadata_path(target))
    if with_policy and policy_path(source).is_file():
        shutil.copy(policy_path(source), policy_path(target))
    return target


def test_the_trainer_exports_every_model_it_saves(ppo_model: Path) -> None:
    assert policy_path(ppo_model).is_file()
    assert isinstance(load_ppo_strategy(ppo_model, lookback_window=20), PolicyStrategy)


@pytest.mark.parametrize("model_fixture", ["ppo_model", "decisive_ppo_model"])
def test_the_export_decides_as_the_model_on_every_real_observation(model_fixture: str, request: pytest.FixtureRequest,
                                                                     eth_observations: np.ndarray,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = copy_model(request.getfixturevalue(model_fixture), tmp_path, with_policy=False)
    sb3 = PPOStrategy.load(model)
    assert export_policy(model) == policy_path(model)
    served = PolicyStrategy.load(model, lookback_window=20)
    monkeypatch.setattr(ppo_module, "TIE_MARGIN", 0.0)  # the SB3 path's own float64 forward, no delegation
    np.testing.assert_array_equal(served.act_batch(eth_observations), sb3.act_batch(eth_observations))
    predicted = np.array([sb3.predict(o) for o in eth_observations])
    np.testing.assert_array_equal(served.act_batch(eth_observations), predicted)  # and SB3's own predict
    assert [served.act(o) for o in eth_observations[:500]] == predicted[:500].tolist()


def test_serving_an_export_imports_no_torch(ppo_model: Path, eth_observations: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "obs.npy", eth_observations[:50])
    code = ("import sys, numpy as np\n"
            "from strategies.specs import build_strategy\n"
            f"s = build_strategy('ppo:{ppo_model}', lookback_window=20)\n"
            f"print(type(s).__name__, s.act_batch(np.load(r'{tmp_path / 'obs.npy'}')).tolist(), "
            "'torch' in sys.modules, 'stable_baselines3' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    name, *rest = done.stdout.split(" ", 1)
    assert done.returncode == 0, done.stderr
    assert name == "PolicyStrategy" and rest[0].strip().endswith("] False False")
    assert rest[0].strip().startswith(str(PolicyStrategy.load(ppo_model).act_batch(eth_observations[:50]).tolist()))


def test_an_export_that_does_not_belong_to_its_zip_is_refused(ppo_model: Path, decisive_ppo_model: Path,
                                                              tmp_path: Path) -> None:
    model = copy_model(ppo_model, tmp_path / "a")
    other = copy_model(decisive_ppo_model, tmp_path / "b", with_policy=False)
    export_policy(other)
    shutil.copy(policy_path(other), policy_path(model))  # the other model's network beside this zip
    with pytest.raises(ModelMismatchError, match=r"exported from another file than model.zip \(sha256 "):
        PolicyStrategy.load(model)
    policy_path(model).write_bytes(b"not an npz")
    with pytest.raises(ModelMismatchError, match="not a readable policy export"):
        load_ppo_strategy(model)
    with pytest.raises(ModelMismatchError, match="lookback_window=20, configured 30"):
        PolicyStrategy.load(copy_model(ppo_model, tmp_path / "c"), lookback_window=30)


def test_a_network_the_export_does_not_implement_is_served_through_sb3(ppo_model: Path, eth_candles,
                                                                       tmp_path: Path) -> None:
    import torch
    from stable_baselines3 import PPO

    from env.crypto_trading_env import CryptoTradingEnv

    model = PPO("MlpPolicy", CryptoTradingEnv(eth_candles.iloc[:300]), policy_kwargs={"activation_fn": torch.nn.ELU},
                seed=3, device="cpu")
    path = tmp_path / "elu.zip"
    model.save(path)
    shutil.copy(metadata_path(ppo_model), metadata_path(path))
    assert export_policy(path) is None and not policy_path(path).exists()
    assert isinstance(load_ppo_strategy(path), PPOStrategy)


def test_the_registry_publishes_and_verifies_the_export_like_the_zip(ppo_model: Path, tmp_path: Path) -> None:
    from state.ledger import Ledger
    from state.records import ModelEntry
    from trainer.models.store import ModelIntegrityError, load_registry_strategy, publish_model

    async def publish() -> ModelEntry:
        async with await Ledger.open(tmp_path / "shadow.sqlite") as ledger:
            return await publish_model(ledger, tmp_path / "registry", ppo_model, symbol="BTCUSDT", interval="1m")

    entry = asyncio.run(publish())
    served = Path(entry.path)
    assert entry.policy_sha256 == file_sha256(policy_path(served)) == file_sha256(policy_path(ppo_model))
    assert isinstance(load_registry_strategy(entry, 20), PolicyStrategy)
    policy_path(served).write_bytes(policy_path(served).read_bytes() + b"tampered")
    with pytest.raises(ModelIntegrityError, match=r"v0001\.policy\.npz has sha256 .*refusing to load a file that "
                                                  "changed after it was published"):
        load_registry_strategy(entry, 20)


@pytest.mark.parametrize("setup", ["target-stride15", "long_flat"])
def test_the_export_trades_in_the_models_own_action_mode_and_stride(setup: str, decisive_models, btc_candles,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A target model deciding every 15 candles and a long_flat model: served from the export,
    a backtest takes the very orders, on the very candles, that the SB3 form does."""
    from config.settings import EnvSettings
    from trainer.evaluation.backtest import make_env, run_backtest

    model = copy_model(decisive_models(setup), tmp_path, with_policy=False)
    sb3 = PPOStrategy.load(model, lookback_window=20)
    assert export_policy(model) == policy_path(model)
    served = PolicyStrategy.load(model, lookback_window=20)
    assert (served.orders, served.cadence) == (sb3.orders, sb3.cadence)
    monkeypatch.setattr(ppo_module, "TIE_MARGIN", 0.0)  # the SB3 path's own float64 forward, no delegation
    frame = btc_candles.iloc[:2000].reset_index(drop=True)
    env = EnvSettings(slippage_bps=2.0)
    by_sb3, by_export = run_backtest(sb3, make_env(frame, env)), run_backtest(served, make_env(frame, env))
    assert by_export.actions.tolist() == by_sb3.actions.tolist() and by_export.fills == by_sb3.fills
    assert by_export.decision_equity.tolist() == by_sb3.decision_equity.tolist() and len(by_sb3.trades) > 0
