"""Sending alerts without ever holding up a decision: a bounded queue and one worker thread.

:meth:`AlertNotifier.notify` only filters, rate-limits and enqueues (microseconds, never
waits); a daemon thread takes alerts off the queue and sends each through apprise, whose
network calls may take seconds or fail: that thread is the only one that waits for them.

Rate limits: the same alert (kind and subject) goes out at most once per
``min_interval_s`` (the next one says how many were held back), and at most
``max_per_hour`` alerts in any hour, all kinds together. A full queue drops the new
alert and counts it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from config.errors import UserError
from config.settings import AlertSettings

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One message. ``kind`` is one of :data:`config.alerts.ALERT_KINDS`; ``subject`` says
    what it is about (a model version, a symbol), for rate limiting; ``level`` is
    ``info``, ``warning`` or ``failure``."""

    kind: str
    subject: str
    title: str
    body: str
    level: str = "warning"


Send = Callable[[Alert], bool]
"""Delivers one alert; ``True`` when every channel took it."""


@dataclass
class NotifierStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    held_back: int = 0  # by min_interval_s
    over_cap: int = 0  # by max_per_hour
    dropped: int = 0  # queue full
    filtered: int = 0  # kind not in [alerts] events


@dataclass
class _Limits:
    last_sent: dict[tuple[str, str], float] = field(default_factory=dict)
    held_back: dict[tuple[str, str], int] = field(default_factory=dict)
    sent_times: deque[float] = field(default_factory=deque)
    over_cap_since_last: int = 0


def apprise_sender(urls: list[str]) -> Send:
    """A :data:`Send` through apprise to every URL.

    Raises:
        UserError: a URL apprise does not understand (named).
    """
    import apprise

    client = apprise.Apprise()
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL)  # its own line about a bad URL would repeat ours, with the secret
    try:
        for url in urls:
            if not client.add(url):
                raise UserError(f"[alerts] urls: {_redact(url)!r} is not a notification URL apprise understands "
                                "(see https://github.com/caronc/apprise/wiki)")
    finally:
        apprise_log.setLevel(level)
    levels = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
              "failure": apprise.NotifyType.FAILURE}

    def send(alert: Alert) -> bool:
        return bool(client.notify(body=alert.body, title=alert.title, notify_type=levels[alert.level]))

    return send


def _redact(url: str) -> str:
    """The scheme and host only: the rest of a notification URL is often a secret token."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/..." if rest else url


class AlertNotifier:
    """Queues alerts and sends them from a worker thread (see the module docstring).

    Args:
        settings: ``[alerts]``.
        send: delivers one alert (default: apprise to ``settings.urls``).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, settings: AlertSettings, *, send: Send | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stats = NotifierStats()
        self._send = send or apprise_sender(settings.urls)
        self._clock = clock
        self._limits = _Limits()
        self._queue: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
        self._thread.start()

    def notify(self, alert: Alert) -> bool:
        """Queue ``alert`` unless a rule holds it back; never waits. Returns whether queued."""
        if alert.kind not in self.settings.events:
            self.stats.filtered += 1
            return False
        now = self._clock()
        limits, key = self._limits, (alert.kind, alert.subject)
        last = limits.last_sent.get(key)
        if last is not None and now - last < self.settings.min_interval_s:
            limits.held_back[key] = limits.held_back.get(key, 0) + 1
            self.stats.held_back += 1
            return False
        while limits.sent_times and now - limits.sent_times[0] >= HOUR_S:
            limits.sent_times.popleft()
        if len(limits.sent_times) >= self.settings.max_per_hour:
            limits.over_cap_since_last += 1
            self.stats.over_cap += 1
            return False
        notes = []
        if held := limits.held_back.pop(key, 0):
            notes.append(f"{held} more like this were held back since the last one")
        if limits.over_cap_since_last:
            notes.append(f"{limits.over_cap_since_last} other alert(s) were dropped by max_per_hour")
            limits.over_cap_since_last = 0
        if notes:
            alert = replace(alert, body=f"{alert.body}\n({'; '.join(notes)})")
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.stats.dropped += 1
            log.warning("alert dropped, the queue is full (%s): %s", self._queue.maxsize, alert.title)
            return False
        limits.last_sent[key] = now
        limits.sent_times.append(now)
        self.stats.queued += 1
        return True

    def close(self, timeout_s: float) -> bool:
        """Send what is queued (for at most ``timeout_s``), then stop the worker. Returns
        whether everything was sent in time."""
        try:
            self._queue.put(None, timeout=max(timeout_s, 0.001))
        except queue.Full:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while (alert := self._queue.get()) is not None:
            try:
                ok = self._send(alert)
            except Exception:  # a channel's bug must not end the worker
                log.exception("alert %r: sending failed", alert.title)
                ok = False
            if ok:
                self.stats.sent += 1
            else:
                self.stats.failed += 1
                log.warning("alert not delivered to every channel: %s", alert.title)
