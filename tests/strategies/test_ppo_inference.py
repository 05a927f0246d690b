"""The fast PPO path decides exactly as SB3's ``model.predict(obs, deterministic=True)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from strategies import ppo as ppo_module
from strategies.model_metadata import ModelMismatchError, metadata_path
from strategies.ppo import NumpyActor, PPOStrategy


def _predict_each(strategy: PPOStrategy, observations: np.ndarray) -> np.ndarray:
    return np.array([strategy.predict(o) for o in observations])


@pytest.mark.parametrize("model_fixture", ["ppo_model", "decisive_ppo_model"])
def test_fast_act_equals_predict_on_every_real_observation(model_fixture, request, eth_observations):
    strategy = PPOStrategy.load(request.getfixturevalue(model_fixture), lookback_window=20)
    assert strategy.fast
    expected = _predict_each(strategy, eth_observations)
    fast = np.array([strategy.act(o) for o in eth_observations])
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(strategy.act_batch(eth_observations), expected)


def test_decisive_model_uses_every_action(decisive_ppo_model, eth_observations):
    """Guards the test above against comparing a constant policy with itself."""
    strategy = PPOStrategy.load(decisive_ppo_model)
    counts = np.bincount(strategy.act_batch(eth_observations), minlength=4)
    assert (counts > 100).all(), counts


def test_numpy_forward_alone_matches_without_delegation(decisive_ppo_model, eth_observations, monkeypatch):
    """With the near-tie guard off, the float64 forward still gives predict's action on
    every observation: the guard is a safety net, not what makes the path exact."""
    monkeypatch.setattr(ppo_module, "TIE_MARGIN", 0.0)
    strategy = PPOStrategy.load(decisive_ppo_model)
    np.testing.assert_array_equal(strategy.act_batch(eth_observations), _predict_each(strategy, eth_observations))
    assert strategy.delegated == 0


def test_logits_agree_with_torch_far_inside_the_tie_margin(decisive_ppo_model, eth_observations):
    strategy = PPOStrategy.load(decisive_ppo_model)
    policy = strategy.model.policy
    with torch.no_grad():
        reference = policy.action_net(policy.mlp_extractor.forward_actor(torch.as_tensor(eth_observations))).numpy()
    ours, scale = NumpyActor.from_sb3(policy).logits_and_scale(eth_observations)
    error = np.abs(ours - reference) / (1.0 + np.reshape(scale, (-1, 1)))
    assert error.max() < ppo_module.TIE_MARGIN / 100


def test_near_ties_are_delegated_to_predict(ppo_model, eth_observations, monkeypatch):
    monkeypatch.setattr(ppo_module, "TIE_MARGIN", 1e9)  # every decision counts as a near-tie
    strategy = PPOStrategy.load(ppo_model)
    sample = eth_observations[:200]
    actions = [strategy.act(o) for o in sample]
    assert strategy.delegated == len(sample)
    np.testing.assert_array_equal(actions, _predict_each(strategy, sample))


def _untrained_model(tmp_path: Path, ppo_model: Path, candles, **policy_kwargs) -> Path:
    """A freshly initialised PPO of another architecture, saved with valid metadata."""
    from stable_baselines3 import PPO

    from env.crypto_trading_env import CryptoTradingEnv

    model = PPO("MlpPolicy", CryptoTradingEnv(candles.iloc[:300]), policy_kwargs=policy_kwargs, seed=3, device="cpu")
    path = tmp_path / "model.zip"
    model.save(path)
    shutil.copy(metadata_path(ppo_model), metadata_path(path))
    return path


def test_relu_network_of_other_sizes_is_exported_exactly(tmp_path, ppo_model, eth_candles, eth_observations):
    path = _untrained_model(tmp_path, ppo_model, eth_candles, activation_fn=torch.nn.ReLU, net_arch=[32, 16])
    strategy = PPOStrategy.load(path)
    assert strategy.fast
    np.testing.assert_array_equal(strategy.act_batch(eth_observations[:3000]),
                                  _predict_each(strategy, eth_observations[:3000]))


def test_unsupported_activation_falls_back_to_predict(tmp_path, ppo_model, eth_candles, eth_observations):
    path = _untrained_model(tmp_path, ppo_model, eth_candles, activation_fn=torch.nn.ELU)
    strategy = PPOStrategy.load(path)
    assert not strategy.fast
    sample = eth_observations[:300]
    np.testing.assert_array_equal([strategy.act(o) for o in sample], _predict_each(strategy, sample))


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelMismatchError, match="no such model file"):
        PPOStrategy.load(tmp_path / "nope.zip")


def test_model_without_metadata_is_refused(tmp_path, ppo_model):
    path = tmp_path / "bare.zip"
    shutil.copy(ppo_model, path)
    with pytest.raises(ModelMismatchError, match="no model metadata"):
        PPOStrategy.load(path)


def test_corrupt_zip_is_a_clear_error(tmp_path, ppo_model):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"this is not a zip file")
    shutil.copy(metadata_path(ppo_model), metadata_path(path))
    with pytest.raises(ModelMismatchError, match="not a loadable SB3 PPO model"):
        PPOStrategy.load(path)


def test_lookback_mismatch_is_refused(ppo_model):
    with pytest.raises(ModelMismatchError, match="lookback_window=20, configured 30"):
        PPOStrategy.load(ppo_model, lookback_window=30)


def test_metadata_that_lies_about_the_observation_is_refused(tmp_path, ppo_model):
    path = tmp_path / "model.zip"
    shutil.copy(ppo_model, path)
    meta = json.loads(metadata_path(ppo_model).read_text())
    meta["lookback_window"], meta["observation_size"] = 10, 155
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match=r"takes observations of shape \(305,\), its metadata says \(155,\)"):
        PPOStrategy.load(path)
