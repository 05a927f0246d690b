"""A trained PPO policy served with numpy alone: its weights, exported beside the model.

The daemon should not need torch (about 300 MB of a small server's memory) to decide: a
decision is three small matrix products. So every model Shadow's trainer saves, and every
model published to the registry, gets its actor network exported beside the zip as
``X.policy.npz`` (:func:`save_policy`: float64 weights, the activation of each layer, the
observation size and the sha256 of the zip it was taken from). :class:`PolicyStrategy`
serves it: it loads plain arrays (``allow_pickle=False``: unlike the zip, nothing is
unpickled), checks the model's metadata and that the export belongs to the zip beside it
(the recorded sha256), and decides by the argmax of the float64 logits, in the model's own
action mode and decision stride (:class:`ServedPolicy`, shared with the SB3 form).

**One served form, everywhere.** Wherever a model with an export is evaluated or traded
(the daemon, ``shadow backtest``, walk-forward, tuning, the retraining gate, ``shadow
verify``), it is this class (:func:`strategies.ppo.load_ppo_strategy`), so live equals
backtest bit for bit by construction. It equals SB3's ``predict`` except where two logits
tie within torch's float32 rounding (about 1e-7 relative), where ``predict`` itself is a
coin flip; :class:`strategies.ppo.PPOStrategy`, which hands such near-ties to ``predict``,
serves models without an export.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from env.intervals import infer_grid
from env.types import Action, Observation, Order
from strategies.base import ActionArray, Decider, IndexArray, MarketContext, ObservationBatch
from strategies.model_metadata import ModelMetadata, ModelMismatchError, file_sha256, load_servable_metadata

if TYPE_CHECKING:
    from stable_baselines3.common.policies import ActorCriticPolicy

POLICY_SUFFIX = ".policy.npz"
FORMAT = 1
"""Version of the export's layout; an export of another format is refused."""

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
        self.spec = tuple(layers)
        """The layers as given: what :func:`save_policy` writes."""
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

    @property
    def input_size(self) -> int:
        """Length of the observation the network takes."""
        return int((self.spec[0][0] if self.spec else self.head[0]).shape[0])

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


def policy_path(model_zip: str | Path) -> Path:
    """``models/x/best_model.zip`` -> ``models/x/best_model.policy.npz``."""
    model_zip = Path(model_zip)
    stem = model_zip.name[: -len(".zip")] if model_zip.name.endswith(".zip") else model_zip.name
    return model_zip.with_name(stem + POLICY_SUFFIX)


