"""Which strategy trades a symbol: a configured spec, or the model registry's promoted model.

With ``[daemon] strategy = "registry"`` the daemon serves the newest promoted model for
the symbol (or a shared one). A model file is a pickle, so it is only loaded when its
sha256 matches the registry row and its metadata matches this code's features. With no
promoted model yet (cold start), the configured fallback baseline trades, and every
decision it takes says so in ``decisions.strategy``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bot.engine import ServingStrategy
from config.settings import DaemonSettings
from state.records import ModelEntry
from strategies.specs import build_strategy
from trainer.models.store import ModelIntegrityError, file_version, load_registry_strategy, promoted_model

__all__ = ["ModelIntegrityError", "cap_torch_threads", "choose_strategy", "configured_strategy",
           "load_registry_model", "promoted_model"]

log = logging.getLogger(__name__)

REGISTRY = "registry"
PPO_LABEL = "ppo"
"""``decisions.strategy`` of every decision a PPO model took (the model is in ``model_version``)."""


def load_registry_model(entry: ModelEntry, lookback_window: int) -> ServingStrategy:
    """Verify (:func:`trainer.models.store.verify_model_file`) and load a registry model.

    Raises:
        ModelIntegrityError: the file is missing or its sha256 differs from the registry's.
        ModelMismatchError: its metadata does not fit this code (feature spec, lookback).
    """
    return ServingStrategy(load_registry_strategy(entry, lookback_window), PPO_LABEL, entry.version)


def cap_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads if torch is loaded (a PPO strategy imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def configured_strategy(spec: str, lookback_window: int) -> ServingStrategy:
    """A strategy named by spec, labelled with its canonical spec (``sma:fast=10,...``); a
    PPO file is labelled ``ppo`` with its sha256 prefix as model version
    (:func:`trainer.models.store.file_version`)."""
    strategy = build_strategy(spec, lookback_window=lookback_window)
    if strategy.name.split(":", 1)[0] == PPO_LABEL:
        return ServingStrategy(strategy, PPO_LABEL, file_version(Path(spec.split(":", 1)[1])))
    return ServingStrategy(strategy, strategy.name)


def choose_strategy(daemon: DaemonSettings, models: list[ModelEntry], symbol: str, interval: str,
                    lookback_window: int) -> ServingStrategy:
    """The strategy a symbol starts with (see the module docstring)."""
    if daemon.strategy != REGISTRY:
        return configured_strategy(daemon.strategy, lookback_window)
    entry = promoted_model(models, symbol, interval)
    if entry is None:
        log.warning("%s: cold start: the model registry has no promoted model; trading the fallback %r",
                    symbol, daemon.fallback)
        return configured_strategy(daemon.fallback, lookback_window)
    return load_registry_model(entry, lookback_window)
