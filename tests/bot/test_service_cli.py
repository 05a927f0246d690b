"""``shadow run --http ... --log-format json`` as a process, against ``shadow replay-server``;
the health rule's start-up and disk cases; log formats."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bot.daemon import Daemon
from bot.health import HealthMonitor, free_mb
from config import UserError
from config.logs import configure_logging
from config.settings import ServiceSettings, Settings
from env.candles import candles_to_seed_csv
from tests.bot.local_http import free_port, get, wait_until_answering
from tests.bot.service_harness import HISTORY, running_service
from tests.conftest import REPO


def _shadow(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=os.environ | {"COLUMNS": "1000"},
                          **kwargs)


def test_shadow_run_serves_http_logs_json_and_stops_cleanly_on_sigterm(tmp_path: Path,
                                                                       btc_candles: pd.DataFrame) -> None:
    """Real candles moved to the present, so the replay's candles are as recent as live ones."""
    frame = btc_candles.iloc[: HISTORY + 400].reset_index(drop=True)
    minute = int(time.time() // 60 * 60_000)
    frame["timestamp"] = pd.to_datetime(minute - HISTORY * 60_000 + 60_000 * pd.RangeIndex(len(frame)), unit="ms")
    data = tmp_path / "btc.csv"
    candles_to_seed_csv(frame, data)
    replay_port, http_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "bot", "replay-server", "--data", str(data), "--symbol",
                               "BTCUSDT", "--speed", "5", "--port", str(replay_port), "--history", str(HISTORY)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "shadow.toml"
    config.write_text(
        f'[exchange]\nws_url = "ws://127.0.0.1:{replay_port}/v5/public/linear"\n'
        f'rest_url = "http://127.0.0.1:{replay_port}"\nbackoff_min_s = 0.05\nbackoff_max_s = 0.3\n'
        f'[ledger]\ndb_path = "{tmp_path / "l.sqlite"}"\n[daemon]\nstrategy = "flat"\n')
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_until_answering(f"http://127.0.0.1:{replay_port}/v5/market/time")
        daemon = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--http",
                                   str(http_port), "--log-format", "json"], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 40
        health = status = (0, b"")
        while time.monotonic() < deadline and daemon.poll() is None:  # healthy, and a decision was made
            health, status = get(f"{base}/health"), get(f"{base}/status")
            if health[0] == 200 and status[0] == 200 and json.loads(status[1])["symbols"]:
                break
            time.sleep(0.2)
        metrics = get(f"{base}/metrics")
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        server.kill()
        server.wait()
    assert health[0] == 200 and json.loads(health[1])["status"] == "ok", (health, err[-2000:])
    assert metrics[0] == 200 and b"shadow_decisions_total" in metrics[1]
    assert status[0] == 200 and json.loads(status[1])["symbols"][0]["symbol"] == "BTCUSDT"
    assert daemon.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(f"HTTP: {base}/health" in line["message"] for line in lines)
    assert any("stopping (stop requested)" in line["message"] for line in lines)


def test_http_address_in_use_or_malformed_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _shadow("run", "--db", str(tmp_path / "l.sqlite"), "--http", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"--http 127.0.0.1:{port}: cannot listen" in result.stderr and "Traceback" not in result.stderr
    result = _shadow("run", "--db", str(tmp_path / "l.sqlite"), "--http", "localhost:http")
    assert result.returncode == 2 and "invalid value for service.http: 'localhost:http'" in result.stderr
    result = _shadow("run", "--db", str(tmp_path / "l.sqlite"), "--log-format", "xml")
    assert result.returncode == 2 and "invalid value for service.log_format: 'xml'" in result.stderr
    assert not (tmp_path / "l.sqlite").exists()  # refused before anything was opened


async def test_health_says_starting_before_the_daemon_runs() -> None:
    verdict = await HealthMonitor(Daemon(Settings()), ServiceSettings()).check()
    assert (verdict.ok, verdict.status, verdict.problems) == (False, "starting", [
        "starting: warming up and restoring the accounts"])


async def test_health_fails_when_the_ledger_disk_is_short_of_space(tmp_path: Path, btc_candles: pd.DataFrame,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The real disk is read; the reading is kept, so the verdict is checked against the very
    number it was made from (free space moves between runs, and the body's free_mb is rounded to
    0.1 MB: rounding that again to whole MB can differ from the line's own rounding)."""
    readings: list[float] = []

    def recorded_free_mb(path: Path) -> float:
        readings.append(free_mb(path))
        return readings[-1]

    monkeypatch.setattr("bot.health.free_mb", recorded_free_mb)
    frame = btc_candles.iloc[: HISTORY + 10].reset_index(drop=True)
    async with running_service(frame, tmp_path / "l.sqlite", speed=50.0,
                               service={"min_free_disk_mb": 1e12}) as service:
        while service.daemon.report is None or not service.daemon.report.symbols["BTCUSDT"].decisions:
            await asyncio.sleep(0.02)
        status, body = await service.get("/health")
        await service.finished()
    assert status == 503 and len(readings) == 1  # one request, one reading of the disk
    assert body["checks"]["ledger"]["free_mb"] == round(readings[0], 1)
    assert [p for p in body["problems"] if "disk" in p] == [
        (f"ledger disk almost full: {readings[0]:.0f} MB free on the disk of "
         f"{tmp_path / 'l.sqlite'} (need 1e+12 MB, [service] min_free_disk_mb)")]


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("log_format", "expected"), [
    ("text", r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING bot\.test: stalled 3 s$"),
    ("journal", r"^<4>bot\.test: stalled 3 s$"),
])
def test_text_and_journal_lines(log_format: str, expected: str, capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", log_format)
    logging.getLogger("bot.test").warning("stalled %d s", 3)
    logging.getLogger("bot.test").debug("not shown at INFO")
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and re.match(expected, err[0]), err


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_traceback_and_extra_fields(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("bad candle")
    except ValueError:
        logging.getLogger("bot.test").exception("symbol stopped", extra={"symbol": "BTCUSDT"})
    (line,) = capfd.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"], record["symbol"]) == (
        "ERROR", "bot.test", "symbol stopped", "BTCUSDT")
    assert record["time"].endswith("+00:00") and "ValueError: bad candle" in record["exc_info"]


@pytest.mark.usefixtures("restore_logging")
def test_the_log_file_rotates_by_size(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "shadow.log"
    configure_logging("INFO", "text", log_file=log_file, max_mb=0.001, backups=2)  # about 1 kB per file
    for n in range(100):
        logging.getLogger("bot.test").info("line %03d %s", n, "x" * 40)
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["shadow.log", "shadow.log.1", "shadow.log.2"]
    assert "line 099" in log_file.read_text() and all(p.stat().st_size <= 1100 for p in log_file.parent.iterdir())


@pytest.mark.usefixtures("restore_logging")
def test_a_log_file_that_cannot_be_opened_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"log file .*file/shadow.log: cannot create it"):
        configure_logging("INFO", "text", log_file=tmp_path / "file" / "shadow.log")
    with pytest.raises(UserError, match="--log-level 'LOUD'"):
        configure_logging("LOUD")


def test_env_var_turns_json_logs_on_for_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_SERVICE__LOG_FORMAT", "json")
    monkeypatch.setenv("SHADOW_SERVICE__HTTP", "0.0.0.0:9108")
    from config import load_settings

    service = load_settings().service
    assert (service.log_format, service.http) == ("json", "0.0.0.0:9108")
