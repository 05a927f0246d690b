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
verify`` all serve a model exactly as it was trained.

.. warning:: An SB3 zip is a pickle: only load models Shadow's trainer wrote (the model
   metadata beside the zip is required and checked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from env.intervals import infer_grid
from env.types import Action, Observation, Order
from strategies.base import ActionArray, Decider, IndexArray, MarketContext, ObservationBatch
from strategies.model_metadata import ModelMetadata, ModelMismatchError, check_compatible, load_metadata

if TYPE_CHECKING:
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy

TIE_MARGIN = 1e-4
"""A top-two logit gap below ``TIE_MARGIN x (1 + scale)`` (see the module docstring) sends
the decision to SB3 ``predict``."""

FloatArray = npt.NDArray[np.float64]
Activation = Callable[[FloatArray], FloatArray]
_ACTIVATIONS: dict[str, Activation] = {
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0.0),
    "Identity": lambda x: x,
}
_BOUNDED = {"Tanh"}
"""Activations with outputs in [-1, 1]: the logit scale then has a fixed bound."""


class UnsupportedPolicyError(ValueError):
    """The policy network has a layer the numpy export does not implement."""


class NumpyActor:
    """The actor half of an SB3 ``ActorCriticPolicy`` (MLP, discrete actions) in numpy.

    Args:
        layers: ``(weight (in, out), bias (out,), activation name)`` per hidden layer.
        head: ``(weight (hidden, n_actions), bias)`` of ``action_net``.
    """

    def __init__(self, layers: Sequence[tuple[FloatArray, FloatArray, str]],
                 head: tuple[FloatArray, FloatArray]) -> None:
        self.layers = [(weight, bias, _ACTIVATIONS[name]) for weight, bias, name in layers]
        self.head = head
        self._abs_head = (np.abs(head[0]), np.abs(head[1]))
        # With |h| <= 1 the scale never exceeds the head's largest absolute row sum: a
        # constant, which saves computing it per decision.
        bounded = bool(layers) and layers[-1][2] in _BOUNDED
        self._scale_bound = float((self._abs_head[0].sum(axis=0) + self._abs_head[1]).max()) if bounded else None

    @classmethod
    def from_sb3(cls, policy: ActorCriticPolicy) -> NumpyActor:
        """Export the weights of an SB3 policy.

        Raises:
            UnsupportedPolicyError: not a flatten + MLP + linear-head policy.
        """
        from stable_baselines3.common.torch_layers import FlattenExtractor
        from torch import nn

        if not isinstance(policy.pi_features_extractor, FlattenExtractor):
            raise UnsupportedPolicyError(f"features extractor {type(policy.pi_features_extractor).__name__}")
        layers: list[tuple[FloatArray, FloatArray, str]] = []
        for module in policy.mlp_extractor.policy_net:
            if isinstance(module, nn.Linear):
                layers.append((_weight(module), _bias(module), "Identity"))
            elif type(module).__name__ in _ACTIVATIONS and layers:
                weight, bias, _ = layers[-1]
                layers[-1] = (weight, bias, type(module).__name__)
            else:
                raise UnsupportedPolicyError(f"layer {module!r} in policy_net")
        head = policy.action_net
        if not isinstance(head, nn.Linear):
            raise UnsupportedPolicyError(f"action_net {head!r}")
        return cls(layers, (_weight(head), _bias(head)))

    def logits(self, obs: npt.NDArray[Any]) -> FloatArray:
        """Logits for one observation ``(d,)`` or a batch ``(n, d)``."""
        return self.logits_and_scale(obs)[0]

    def logits_and_scale(self, obs: npt.NDArray[Any]) -> tuple[FloatArray, float | FloatArray]:
        """Logits, and an upper bound of the size of the terms summed into any logit
        (``max(|h| @ |W| + |b|)``, per observation), which bounds the float32 rounding
        error of torch's computation of the same logits."""
        x = np.asarray(obs, dtype=np.float64)
        for weight, bias, activation in self.layers:
            x = activation(x @ weight + bias)
        weight, bias = self.head
        if self._scale_bound is not None:
            return x @ weight + bias, self._scale_bound
        abs_weight, abs_bias = self._abs_head
        return x @ weight + bias, (np.abs(x) @ abs_weight + abs_bias).max(axis=-1)


