"""The base of every settings section, and the checks several sections share."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

SYMBOL = re.compile(r"^[A-Z0-9]{2,32}$")
"""A Bybit symbol: upper-case letters and digits (``BTCUSDT``)."""

_STRATEGY_SPEC = re.compile(r"^[A-Za-z_]+(:.+)?$")


class Section(BaseModel):
    """A TOML table of the settings: unknown keys are errors, values are immutable and the
    defaults are validated too."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def check_spec(value: str) -> str:
    """Syntax only (``name`` or ``name:args``): names are checked when the strategy is built,
    since config imports nothing of ours."""
    if not _STRATEGY_SPEC.match(value.strip()):
        raise ValueError("must be a strategy spec such as 'sma:fast=10,slow=50', 'buy_and_hold' or 'ppo:PATH'")
    return value.strip()
