"""The daemon replaying a candle frame from the local Bybit replay server into a ledger: the
ledgers that the daemon, verify and fault tests check."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bot.bybit.sequencer import FeedCandle
from bot.daemon import Daemon
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, FeedSettings, LedgerSettings, Settings
from tests.bot.conftest import fast_exchange
from tests.bot.local_http import free_port, wait_until_answering
from tests.conftest import PREFIX, REPO

HISTORY = PREFIX  # exactly the env's first decision index: the daemon warms up on it over REST


def settings_for(server: ReplayServer, db: Path, strategy: str, **sections: object) -> Settings:
    """The daemon's settings against ``server``; ``sections`` add or replace sections (``feed=...``)."""
    return Settings(**{
        "exchange": fast_exchange(server), "feed": FeedSettings(symbols=["BTCUSDT"]),
        "ledger": LedgerSettings(db_path=db),
        "daemon": DaemonSettings(strategy=strategy, heartbeat_minutes=0.002)} | sections)


async def replay_daemon(frame: pd.DataFrame, db: Path, strategy: str, *, faults: tuple[str, ...] = (),
                        speed: float = 400.0, history: int = HISTORY, until: Callable[[Daemon], bool] | None = None,
                        timeout_s: float = 30.0, **sections: object) -> Daemon:
    """Replay ``frame`` through the daemon until it has decided the last candle (or, after a
    decision, ``until(daemon)`` says the test has seen enough)."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=history)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=speed, faults=parse_faults(faults)) as server:
        daemon = Daemon(settings_for(server, db, strategy, **sections))
        stop = asyncio.Event()
        def done(symbol: str, item: FeedCandle, latency_ms: float) -> None:
            if item.candle.open_time_ms >= last_ms or (until is not None and until(daemon)):
                stop.set()

        daemon.listeners.append(done)
        await asyncio.wait_for(daemon.run(stop), timeout_s)
    return daemon


def account_rows(db: Path) -> dict[str, list[tuple]]:
    """Everything each account wrote, by table, in order."""
    with sqlite3.connect(db) as conn:
        return {
            "decisions": conn.execute("SELECT account, open_time_ms, action, obs_hash, strategy, model_version "
                                      "FROM decisions ORDER BY account, open_time_ms").fetchall(),
            "fills": conn.execute("SELECT account, time_ms, seq, side, qty, price, fee FROM fills "
                                  "ORDER BY account, time_ms, seq").fetchall(),
            "trades": conn.execute("SELECT account, entry_time_ms, exit_time_ms, net_pnl FROM trades "
                                   "ORDER BY account, exit_time_ms").fetchall(),
            "equity": conn.execute("SELECT account, open_time_ms, equity, cash FROM equity "
                                   "ORDER BY account, open_time_ms").fetchall(),
            "risk_events": conn.execute("SELECT account, time_ms, kind, detail FROM risk_events "
                                        "ORDER BY account, event_id").fetchall(),
            "funding": conn.execute("SELECT account, time_ms, rate, price, side, qty, amount FROM funding "
                                    "ORDER BY account, time_ms").fetchall(),
            "positions": conn.execute("SELECT * FROM positions ORDER BY account").fetchall(),
        }


@contextmanager
def replay_process(tmp_path: Path, frame: pd.DataFrame, db: Path, config: str, *,
                   speed: float = 15.0) -> Iterator[dict[str, str]]:
    """A replay-server process serving ``frame`` (BTCUSDT) and a ``shadow.toml`` pointing at it
    and at ``db``; yields the environment a ``shadow run`` process needs (``SHADOW_CONFIG``).

    Args:
        config: TOML added to the exchange, feed and ledger settings (e.g. a ``[daemon]`` table).
    """
    from env.candles import candles_to_seed_csv

    data = tmp_path / "candles.csv"
    candles_to_seed_csv(frame, data)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bot", "replay-server", "--data", str(data), "--symbol",
                               "BTCUSDT", "--speed", str(speed), "--port", str(port), "--history", str(HISTORY)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    toml = tmp_path / "shadow.toml"
    toml.write_text(
        f'[exchange]\nws_url = "ws://127.0.0.1:{port}/v5/public/linear"\nrest_url = "http://127.0.0.1:{port}"\n'
        'ping_interval_s = 0.2\nwatchdog_s = 1.0\nbackoff_min_s = 0.05\nbackoff_max_s = 0.3\n'
        f'[feed]\nsymbols = ["BTCUSDT"]\n[ledger]\ndb_path = "{db}"\n' + config)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/v5/market/time")
        yield os.environ | {"SHADOW_CONFIG": str(toml)}
    finally:
        server.kill()
        server.wait()


def shadow_run(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``shadow run ARGS`` as a process, its stderr kept for failures."""
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--log-level", "WARNING", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def decided(db: Path) -> int:
    """Decisions in the ledger so far (0 before the daemon created it)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            count: int = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
        except sqlite3.OperationalError:  # schema not created yet
            return 0
    return count


def run_killing_shadow(tmp_path: Path, frame: pd.DataFrame, db: Path, config: str, *, decisions: int,
                       args: tuple[str, ...] = (), kills: int = 5, seed: int = 7, speed: float = 15.0) -> int:
    """``shadow run ARGS`` in a subprocess against a replay-server process serving ``frame``
    (:func:`replay_process`), killed with SIGKILL ``kills`` times, each at a random moment
    after it resumed deciding, and restarted each time, then left to run until the ledger
    holds ``decisions`` decisions and stopped with SIGTERM.

    Returns:
        The number of kills.
    """
    rng = random.Random(seed)
    killed = 0
    with replay_process(tmp_path, frame, db, config, speed=speed) as env:
        deadline = time.monotonic() + 180
        while decided(db) < decisions and time.monotonic() < deadline:
            daemon = shadow_run(env, *args)
            if killed < kills:  # a random moment after it resumed deciding (start-up time varies with load)
                before = decided(db)
                while decided(db) == before and time.monotonic() < deadline and daemon.poll() is None:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.6))
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                killed += 1
                continue
            while decided(db) < decisions and time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(0.2)
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=30)
            assert daemon.returncode == 0, err.decode()
    return killed