def _weight(linear: Any) -> FloatArray:
    return np.ascontiguousarray(linear.weight.detach().cpu().numpy().T, dtype=np.float64)


def _bias(linear: Any) -> FloatArray:
    if linear.bias is None:
        return np.zeros(linear.out_features)
    bias: FloatArray = linear.bias.detach().cpu().numpy().astype(np.float64)
    return bias


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
    if not path.is_file():
        raise ModelMismatchError(f"{path}: no such model file")
    metadata = load_metadata(path)
    check_compatible(metadata, path, lookback_window)
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


class PPOStrategy:
    """A trained SB3 PPO model behind the :class:`~strategies.base.Strategy` protocol.

    Build it with :meth:`load`. Decisions use only the observation (which already holds
    the market window and the account); the market context only says whether the candle
    is one the model decides on (its decision stride).

    Attributes:
        delegated: decisions handed to SB3 ``predict`` (near-ties, see the module doc).
    """

    history = 1

    def __init__(self, model: PPO, path: Path, metadata: ModelMetadata) -> None:
        self.model = model
        self.path = path
        self.metadata = metadata
        self.orders = metadata.mode.orders
        """``orders[i]``: what the policy's action ``i`` asks the money step for."""
        self.cadence = metadata.cadence()
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
    def name(self) -> str:
        return f"ppo:{self.path}"

    @property
    def fast(self) -> bool:
        """True when decisions run on the numpy export (False: every one via ``predict``)."""
        return self._actor is not None

    def predict(self, obs: Observation) -> int:
        """SB3's own deterministic decision, the policy's action index (the reference the
        fast path must equal)."""
        action, _ = self.model.predict(obs, deterministic=True)
        return int(action)

    def act(self, obs: Observation, context: MarketContext | None = None) -> Order:
        """The model's order at the close of ``context``'s last candle; HOLD on a candle
        between its decisions. ``context`` may be omitted for a model deciding every candle."""
        if self.cadence.stride > 1 and not self.cadence.decides(int(self._decision_time(context))):
            return Action.HOLD
        return self.orders[self.policy_action(obs)]

    def policy_action(self, obs: Observation) -> int:
        """The deterministic policy action (an index into :attr:`orders`) for one observation."""
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

    def act_batch(
        self, obs: ObservationBatch, context: MarketContext | None = None, steps: IndexArray | None = None
    ) -> ActionArray:
        orders = np.asarray(self.orders, dtype=np.int64)
        if self._actor is None:
            actions: ActionArray = np.array([self.predict(row) for row in obs], dtype=np.int64)
        else:
            logits, scale = self._actor.logits_and_scale(obs)
            actions = np.argmax(logits, axis=1).astype(np.int64)
            ranked = np.sort(logits, axis=1)
            for i in np.flatnonzero(ranked[:, -1] - ranked[:, -2] < TIE_MARGIN * (1.0 + np.asarray(scale))):
                self.delegated += 1
                actions[i] = self.predict(obs[i])
        decided = orders[actions]
        if self.cadence.stride > 1:
            if context is None or steps is None:
                raise ValueError(f"{self.name}: decides every {self.cadence.stride} candles; act_batch needs the "
                                 "market context and the steps")
            times = context.open_time_ms[np.asarray(steps, dtype=np.int64)]
            between = np.array([not self.cadence.decides(int(t)) for t in times], dtype=bool)
            decided[between] = Action.HOLD
        return decided

    def prepare(self, context: MarketContext) -> Decider:
        cadence = self.cadence
        if cadence.stride > 1 and len(context) > 1:
            candles = infer_grid(context.open_time_ms)
            if candles.name != cadence.grid.name:
                raise ModelMismatchError(
                    f"{self.path}: decides every {cadence.stride} candles of {self.metadata.timeframe}, but these "
                    f"candles are {candles.name}; backtest it on {self.metadata.timeframe} candles")
        times = context.open_time_ms.tolist()
        orders, policy_action = self.orders, self.policy_action

        def decide(t: int, obs: Observation) -> int:
            if cadence.stride > 1 and not cadence.decides(times[t]):
                return Action.HOLD
            return orders[policy_action(obs)]

        return decide

    def _decision_time(self, context: MarketContext | None) -> int:
        if context is None or len(context) == 0:
            raise ValueError(f"{self.name}: decides every {self.cadence.stride} candles; act needs the market context")
        return int(context.open_time_ms[-1])
