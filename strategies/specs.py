"""Strategy names -> classes, and building a strategy from its spec string.

Kept apart from :mod:`strategies.base` because it imports every implementation, which
in turn import the base. Parameters are converted with the constructor's type hints,
so a new baseline only needs an entry in :data:`STRATEGIES`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strategies.base import Strategy, StrategySpecError, UnknownStrategyError, parse_spec
from strategies.baselines import BuyAndHold, Flat, RandomStrategy, RsiReversion, SmaCross
from strategies.ppo import load_ppo_strategy


@dataclass(frozen=True)
class StrategyEntry:
    """How to build one named strategy.

    Args:
        factory: class or function taking the spec's parameters as keywords.
        summary: one line for help texts.
        positional: the parameter a bare spec argument fills (``ppo:PATH`` -> ``path``).
    """

    factory: Callable[..., Strategy]
    summary: str
    positional: str | None = None


STRATEGIES: dict[str, StrategyEntry] = {
    "flat": StrategyEntry(Flat, "never trades"),
    "buy_and_hold": StrategyEntry(BuyAndHold, "long from the first candle to the last"),
    "sma": StrategyEntry(SmaCross, "long while SMA(fast) > SMA(slow)"),
    "rsi": StrategyEntry(RsiReversion, "RSI mean reversion: buy oversold, exit at the middle"),
    "random": StrategyEntry(RandomStrategy, "seeded random entries and exits"),
    "ppo": StrategyEntry(load_ppo_strategy, "a trained PPO model: ppo:PATH.zip", positional="path"),
}

_CONTEXT_PARAMETERS = frozenset({"lookback_window"})
"""Filled by the caller from settings, never from the spec."""

_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def build_strategy(spec: str, *, lookback_window: int | None = None) -> Strategy:
    """Build the strategy a spec names, e.g. ``"sma:fast=10,slow=50"`` or ``"ppo:m.zip"``.

    Args:
        spec: see :func:`strategies.base.parse_spec`.
        lookback_window: the env's lookback (a PPO model trained with another is refused).

    Raises:
        StrategySpecError: unknown name, unknown or missing parameter, or a bad value.
        strategies.model_metadata.ModelMismatchError: a PPO model that cannot be served.
    """
    parsed = parse_spec(spec)
    entry = STRATEGIES.get(parsed.name)
    if entry is None:
        raise UnknownStrategyError(f"unknown strategy {parsed.name!r} in {spec!r}; known: {', '.join(STRATEGIES)}")
    accepted = _parameters(entry)
    params = dict(parsed.params)
    if parsed.positional is not None:
        if entry.positional is None:
            raise StrategySpecError(
                f"strategy spec {spec!r}: {parsed.name} takes key=value parameters "
                f"({describe_parameters(parsed.name) or 'none'}), not a bare argument"
            )
        params[entry.positional] = parsed.positional
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise StrategySpecError(
            f"strategy spec {spec!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"{parsed.name} accepts: {describe_parameters(parsed.name) or 'no parameters'}"
        )
    missing = [name for name, p in accepted.items() if p.default is inspect.Parameter.empty and name not in params]
    if missing:
        raise StrategySpecError(f"strategy spec {spec!r}: missing {', '.join(missing)}")
    hints = typing.get_type_hints(entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory)
    kwargs: dict[str, Any] = {name: _convert(spec, name, value, hints.get(name, str)) for name, value in params.items()}
    if "lookback_window" in inspect.signature(entry.factory).parameters:
        kwargs["lookback_window"] = lookback_window
    return entry.factory(**kwargs)


def describe_parameters(name: str) -> str:
    """``fast=10,slow=50,short=false`` for help texts (``PATH`` for a bare argument)."""
    entry = STRATEGIES[name]
    parts = []
    for pname, param in _parameters(entry).items():
        if pname == entry.positional:
            parts.append(pname.upper())
        elif param.default is inspect.Parameter.empty:
            parts.append(f"{pname}=?")
        elif isinstance(param.default, bool):
            parts.append(f"{pname}={str(param.default).lower()}")
        elif isinstance(param.default, float):
            parts.append(f"{pname}={param.default:g}")
        else:
            parts.append(f"{pname}={param.default}")
    return ",".join(parts)


def strategy_help() -> str:
    """One line per strategy: spec with defaults, then what it does."""
    lines = []
    for name, entry in STRATEGIES.items():
        params = describe_parameters(name)
        spec = f"{name}:{params}" if params else name
        lines.append(f"{spec}  ({entry.summary})")
    return "\n".join(lines)


def _parameters(entry: StrategyEntry) -> dict[str, inspect.Parameter]:
    return {
        name: p for name, p in inspect.signature(entry.factory).parameters.items()
        if name not in _CONTEXT_PARAMETERS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _convert(spec: str, name: str, value: str, kind: Any) -> Any:
    if kind is Path or kind == (str | Path):
        return Path(value)
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise StrategySpecError(f"strategy spec {spec!r}: {name}={value!r} is not true/false")
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise StrategySpecError(f"strategy spec {spec!r}: {name}={value!r} is not {what}") from None
    return value
