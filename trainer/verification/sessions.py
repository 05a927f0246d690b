"""The settings each daemon session of a ledger traded with, read back for a replay.

From schema version 4 every session records its resolved settings (``runs.settings``);
older sessions, and decisions written outside a session, stand in with the configured
settings. Each session's accounts are resolved from them as the daemon resolved them
(:func:`config.accounts.trading_accounts`: a session without ``[[accounts]]`` traded the one
account ``main``). One account is replayed on a symbol with one set of ``[env]`` and
``[risk]`` settings, so the sessions that traded it must agree on them (the reward weights
aside: they only shape training).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.accounts import AccountSettings, TradingAccount, trading_accounts
from config.errors import UserError
from config.settings import DaemonSettings, EnvSettings, FeedSettings, RiskSettings, Settings
from state.decision_log import LoggedDecision

UNTRADED_ENV_FIELDS = frozenset({"reward", "reward_scaling"})
"""``[env]`` settings that shape the training reward only: a session may change them freely."""


class SessionSettingsError(UserError):
    """Recorded settings that do not load, or sessions of one account that disagree."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session traded with: each account's money, limits and strategy spec, and
    whether the session recorded them (``False``: the configured ones)."""

    accounts: dict[str, TradingAccount]
    recorded: bool

    @classmethod
    def of(cls, settings: Settings, *, recorded: bool) -> SessionSettings:
        return cls({a.name: a for a in trading_accounts(settings)}, recorded)


class LedgerSessions:
    """The settings of each session (``run_id``) of a ledger.

    Args:
        db: the ledger's path, for messages.
        recorded: ``runs.settings`` by ``run_id`` (:func:`state.decision_log.run_settings`).
        configured: what stands in where a session recorded nothing.
    """

    def __init__(self, db: Path, recorded: dict[int, str | None], configured: Settings) -> None:
        self._db = db
        self._recorded = recorded
        self._configured = SessionSettings.of(configured, recorded=False)
        self._parsed: dict[int | None, SessionSettings] = {}

    def of(self, run_id: int | None) -> SessionSettings:
        """The settings of session ``run_id`` (``None``: a decision written outside a session)."""
        if run_id not in self._parsed:
            text = None if run_id is None else self._recorded.get(run_id)
            self._parsed[run_id] = self._configured if run_id is None or text is None else self._parse(run_id, text)
        return self._parsed[run_id]

    def account(self, run_id: int | None, account: str) -> TradingAccount:
        """How session ``run_id`` traded ``account``.

        Raises:
            SessionSettingsError: the session's settings have no such account.
        """
        session = self.of(run_id)
        if account not in session.accounts:
            source = f"run {run_id}'s recorded settings" if session.recorded else "the configured settings"
            hint = "" if session.recorded else " (pass the daemon's --config)"
            raise SessionSettingsError(f"ledger {self._db}: account {account} decided in run {run_id}, but "
                                       f"{source} have no such account{hint}")
        return session.accounts[account]

    def money_settings(self, log: Sequence[LoggedDecision], name: str,
                       account: str) -> tuple[EnvSettings, RiskSettings, str]:
        """The ``[env]`` and ``[risk]`` settings every session of ``log`` traded ``account``
        with, and where they came from (for the report).

        Raises:
            SessionSettingsError: two sessions traded the account with different settings.
        """
        runs = sorted({d.run_id for d in log}, key=lambda r: -1 if r is None else r)
        first = self.account(runs[0], account)
        for run in runs[1:]:
            changed = _changed_field(first, self.account(run, account))
            if changed:
                raise SessionSettingsError(
                    f"ledger {self._db}: account {account} traded {name} in run {runs[0]} and run {run} with "
                    f"different settings ({changed}); verify replays one account with one set of [env] and [risk] "
                    "settings")
        recorded = {self.of(r).recorded for r in runs}
        source = ("recorded by the daemon" if recorded == {True} else
                  "configured (the ledger's sessions recorded none: run it with the daemon's --config)"
                  if recorded == {False} else "recorded by the daemon, configured for sessions that recorded none")
        return first.env, first.risk, source

    def _parse(self, run_id: int, text: str) -> SessionSettings:
        where = f"ledger {self._db}: the settings recorded by run {run_id}"
        try:
            values = json.loads(text)
            if not isinstance(values, dict):
                raise TypeError(f"a JSON {type(values).__name__}, not an object")
        except (ValueError, TypeError) as exc:
            raise SessionSettingsError(f"{where} are not settings ({exc})") from None
        settings = Settings.model_construct(
            env=_section(EnvSettings, "env", values.get("env", {}), where),
            risk=_section(RiskSettings, "risk", values.get("risk", {}), where),
            daemon=_section(DaemonSettings, "daemon", values.get("daemon", {}), where),
            feed=_section(FeedSettings, "feed", values.get("feed", {}), where),
            accounts=tuple(_section(AccountSettings, f"accounts.{i}", item, where)
                           for i, item in enumerate(values.get("accounts") or ())))
        return SessionSettings.of(settings, recorded=True)


_Section = TypeVar("_Section", bound=BaseModel)


def _section(model: type[_Section], name: str, value: Any, where: str) -> _Section:
    """One recorded section (or ``[[accounts]]`` entry), validated by this code's settings model."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join([name, *(str(p) for p in error["loc"])])
        raise SessionSettingsError(f"{where} do not load in this Shadow: {field}: {error['msg']}") from None


def _changed_field(a: TradingAccount, b: TradingAccount) -> str | None:
    for section, (x, y) in {"env": (a.env, b.env), "risk": (a.risk, b.risk)}.items():
        for key in type(x).model_fields:
            if section == "env" and key in UNTRADED_ENV_FIELDS:
                continue
            if getattr(x, key) != getattr(y, key):
                return f"{section}.{key} {getattr(x, key)!r} vs {getattr(y, key)!r}"
    return None
