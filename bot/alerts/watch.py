"""What alerts, inside ``shadow run``: the ledger's journal and the health rule.

- From the ledger (:class:`bot.ledger_watch.LedgerWatch`): a promotion or a rollback (every
  process that promotes writes ``model_promotions``), a retrain that rejected its
  candidate or failed, a risk control firing.
- From the health rule (:class:`bot.health.HealthMonitor`, every ``check_seconds``): the
  stream down, a symbol's candles stale, a symbol stopped or the ledger not writable, once
  the problem has lasted ``health_after_s``; and "recovered" when it clears.
- From the command: the daemon stopping, with its reason.

Everything goes through :class:`~bot.alerts.notifier.AlertNotifier`, which never waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from bot.alerts.notifier import Alert, AlertNotifier, Send
from bot.health import Health, HealthMonitor
from bot.ledger_watch import LedgerWatch
from config.settings import Settings
from state.queries.changes import LedgerEvent

if TYPE_CHECKING:
    from bot.daemon import Daemon

log = logging.getLogger(__name__)

_LEDGER_ALERTS: dict[str, tuple[str, str, str]] = {
    # ledger event kind: (alert kind, level, title)
    "promotion": ("promotion", "info", "model {subject} promoted"),
    "rollback": ("rollback", "warning", "rolled back to model {subject}"),
    "retrain_rejected": ("rejection", "info", "{subject}: candidate rejected"),
    "retrain_failed": ("retrain_failed", "failure", "{subject} failed"),
    "risk": ("risk_stop", "warning", "risk stop: {subject}{on_symbol}"),
}


def ledger_alert(event: LedgerEvent) -> Alert | None:
    """The alert for a ledger event, if it is one that alerts."""
    if event.kind not in _LEDGER_ALERTS:
        return None
    kind, level, title = _LEDGER_ALERTS[event.kind]
    on_symbol = f" on {event.symbol}" if event.symbol else ""
    subject = f"{event.subject}{on_symbol}" if kind == "risk_stop" else event.subject
    return Alert(kind, subject, "Shadow: " + title.format(subject=event.subject, on_symbol=on_symbol),
                 event.detail, level)


def health_problems(health: Health) -> dict[tuple[str, str], str]:
    """``(alert kind, subject) -> text`` of every problem in a verdict, from its checks."""
    checks = health.checks
    found: dict[tuple[str, str], str] = {}
    if checks.get("stream_connected") is False:
        found[("stream_down", "stream")] = next((p for p in health.problems if p.startswith("stream")),
                                                "the Bybit stream is not connected")
    for symbol, check in checks.get("symbols", {}).items():
        if check.get("failed"):
            found[("unhealthy", symbol)] = f"{symbol}: stopped: {check['failed']}"
        elif check.get("closed_s_ago") is not None and check["closed_s_ago"] > check["limit_s"]:
            found[("candles_stale", symbol)] = (f"{symbol}: newest candle ({check['last_candle']}) closed "
                                                f"{check['closed_s_ago']:.0f} s ago (limit {check['limit_s']:g} s)")
    ledger: dict[str, Any] = checks.get("ledger", {})
    ledger_lines = [p for p in health.problems if p.startswith("ledger")]
    if ledger_lines:
        found[("unhealthy", "ledger")] = "; ".join(ledger_lines)
    elif ledger.get("writable") is False:
        found[("unhealthy", "ledger")] = "ledger not writable"
    return found


class AlertService:
    """``async with AlertService(daemon, settings) as alerts:`` around ``daemon.run()``.

    Inert (nothing imported or started) when ``[alerts] urls`` is empty and no ``send``
    is given.

    Args:
        daemon: the daemon whose ledger and health are watched.
        settings: all settings (``[alerts]``, ``[service]`` for the health rule, ``[ledger]``).
        send: deliver one alert (default: apprise to ``[alerts] urls``).
        clock: monotonic seconds, for how long a problem has lasted.
    """

    def __init__(self, daemon: Daemon, settings: Settings, *, send: Send | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.daemon = daemon
        self.settings = settings
        self.alerts = settings.alerts
        self._send = send
        self._clock = clock
        self.notifier: AlertNotifier | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = AsyncExitStack()

    @property
    def active(self) -> bool:
        return self.notifier is not None

    async def __aenter__(self) -> AlertService:
        if not self.alerts.urls and self._send is None:
            return self
        self.notifier = AlertNotifier(self.alerts, send=self._send, clock=self._clock)
        ledger = self.settings.ledger
        watch = await self._stack.enter_async_context(
            LedgerWatch(ledger.db_path, poll_s=1.0, lock_timeout_s=ledger.lock_timeout_s))
        self._tasks = [asyncio.create_task(self._ledger_events(watch), name="alerts-ledger"),
                       asyncio.create_task(self._health(HealthMonitor(self.daemon, self.settings.service)),
                                           name="alerts-health")]
        log.info("alerts: %d channel(s), events %s", len(self.alerts.urls), ", ".join(self.alerts.events))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        if self.notifier is not None and not await asyncio.to_thread(self.notifier.close, self.alerts.stop_timeout_s):
            log.warning("alerts: some were not sent within stop_timeout_s (%g s)", self.alerts.stop_timeout_s)

    def stopping(self, reason: str, *, requested: bool) -> None:
        """The daemon stops (``requested``: by a signal or the stop event, else a failure)."""
        if self.notifier is not None:
            self.notifier.notify(Alert("daemon_stopped", "daemon", f"Shadow stopped: {reason}",
                                       f"The paper-trading daemon stopped ({reason}).",
                                       "info" if requested else "failure"))

    async def _ledger_events(self, watch: LedgerWatch) -> None:
        queue = watch.subscribe()
        while (changes := await queue.get()) is not None:
            for event in changes.events:
                alert = ledger_alert(event)
                if alert is not None and self.notifier is not None:
                    self.notifier.notify(alert)

    async def _health(self, monitor: HealthMonitor) -> None:
        since: dict[tuple[str, str], float] = {}
        alerted: dict[tuple[str, str], str] = {}
        while True:
            await asyncio.sleep(self.alerts.check_seconds)
            try:
                verdict = await monitor.check()
            except Exception:  # a check that fails now is tried again at the next period
                log.exception("alerts: health check failed")
                continue
            if verdict.status in ("starting", "stopped"):
                continue
            problems = health_problems(verdict)
            now = self._clock()
            since = {key: since.get(key, now) for key in problems}
            for key, text in problems.items():
                if key not in alerted and now - since[key] >= self.alerts.health_after_s:
                    self._notify(Alert(key[0], key[1], f"Shadow: {text}", text,
                                       "warning" if key[0] == "candles_stale" else "failure"))
                    alerted[key] = text
            for key in [k for k in alerted if k not in problems]:
                text = alerted.pop(key)
                self._notify(Alert("recovered", key[1], f"Shadow: {key[1]} recovered",
                                   f"Cleared: {text}", "info"))

    def _notify(self, alert: Alert) -> None:
        if self.notifier is not None:
            self.notifier.notify(alert)
