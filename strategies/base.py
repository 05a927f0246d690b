"""The ``Strategy`` protocol, the market context a strategy may read, and strategy specs.

A strategy decides one order per closed candle (:data:`env.types.Order`: a trade action
0-3, or a target position of the ``target``/``long_flat`` action modes, which the money
step maps to a trade action). It is called the
same way in both places it runs:

- **live**, the engine calls :meth:`Strategy.act` once per closed candle with the env's
  observation and a :class:`MarketContext` holding its rolling window of the last
  :attr:`Strategy.history` candles (the decision candle is the last one);
- **in a backtest** the whole series is known in advance, so the backtester calls
  :meth:`Strategy.prepare` once with the full context and then the returned
  :data:`Decider` per step. Preparing may precompute in batch, but a decision at candle
  ``t`` may only use candles ``<= t`` (tests check ``prepare`` against ``act`` on the
  causal prefix at every candle of real data).

:meth:`Strategy.act_batch` decides many independent (observation, candle) pairs at
once, for evaluation code that already holds the observations.

The observation carries the account (see :mod:`env.observation`), so a strategy can be
position-aware: ``obs[POSITION_INDEX]`` is -1 short, 0 flat, +1 long.

Strategies are named by a spec string, ``name`` or ``name:key=value,...`` (``sma:fast=10,
slow=50``); a strategy with one obvious argument also takes it bare (``ppo:models/x.zip``).
:func:`parse_spec` reads the syntax, :mod:`strategies.specs` maps names to classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from config.errors import UserError
from env.observation import N_PORTFOLIO_FEATURES, PORTFOLIO_FEATURE_NAMES
from env.types import Observation, Order

ObservationBatch = npt.NDArray[np.float32]
"""``(n, observation_size)`` observations, one per row."""
ActionArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.int64]

POSITION_INDEX = PORTFOLIO_FEATURE_NAMES.index("position") - N_PORTFOLIO_FEATURES
"""Where the position (-1/0/+1) sits in an observation: ``obs[POSITION_INDEX]`` (= -4)."""

Decider = Callable[[int, Observation], int]
"""``decide(t, obs) -> action``: the per-step form returned by :meth:`Strategy.prepare`."""


class StrategySpecError(UserError, ValueError):
    """A strategy spec that names no known strategy or has a bad parameter."""


class UnknownStrategyError(StrategySpecError):
    """A strategy spec whose name is no strategy (a caller with names of its own can add them)."""


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Candles a strategy may read, oldest first.

    Args:
        closes: close prices.
        open_time_ms: open time of each candle (UTC epoch ms).
    """

    closes: npt.NDArray[np.float64]
    open_time_ms: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        if self.closes.shape != self.open_time_ms.shape or self.closes.ndim != 1:
            raise ValueError(
                f"MarketContext: closes {self.closes.shape} and open_time_ms {self.open_time_ms.shape} "
                "must be 1-D and the same length"
            )

    @classmethod
    def from_candles(cls, candles: pd.DataFrame) -> MarketContext:
        """Context from a validated candle frame (:func:`env.candles.normalize_candles`)."""
        return cls(
            candles["close"].to_numpy(dtype=np.float64, copy=True),
            candles["open_time_ms"].to_numpy(dtype=np.int64, copy=True),
        )

    def __len__(self) -> int:
        return len(self.closes)

    def window(self, t: int, history: int) -> MarketContext:
        """The last ``history`` candles up to and including candle ``t``: exactly what a
        live engine keeping a rolling window holds when candle ``t`` closes."""
        start = max(0, t + 1 - history)
        return MarketContext(self.closes[start : t + 1], self.open_time_ms[start : t + 1])


@runtime_checkable
class Strategy(Protocol):
    """Anything that turns (observation, causal market context) into an action.

    Implemented by :class:`strategies.ppo.PPOStrategy` and the baselines in
    :mod:`strategies.baselines`, without inheriting from this class.
    """

    @property
    def name(self) -> str:
        """Canonical spec, e.g. ``"sma:fast=10,slow=50,short=false"``; labels reports."""
        ...

    @property
    def history(self) -> int:
        """Candles :meth:`act` needs in its context, the decision candle included."""
        ...

    def act(self, obs: Observation, context: MarketContext) -> Order:
        """Decide at the close of ``context``'s last candle."""
        ...

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        """Decide row ``i`` of ``obs`` at candle ``steps[i]`` of ``context``, using only
        candles ``<= steps[i]``. Equals :meth:`act` row by row."""
        ...

    def prepare(self, context: MarketContext) -> Decider:
        """Per-step form for a series known in advance (the backtest): ``decide(t, obs)``
        equals ``act(obs, context.window(t, history))`` for every ``t``."""
        ...


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A parsed spec: ``name``, ``key=value`` parameters and at most one bare argument."""

    text: str
    name: str
    params: dict[str, str] = field(default_factory=dict)
    positional: str | None = None


def short_name(name: str) -> str:
    """A strategy's label in tables and charts: a PPO model by file name, not its path."""
    return f"ppo:{Path(name[4:]).name}" if name.startswith("ppo:") else name


def parse_spec(text: str) -> StrategySpec:
    """Read ``name``, ``name:key=value,key=value`` or ``name:ARGUMENT``.

    When the part after the first ``:`` holds no ``=`` at all it is one bare argument,
    taken whole (so a model path may contain commas).

    Raises:
        StrategySpecError: empty name, an empty or repeated key, or an item without ``=``.
    """
    name, sep, rest = text.strip().partition(":")
    name = name.strip().lower()
    if not name:
        raise StrategySpecError(f"strategy spec {text!r}: empty strategy name")
    if not sep or not rest.strip():
        if sep:
            raise StrategySpecError(f"strategy spec {text!r}: nothing after ':'")
        return StrategySpec(text, name)
    if "=" not in rest:
        return StrategySpec(text, name, positional=rest.strip())
    params: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise StrategySpecError(f"strategy spec {text!r}: {item.strip()!r} is not key=value")
        if key in params:
            raise StrategySpecError(f"strategy spec {text!r}: parameter {key!r} given twice")
        params[key] = value.strip()
    return StrategySpec(text, name, params)
