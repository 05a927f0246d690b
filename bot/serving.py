"""Which strategy an account trades a symbol with: a configured spec, a pinned registry
version, or the model registry's promoted model.

An account with strategy ``registry`` serves the newest promoted model for the symbol (or a
shared one); ``registry:VERSION`` serves that version, whatever its status. A model file
is a pickle, so it is only loaded when its sha256 matches the registry row and its
metadata matches this code's features. With no promoted model yet (cold start), the
configured fallback baseline trades, and every decision it takes says so in
``decisions.strategy``.

A model trades as it was trained (its metadata's action mode and decision stride), each
account's model its own, so the daemon refuses one it cannot serve that way: trained on
another candle interval, or able to go short on a spot market
(:func:`strategies.model_metadata.check_servable`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.engine import ServingStrategy
from config.accounts import REGISTRY, registry_version
from config.errors import UserError
from state.records import ModelEntry
from strategies.base import Strategy
from strategies.model_metadata import check_servable
from strategies.policy import ServedPolicy
from strategies.specs import build_strategy
from trainer.models.store import ModelIntegrityError, file_version, load_registry_strategy, promoted_model

__all__ = ["REGISTRY", "ModelIntegrityError", "UnknownModelError", "account_strategy", "cap_torch_threads",
           "configured_strategy", "load_registry_model", "promoted_model"]

log = logging.getLogger(__name__)
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


class UnknownModelError(UserError):
    """An account pinned to a registry version the registry does not hold."""


def pinned_model(version: str, models: Sequence[ModelEntry], account: str) -> ModelEntry:
    """The registry row of ``registry:VERSION``.

    Raises:
        UnknownModelError: no such version (the message names the account and what there is).
    """
    entry = next((m for m in models if m.version == version), None)
    if entry is None:
        held = ", ".join(m.version for m in models[-5:]) or "no model at all"
        raise UnknownModelError(f"account {account!r}: strategy 'registry:{version}' names a model the registry "
                                f"does not hold (it has {held}; see shadow models)")
    return entry


def account_strategy(strategy: str, fallback: str, models: Sequence[ModelEntry], symbol: str, interval: str,
                     lookback_window: int, *, account: str, category: str = "linear") -> ServingStrategy:
    """The strategy an account starts trading ``symbol`` with (see the module docstring);
    ``fallback`` trades while the registry has no promoted model (cold start). A model must
    be servable on the market (``category``, ``interval``).

    Raises:
        UserError: an unknown strategy or registry version, a model that cannot be served.
    """
    version = registry_version(strategy)
    if version is not None:
        return load_registry_model(pinned_model(version, models, account), lookback_window, category=category,
                                   interval=interval)
    if strategy != REGISTRY:
        return configured_strategy(strategy, lookback_window, category=category, interval=interval)
    entry = promoted_model(models, symbol, interval)
    if entry is None:
        log.warning("%s %s: cold start: the model registry has no promoted model; trading the fallback %r",
                    account, symbol, fallback)
        return configured_strategy(fallback, lookback_window, category=category, interval=interval)
    return load_registry_model(entry, lookback_window, category=category, interval=interval)


def _check_market(strategy: Strategy, category: str, interval: str | None) -> None:
    if isinstance(strategy, ServedPolicy) and interval is not None:
        check_servable(strategy.metadata, strategy.path, category=category, interval=interval)
