"""Which strategy trades a symbol: a configured spec, or the model registry's promoted model.

With ``[daemon] strategy = "registry"`` the daemon serves the newest promoted model for
the symbol (or a shared one). A model file is a pickle, so it is only loaded when its
sha256 matches the registry row and its metadata matches this code's features. With no
promoted model yet (cold start), the configured fallback baseline trades, and every
decision it takes says so in ``decisions.strategy``.

A model trades as it was trained (its metadata's action mode and decision stride), so the
daemon refuses one it cannot serve that way: trained on another candle interval, or able
to go short on a spot market (:func:`strategies.model_metadata.check_servable`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bot.engine import ServingStrategy
from config.settings import DaemonSettings
from state.records import ModelEntry
from strategies.base import Strategy
from strategies.model_metadata import check_servable
from strategies.ppo import PPOStrategy
from strategies.specs import build_strategy
from trainer.models.store import ModelIntegrityError, file_version, load_registry_strategy, promoted_model

__all__ = ["ModelIntegrityError", "cap_torch_threads", "choose_strategy", "configured_strategy",
           "load_registry_model", "promoted_model"]

log = logging.getLogger(__name__)

REGISTRY = "registry"
PPO_LABEL = "ppo"
"""``decisions.strategy`` of every decision a PPO model took (the model is in ``model_version``)."""


def load_registry_model(entry: ModelEntry, lookback_window: int, *, category: str = "linear",
                        interval: str | None = None) -> ServingStrategy:
    """Verify (:func:`trainer.models.store.verify_model_file`) and load a registry model.

    Args:
        entry: the registry row.
        lookback_window: the observation's lookback.
        category, interval: the market the daemon streams; the model must be servable on
            it (``interval`` None: the entry's own).

    Raises:
        ModelIntegrityError: the file is missing or its sha256 differs from the registry's.
        ModelMismatchError: its metadata does not fit this code (feature spec, lookback) or
            the market (interval, short positions on spot).
    """
    strategy = load_registry_strategy(entry, lookback_window)
    _check_market(strategy, category, interval or entry.interval)
    return ServingStrategy(strategy, PPO_LABEL, entry.version)


def cap_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads if torch is loaded (a PPO strategy imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def configured_strategy(spec: str, lookback_window: int, *, category: str = "linear",
                        interval: str | None = None) -> ServingStrategy:
    """A strategy named by spec, labelled with its canonical spec (``sma:fast=10,...``); a
    PPO file is labelled ``ppo`` with its sha256 prefix as model version
    (:func:`trainer.models.store.file_version`) and must be servable on the market
    (``category``, ``interval``; ``interval`` None: not checked)."""
    strategy = build_strategy(spec, lookback_window=lookback_window)
    if strategy.name.split(":", 1)[0] == PPO_LABEL:
        _check_market(strategy, category, interval)
        return ServingStrategy(strategy, PPO_LABEL, file_version(Path(spec.split(":", 1)[1])))
    return ServingStrategy(strategy, strategy.name)


def choose_strategy(daemon: DaemonSettings, models: list[ModelEntry], symbol: str, interval: str,
                    lookback_window: int, *, category: str = "linear") -> ServingStrategy:
    """The strategy a symbol starts with (see the module docstring)."""
    if daemon.strategy != REGISTRY:
        return configured_strategy(daemon.strategy, lookback_window, category=category, interval=interval)
    entry = promoted_model(models, symbol, interval)
    if entry is None:
        log.warning("%s: cold start: the model registry has no promoted model; trading the fallback %r",
                    symbol, daemon.fallback)
        return configured_strategy(daemon.fallback, lookback_window, category=category, interval=interval)
    return load_registry_model(entry, lookback_window, category=category, interval=interval)


def _check_market(strategy: Strategy, category: str, interval: str | None) -> None:
    if isinstance(strategy, PPOStrategy) and interval is not None:
        check_servable(strategy.metadata, strategy.path, category=category, interval=interval)
