"""Is the service doing its job right now? The rule behind ``GET /health``.

Healthy means all of:

- **running**: the daemon has finished start-up (warm-up, restore) and has not stopped;
- **stream connected**: the websocket is open and subscribed (the feed's ``connected`` flag;
  it is down while the feed reconnects);
- **candles recent**, per symbol: the newest candle the engine processed closed at most
  ``health_max_age_intervals`` candle intervals plus ``health_margin_s`` ago. Normally
  the next candle closes one interval after the last and its final push arrives a moment
  later, so the default (2 intervals + 30 s: 150 s for 1m candles) allows one late or
  missing candle; the margin covers the exchange's push delay and the local clock's
  offset from the exchange's (``shadow doctor`` measures that offset). A stalled stream
  that still looks connected is caught here, as is an engine that stopped processing;
- **symbols alive**: no symbol's task has stopped on an error, and Bybit streams every
  symbol (one whose subscription it refuses is named with Bybit's reason while it is
  retried, and fails this check for good once it is dropped);
- **ledger writable**: the write lock can be taken now (``BEGIN IMMEDIATE`` /
  ``ROLLBACK``, within 1 s) and the ledger's disk has ``min_free_disk_mb`` free;
- **not refused by Bybit**: no HTTP 403 (an IP ban or a blocked region) is being waited
  out, REST or websocket; while one is, the reason and the end of the wait are listed
  (also during the start-up, whose warm-up waits too).

"Now" is the daemon's injected clock: wall time live, the replay's virtual time when a
test injects it.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import ServiceSettings
from state.database import check_writable
from state.errors import LedgerError
from state.readers import iso_ms

if TYPE_CHECKING:
    from bot.daemon import Daemon, DaemonReport

PROBE_LOCK_TIMEOUT_S = 1.0
"""How long the write probe waits for the lock: far above one commit (under 1 ms), far
below a health checker's timeout."""


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: ``ok`` and, when not, every reason (one line each)."""

    status: str  # "ok", "starting", "stopped" or "failing"
    problems: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "problems": self.problems, "checks": self.checks}


def free_mb(path: Path) -> float:
    """Free space (MB) on the file system holding ``path`` (or its nearest existing parent)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 1e6


def ledger_problems(db_path: Path, min_free_disk_mb: float) -> tuple[list[str], dict[str, Any]]:
    """Can the ledger take the next commit? (blocking: run it in a thread)."""
    problems = []
    free = free_mb(db_path)
    try:
        check_writable(db_path, PROBE_LOCK_TIMEOUT_S)
        writable = True
    except LedgerError as exc:
        writable = False
        problems.append(f"ledger not writable: {exc}")
    if free < min_free_disk_mb:
        problems.append(f"ledger disk almost full: {free:.0f} MB free on the disk of {db_path} "
                        f"(need {min_free_disk_mb:g} MB, [service] min_free_disk_mb)")
    return problems, {"path": str(db_path), "writable": writable, "free_mb": round(free, 1)}


class HealthMonitor:
    """Judges a running :class:`~bot.daemon.Daemon` (see the module docstring)."""

    def __init__(self, daemon: Daemon, service: ServiceSettings) -> None:
        self.daemon = daemon
        self.service = service

    def max_age_ms(self) -> int:
        """How long ago a symbol's newest candle may have closed (a month counts 31 days)."""
        service = self.service
        return int(service.health_max_age_intervals * self.daemon.interval.grid.longest_ms
                   + service.health_margin_s * 1000)

    async def check(self) -> Health:
        """The current verdict; touches the ledger file (in a thread), nothing else."""
        daemon = self.daemon
        report = daemon.report
        refusals = self._forbidden()
        if report is None:
            return Health("starting", ["starting: warming up and restoring the accounts", *refusals])
        if report.stop_reason != "running":
            return Health("stopped", [f"stopped: {report.stop_reason}"])
        problems: list[str] = list(refusals)
        feed = daemon.feed
        connected = feed is not None and feed.stats.connected
        if not connected:
            reconnects = feed.stats.reconnects if feed is not None else 0
            problems.append(f"stream not connected (reconnecting; {reconnects} reconnect(s) so far)")
        symbols = self._symbol_checks(report, problems)
        ledger_issues, ledger = await asyncio.to_thread(ledger_problems, daemon.settings.ledger.db_path,
                                                        self.service.min_free_disk_mb)
        problems += ledger_issues
        checks = {"run_id": report.run_id, "stream_connected": connected, "symbols": symbols, "ledger": ledger}
        return Health("failing" if problems else "ok", problems, checks)

    def _forbidden(self) -> list[str]:
        """Bybit's HTTP 403s being waited out, REST and websocket (an IP ban or a blocked region)."""
        daemon = self.daemon
        found = [daemon.rest.forbidden] if daemon.rest is not None and daemon.rest.forbidden is not None else []
        found += daemon.feed.forbidden if daemon.feed is not None else []
        return [refusal.describe() for refusal in found]

    def _symbol_checks(self, report: DaemonReport, problems: list[str]) -> dict[str, Any]:
        daemon = self.daemon
        now_ms = daemon.clock.now_ms()
        limit_ms = self.max_age_ms()
        checks = {}
        for symbol, engine in daemon.engines.items():
            failed = report.symbols[symbol].failed
            last = engine.last_open_ms
            age_s = None if last is None else (now_ms - daemon.interval.grid.close_ms(last)) / 1000
            feed_problem = daemon.feed.problems.get(symbol) if daemon.feed is not None else None
            checks[symbol] = {"last_candle": iso_ms(last), "closed_s_ago": age_s, "limit_s": limit_ms / 1000,
                              "failed": failed, "feed_problem": None if feed_problem is None else asdict(feed_problem)}
            if failed:
                problems.append(f"{symbol}: stopped: {failed}")
            elif feed_problem is not None:
                problems.append(f"{symbol}: not streaming: {feed_problem.describe()}")
            elif age_s is None:
                problems.append(f"{symbol}: no candle yet")
            elif age_s * 1000 > limit_ms:
                problems.append(
                    f"{symbol}: newest candle (opened {iso_ms(last)}) closed {age_s:.0f} s ago "
                    f"(limit {limit_ms / 1000:g} s: "
                    f"{self.service.health_max_age_intervals:g} x {daemon.interval.name} + "
                    f"{self.service.health_margin_s:g} s)")
        return checks