def save_policy(actor: NumpyActor, model_zip: Path) -> Path:
    """Write the export of ``model_zip``'s actor beside it, atomically; returns its path.

    Args:
        actor: the network, as :meth:`NumpyActor.from_sb3` took it from the saved model.
        model_zip: the zip it was taken from (its sha256 is recorded in the export).
    """
    arrays: dict[str, Any] = {"format": np.array(FORMAT), "source_sha256": np.array(file_sha256(model_zip)),
                              "activations": np.array([name for _, _, name in actor.spec]),
                              "head_weight": actor.head[0], "head_bias": actor.head[1]}
    for i, (weight, bias, _) in enumerate(actor.spec):
        arrays[f"weight_{i}"], arrays[f"bias_{i}"] = weight, bias
    target = policy_path(model_zip)
    partial = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with partial.open("wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, target)
    return target


def load_actor(path: Path) -> tuple[NumpyActor, str]:
    """The network of an export and the sha256 of the zip it belongs to.

    Raises:
        ModelMismatchError: not an export of this format (unreadable, other keys).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ModelMismatchError(f"{path}: exported policy format {int(data['format'])}, this code reads "
                                         f"{FORMAT}; export it again (shadow models publish)")
            activations = [str(a) for a in data["activations"]]
            layers = [(data[f"weight_{i}"], data[f"bias_{i}"], name) for i, name in enumerate(activations)]
            return NumpyActor(layers, (data["head_weight"], data["head_bias"])), str(data["source_sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelMismatchError(f"{path}: not a readable policy export ({type(exc).__name__}: {exc})") from None


class ServedPolicy:
    """A trained policy served as it was trained (the base of :class:`PolicyStrategy` and
    :class:`strategies.ppo.PPOStrategy`): the policy's action ``i`` is the order
    ``orders[i]`` of the action mode in its metadata, and a model trained to decide every
    ``stride`` candles answers HOLD, without a forward pass, on the candles in between
    (:class:`env.decisions.DecisionCadence`). A subclass computes the policy's deterministic
    action: :meth:`policy_action` for one observation, :meth:`policy_actions` for a batch.
    """

    history = 1

    def __init__(self, path: Path, metadata: ModelMetadata) -> None:
        self.path = path
        self.metadata = metadata
        self.orders = metadata.mode.orders
        """``orders[i]``: what the policy's action ``i`` asks the money step for."""
        self.cadence = metadata.cadence()

    @property
    def name(self) -> str:
        return f"ppo:{self.path}"

    def policy_action(self, obs: Observation) -> int:
        """The deterministic policy action (an index into :attr:`orders`) for one observation."""
        raise NotImplementedError

    def policy_actions(self, obs: ObservationBatch) -> ActionArray:
        """:meth:`policy_action` of every row."""
        raise NotImplementedError

    def act(self, obs: Observation, context: MarketContext | None = None) -> Order:
        """The model's order at the close of ``context``'s last candle; HOLD on a candle
        between its decisions. ``context`` may be omitted for a model deciding every candle."""
        if self.cadence.stride > 1 and not self.cadence.decides(int(self._decision_time(context))):
            return Action.HOLD
        return self.orders[self.policy_action(obs)]

    def act_batch(self, obs: ObservationBatch, context: MarketContext | None = None,
                  steps: IndexArray | None = None) -> ActionArray:
        decided: ActionArray = np.asarray(self.orders, dtype=np.int64)[self.policy_actions(obs)]
        if self.cadence.stride > 1:
            if context is None or steps is None:
                raise ValueError(f"{self.name}: decides every {self.cadence.stride} candles; act_batch needs the "
                                 "market context and the steps")
            times = context.open_time_ms[np.asarray(steps, dtype=np.int64)]
            decided[~self.cadence.decision_candles(times)] = Action.HOLD
        return decided

    def prepare(self, context: MarketContext) -> Decider:
        cadence = self.cadence
        if cadence.stride > 1 and len(context) > 1:
            candles = infer_grid(context.open_time_ms)
            if candles.name != cadence.grid.name:
                raise ModelMismatchError(
                    f"{self.path}: decides every {cadence.stride} candles of {self.metadata.timeframe}, but these "
                    f"candles are {candles.name}; backtest it on {self.metadata.timeframe} candles")
        decides = cadence.decision_candles(context.open_time_ms).tolist()  # the whole series at once
        orders, policy_action = self.orders, self.policy_action

        def decide(t: int, obs: Observation) -> int:
            if not decides[t]:
                return Action.HOLD
            return orders[policy_action(obs)]

        return decide

    def _decision_time(self, context: MarketContext | None) -> int:
        if context is None or len(context) == 0:
            raise ValueError(f"{self.name}: decides every {self.cadence.stride} candles; act needs the market context")
        return int(context.open_time_ms[-1])


class PolicyStrategy(ServedPolicy):
    """A trained PPO model served from its exported weights (see the module docstring).

    Build it with :meth:`load`. Decisions use only the observation (and the market context
    for a decision stride), as :class:`strategies.ppo.PPOStrategy`'s do.
    """

    def __init__(self, actor: NumpyActor, path: Path, metadata: ModelMetadata) -> None:
        super().__init__(path, metadata)
        self.actor = actor

    @classmethod
    def load(cls, model_zip: str | Path, lookback_window: int | None = None) -> PolicyStrategy:
        """Serve ``model_zip`` from the export beside it.

        Raises:
            ModelMismatchError: no model file, metadata this code cannot serve (feature spec,
                lookback), an export that is missing, unreadable, taken from another file, or
                that takes another observation or chooses among other actions than the
                metadata describes.
        """
        model_zip = Path(model_zip)
        metadata = load_servable_metadata(model_zip, lookback_window)
        export = policy_path(model_zip)
        actor, source = load_actor(export)
        if source != file_sha256(model_zip):
            raise ModelMismatchError(f"{export}: exported from another file than {model_zip.name} (sha256 "
                                     f"{source[:12]}); export it again (shadow models publish)")
        n_actions = metadata.mode.n_actions
        if actor.input_size != metadata.observation_size or actor.head[0].shape[1] != n_actions:
            raise ModelMismatchError(f"{export}: a network from {actor.input_size} inputs to {actor.head[0].shape[1]} "
                                     f"actions; the metadata says {metadata.observation_size} to {n_actions} (its "
                                     f"{metadata.action_mode} action mode)")
        return cls(actor, model_zip, metadata)

    def policy_action(self, obs: Observation) -> int:
        return int(np.argmax(self.actor.logits(obs)))

    def policy_actions(self, obs: ObservationBatch) -> ActionArray:
        actions: ActionArray = np.argmax(self.actor.logits(obs), axis=1).astype(np.int64)
        return actions
