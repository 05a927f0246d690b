"""The settings each daemon session of a ledger traded with, read back for a replay.

From schema version 4 every session records its resolved settings (``runs.settings``);
older sessions, and decisions written outside a session, stand in with the configured
settings. One account is replayed with one set of ``[env]`` and ``[risk]`` settings, so
the sessions that traded a symbol must agree on them (the reward weights aside: they
only shape training).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.errors import UserError
from config.settings import DaemonSettings, EnvSettings, RiskSettings, Settings
from state.decision_log import LoggedDecision

UNTRADED_ENV_FIELDS = frozenset({"reward", "reward_scaling"})
"""``[env]`` settings that shape the training reward only: a session may change them freely."""


class SessionSettingsError(UserError):
    """Recorded settings that do not load, or sessions of one account that disagree."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session traded with: ``[env]``, ``[risk]`` and ``[daemon]`` (its strategy
    spec), and whether the session recorded them (``False``: the configured ones)."""

    env: EnvSettings
    risk: RiskSettings
    daemon: DaemonSettings
    recorded: bool


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
        self._configured = SessionSettings(configured.env, configured.risk, configured.daemon, recorded=False)
        self._parsed: dict[int | None, SessionSettings] = {}

    def of(self, run_id: int | None) -> SessionSettings:
        """The settings of session ``run_id`` (``None``: a decision written outside a session)."""
        if run_id not in self._parsed:
            text = None if run_id is None else self._recorded.get(run_id)
            self._parsed[run_id] = self._configured if run_id is None or text is None else self._parse(run_id, text)
        return self._parsed[run_id]

    def money_settings(self, log: Sequence[LoggedDecision], name: str) -> tuple[EnvSettings, RiskSettings, str]:
        """The ``[env]`` and ``[risk]`` settings every session of ``log`` traded with, and
        where they came from (for the report).

        Raises:
            SessionSettingsError: two sessions traded the account with different settings.
        """
        runs = sorted({d.run_id for d in log}, key=lambda r: -1 if r is None else r)
        first = self.of(runs[0])
        for run in runs[1:]:
            changed = _changed_field(first, self.of(run))
            if changed:
                raise SessionSettingsError(
                    f"ledger {self._db}: {name} was traded by run {runs[0]} and run {run} with different settings "
                    f"({changed}); verify replays one account with one set of [env] and [risk] settings")
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
        return SessionSettings(_section(EnvSettings, "env", values, where),
                               _section(RiskSettings, "risk", values, where),
                               _section(DaemonSettings, "daemon", values, where), recorded=True)


_Section = TypeVar("_Section", bound=BaseModel)


def _section(model: type[_Section], name: str, values: dict[str, Any], where: str) -> _Section:
    """One recorded section, validated by this code's settings model."""
    try:
        return model.model_validate(values.get(name))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join([name, *(str(p) for p in error["loc"])])
        raise SessionSettingsError(f"{where} do not load in this Shadow: {field}: {error['msg']}") from None


def _changed_field(a: SessionSettings, b: SessionSettings) -> str | None:
    for section, (x, y) in {"env": (a.env, b.env), "risk": (a.risk, b.risk)}.items():
        for key in type(x).model_fields:
            if section == "env" and key in UNTRADED_ENV_FIELDS:
                continue
            if getattr(x, key) != getattr(y, key):
                return f"{section}.{key} {getattr(x, key)!r} vs {getattr(y, key)!r}"
    return None
