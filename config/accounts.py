"""Paper accounts (``[[accounts]]``): several strategies trading side by side on the same
candles, each with its own money, costs and risk limits.

A configuration without ``[[accounts]]`` has exactly one account, :data:`DEFAULT_ACCOUNT`,
trading ``[daemon] strategy`` with the ``[env]`` and ``[risk]`` settings (Shadow before
accounts). An ``[[accounts]]`` entry leaves out what it shares with those sections: every
money field defaults to its ``[env]`` or ``[risk]`` value, ``symbols`` to every ``[feed]``
symbol. :func:`trading_accounts` resolves either form to :class:`TradingAccount`\\ s, the
one shape the daemon, ``shadow verify`` and ``shadow accounts`` work with.

An account's strategy is a strategy spec (``sma:fast=10,slow=50``, ``ppo:PATH``), the
registry's promoted model (``registry``), or one registry version pinned
(``registry:v0003``): see :func:`registry_version`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import Field, field_validator

from config.market import FeedSettings
from config.section import SYMBOL, Section, check_spec
from config.trading import DaemonSettings, EnvSettings, RiskSettings

DEFAULT_ACCOUNT = "main"
"""The account of a configuration without ``[[accounts]]`` (and of every row a ledger
written before accounts holds)."""

REGISTRY = "registry"
"""The strategy spec of an account trading the registry's promoted model."""

ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
"""Letters, digits, ``_ . -``; no ``:``, which names the accounts Shadow creates itself
(a live trial's challenger, :func:`challenger_name`)."""

_Section = TypeVar("_Section", EnvSettings, RiskSettings)
_MONEY_FIELDS = ("initial_balance", "commission", "slippage_bps", "max_position_size")
_RISK_FIELDS = ("max_drawdown", "daily_loss_limit")


class AccountSettings(Section):
    """One ``[[accounts]]`` entry. Fields left out take the ``[env]`` / ``[risk]`` /
    ``[feed]`` value."""

    name: str = Field(description="the account's name in the ledger (letters, digits, _ . -)")
    strategy: str = Field(
        REGISTRY, description="'registry' (the promoted model), 'registry:VERSION' (one registry model) or any "
        "strategy spec ('ppo:models/x.zip', 'sma:fast=10,slow=50', 'flat', ...)",
    )
    symbols: tuple[str, ...] | None = Field(None, description="symbols it trades (default: every [feed] symbol)")
    initial_balance: float | None = Field(None, gt=0, description="starting capital per symbol (default: [env])")
    commission: float | None = Field(None, ge=0, lt=1, description="fee rate per fill (default: [env])")
    slippage_bps: float | None = Field(None, ge=0, lt=10_000, description="adverse fill offset (default: [env])")
    max_position_size: float | None = Field(
        None, gt=0, le=100, description="position notional as a multiple of equity (default: [env])"
    )
    max_drawdown: float | None = Field(None, ge=0, le=1, description="drawdown stop, 0 = off (default: [risk])")
    daily_loss_limit: float | None = Field(None, ge=0, le=1, description="daily loss limit, 0 = off (default: [risk])")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ACCOUNT_NAME.match(value):
            raise ValueError("an account name is 1-40 letters, digits, '_', '.' or '-', starting with a letter or "
                             "digit")
        return value

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        return check_spec(value)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("lists no symbol; leave symbols out to trade every [feed] symbol")
        bad = [s for s in value if not SYMBOL.match(s)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a Bybit symbol such as BTCUSDT")
        return value


def check_accounts(accounts: Sequence[AccountSettings], feed_symbols: Sequence[str]) -> None:
    """Names used once, symbols among the fed ones.

    Raises:
        ValueError: the first problem, naming the account.
    """
    seen: set[str] = set()
    for account in accounts:
        if account.name in seen:
            raise ValueError(f"account name {account.name!r} is used twice; every account needs its own name")
        seen.add(account.name)
        unfed = [s for s in account.symbols or () if s not in feed_symbols]
        if unfed:
            raise ValueError(f"account {account.name!r} trades {unfed[0]}, which [feed] symbols does not stream "
                             f"({', '.join(feed_symbols)})")


@dataclass(frozen=True, slots=True)
class TradingAccount:
    """An account as it trades: every default filled in.

    Args:
        name: the ledger's ``account`` column.
        strategy: ``registry``, ``registry:VERSION`` or a strategy spec.
        symbols: the symbols it trades.
        env: ``[env]`` with the account's money fields (each symbol starts with
            ``env.initial_balance``).
        risk: the account's risk limits.
    """

    name: str
    strategy: str
    symbols: tuple[str, ...]
    env: EnvSettings
    risk: RiskSettings

    @property
    def follows_registry(self) -> bool:
        """Trades the registry's promoted model (and hot-swaps with it)."""
        return self.strategy == REGISTRY


class AccountSources(Protocol):
    """The sections accounts are resolved from (:class:`config.settings.Settings` has them)."""

    @property
    def accounts(self) -> tuple[AccountSettings, ...]: ...
    @property
    def feed(self) -> FeedSettings: ...
    @property
    def daemon(self) -> DaemonSettings: ...
    @property
    def env(self) -> EnvSettings: ...
    @property
    def risk(self) -> RiskSettings: ...


def trading_accounts(settings: AccountSources) -> tuple[TradingAccount, ...]:
    """The accounts ``settings`` trade (see the module docstring)."""
    symbols = tuple(settings.feed.symbols)
    if not settings.accounts:
        return (TradingAccount(DEFAULT_ACCOUNT, settings.daemon.strategy, symbols, settings.env, settings.risk),)
    return tuple(
        TradingAccount(
            name=a.name, strategy=a.strategy, symbols=a.symbols or symbols,
            env=_overridden(settings.env, a, _MONEY_FIELDS), risk=_overridden(settings.risk, a, _RISK_FIELDS),
        )
        for a in settings.accounts
    )


def incumbent_account(accounts: Sequence[TradingAccount], symbols: Sequence[str]) -> TradingAccount | None:
    """The account a live trial's challenger competes with on ``symbols``: the first one
    that trades the registry's promoted model on all of them."""
    return next((a for a in accounts if a.follows_registry and set(symbols) <= set(a.symbols)), None)


def _overridden(section: _Section, account: AccountSettings, names: tuple[str, ...]) -> _Section:
    update = {name: getattr(account, name) for name in names if getattr(account, name) is not None}
    return section.model_copy(update=update) if update else section


def registry_version(strategy: str) -> str | None:
    """The version a ``registry:VERSION`` spec pins (``None`` for any other spec)."""
    name, sep, version = strategy.partition(":")
    return version.strip() if sep and name.strip().lower() == REGISTRY else None


CHALLENGER_PREFIX = "trial:"


def challenger_name(version: str) -> str:
    """The account a live trial's candidate trades in: ``trial:v0007``."""
    return CHALLENGER_PREFIX + version


def parse_account_flag(text: str) -> dict[str, str]:
    """``NAME=SPEC`` (``shadow run --account fast=sma:fast=5,slow=20``) as an
    ``[[accounts]]`` entry.

    Raises:
        ValueError: no ``=``, or nothing on one side of it.
    """
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ValueError(f"{text!r} is not NAME=SPEC (e.g. fast=sma:fast=5,slow=20)")
    return {"name": name.strip(), "strategy": spec.strip()}
