"""The PPO policy as a :class:`strategies.base.Strategy`, with a fast inference path.

SB3's ``model.predict`` costs about 100 µs per observation on this machine, almost all
of it torch dispatch and tensor conversion around three tiny matrix products. Here the
model is loaded once and the actor network (``mlp_extractor.policy_net`` then
``action_net``; the deterministic action is the argmax of the logits) is exported to
numpy float64 matrices: one decision is a few µs.

**Same action as predict, on every observation.** The numpy forward computes the same
function in higher precision than torch's float32, so the two can only disagree when the
two best logits are within torch's rounding error of each other. That error is bounded
by the size of the terms summed into a logit, ``scale = |h| @ |W| + |b|`` (``h`` the last
hidden layer; with tanh ``|h| <= 1``, so the head's largest absolute row sum bounds it):
measured at most 2.5e-7 x (1 + scale) on real data, for heads of very different sizes.
When the top-two gap is below ``TIE_MARGIN x (1 + scale)``, 400 times that, the decision
is handed to SB3's own ``predict``, so a near-tie is settled by the same code and
arithmetic as in training. Activations other than those in :data:`_ACTIVATIONS` make
every decision go through ``predict`` (slow but exact).

**The model's own action mode and cadence.** The policy's action ``i`` is the order
``mode.orders[i]`` of the action mode in its metadata (a target position for ``target`` and
``long_flat`` models; the money step maps it to a trade action), and a model trained to
decide every ``stride`` candles answers HOLD, without a forward pass, on the candles in
between (:class:`env.decisions.DecisionCadence`): the backtest, the daemon and ``shadow
verify`` all serve a model exactly as it was trained (:class:`strategies.policy.ServedPolicy`,
shared with the export below).

A model whose network was exported beside it (``.policy.npz``, :mod:`strategies.policy`)
is served from that export instead, without torch: :func:`load_ppo_strategy` picks the form.

.. warning:: An SB3 zip is a pickle: only load models Shadow's trainer wrote (the model
   metadata beside the zip is required and checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from env.types import Observation
from strategies.base import ActionArray, ObservationBatch, Strategy
from strategies.model_metadata import ModelMetadata, ModelMismatchError, load_metadata, load_servable_metadata
from strategies.policy import (
    NumpyActor,
    PolicyStrategy,
    ServedPolicy,
    UnsupportedPolicyError,
    policy_path,
    save_policy,
)

__all__ = ["TIE_MARGIN", "NumpyActor", "PPOStrategy", "UnsupportedPolicyError", "export_policy", "load_ppo",
           "load_ppo_strategy", "write_policy"]

if TYPE_CHECKING:
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy

TIE_MARGIN = 1e-4
"""A top-two logit gap below ``TIE_MARGIN x (1 + scale)`` (see the module docstring) sends
the decision to SB3 ``predict``."""

def load_ppo(path: str | Path, *, lookback_window: int | None = None, device: str = "cpu", **kwargs: Any) -> PPO:
    """Load an SB3 PPO zip saved by Shadow's trainer, after checking its metadata.

    The metadata is checked before torch unpickles anything, and the loaded policy must
    take the observation the metadata describes and choose among the actions of its
    action mode (four for the seed's ``trade`` mode).

    Args:
        path: the model zip.
        lookback_window: the lookback the caller's env uses; refused if the model differs.
        device: torch device.
        kwargs: passed to :meth:`PPO.load` (``env=``, ``tensorboard_log=`` ...).

    Raises:
        ModelMismatchError: no such file, missing or bad metadata, a feature spec,
            lookback, observation or action space this code does not serve, or a zip SB3
            cannot load.
    """
    from gymnasium import spaces
    from stable_baselines3 import PPO

    path = Path(path)
    metadata = load_servable_metadata(path, lookback_window)
    try:
        model = PPO.load(path, device=device, **kwargs)
    except Exception as exc:  # SB3 raises anything from zipfile, pickle or torch here
        raise ModelMismatchError(f"{path}: not a loadable SB3 PPO model ({type(exc).__name__}: {exc})") from None
    if model.observation_space.shape != (metadata.observation_size,):
        raise ModelMismatchError(
            f"{path}: the policy takes observations of shape {model.observation_space.shape}, "
            f"its metadata says ({metadata.observation_size},)"
        )
    n_actions = metadata.mode.n_actions
    if not isinstance(model.action_space, spaces.Discrete) or model.action_space.n != n_actions:
        raise ModelMismatchError(f"{path}: action space {model.action_space} is not Discrete({n_actions}) of its "
                                 f"{metadata.action_mode} action mode")
    return model


class PPOStrategy(ServedPolicy):
    """A trained SB3 PPO model behind the :class:`~strategies.base.Strategy` protocol.

    Build it with :meth:`load`. Decisions use only the observation (which already holds
    the market window and the account); the market context only says whether the candle
    is one the model decides on (its decision stride).

    Attributes:
        delegated: decisions handed to SB3 ``predict`` (near-ties, see the module doc).
    """

    def __init__(self, model: PPO, path: Path, metadata: ModelMetadata) -> None:
        super().__init__(path, metadata)
        self.model = model
        self.delegated = 0
        try:
            self._actor: NumpyActor | None = NumpyActor.from_sb3(model.policy)
        except UnsupportedPolicyError:
            self._actor = None

    @classmethod
    def load(cls, path: str | Path, lookback_window: int | None = None) -> PPOStrategy:
        """Load ``path`` (an SB3 zip with its ``.meta.json``) once; see :func:`load_ppo`."""
        model = load_ppo(path, lookback_window=lookback_window)
        return cls(model, Path(path), load_metadata(path))

    @property
    def fast(self) -> bool:
        """True when decisions run on the numpy export (False: every one via ``predict``)."""
        return self._actor is not None

    def predict(self, obs: Observation) -> int:
        """SB3's own deterministic decision, the policy's action index (the reference the
        fast path must equal)."""
        action, _ = self.model.predict(obs, deterministic=True)
        return int(action)

    def policy_action(self, obs: Observation) -> int:
        if self._actor is None:
            return self.predict(obs)
        values, scale = self._actor.logits_and_scale(obs)
        logits = values.tolist()
        best = max(range(len(logits)), key=logits.__getitem__)
        top = logits[best]
        logits[best] = -np.inf
        if top - max(logits) < TIE_MARGIN * (1.0 + float(scale)):
            self.delegated += 1
            return self.predict(obs)
        return best

    def policy_actions(self, obs: ObservationBatch) -> ActionArray:
        if self._actor is None:
            return np.array([self.predict(row) for row in obs], dtype=np.int64)
        logits, scale = self._actor.logits_and_scale(obs)
        actions: ActionArray = np.argmax(logits, axis=1).astype(np.int64)
        ranked = np.sort(logits, axis=1)
        for i in np.flatnonzero(ranked[:, -1] - ranked[:, -2] < TIE_MARGIN * (1.0 + np.asarray(scale))):
            self.delegated += 1
            actions[i] = self.predict(obs[i])
        return actions


def write_policy(policy: ActorCriticPolicy, model_zip: Path) -> Path | None:
    """Export ``policy`` (the network just saved as ``model_zip``) beside it, for serving
    without torch (:mod:`strategies.policy`); ``None`` for a network the export does not
    implement (it is then served through SB3)."""
    try:
        actor = NumpyActor.from_sb3(policy)
    except UnsupportedPolicyError:
        return None
    return save_policy(actor, model_zip)


def export_policy(model_zip: Path) -> Path | None:
    """The export beside ``model_zip``, written now from the model if it is not there yet
    (imports torch); ``None`` for a network the export does not implement.

    Raises:
        ModelMismatchError: the zip is not a model this code can load.
    """
    target = policy_path(model_zip)
    if target.is_file():
        return target
    return write_policy(load_ppo(model_zip).policy, model_zip)


def load_ppo_strategy(path: str | Path, lookback_window: int | None = None) -> Strategy:
    """A trained PPO model as it is served everywhere: from its exported weights when they
    sit beside the zip (numpy only, :class:`strategies.policy.PolicyStrategy`), otherwise
    through SB3 (:class:`PPOStrategy`, which imports torch).

    Raises:
        ModelMismatchError: see :meth:`PolicyStrategy.load` and :func:`load_ppo`.
    """
    if policy_path(path).is_file():
        return PolicyStrategy.load(path, lookback_window)
    return PPOStrategy.load(path, lookback_window)
