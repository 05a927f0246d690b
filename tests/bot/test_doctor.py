"""``shadow doctor``: a sound installation passes; each failure mode is named with its fix."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from bot.doctor import FAIL, OK, WARN, Finding, diagnose
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from state.ledger import Ledger
from strategies.model_metadata import ModelMetadata
from tests.conftest import REPO
from trainer.models.store import publish_model


@pytest.fixture
async def replay(btc_candles: pd.DataFrame) -> AsyncIterator[ReplayServer]:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:300])], history=250)
    async with ReplayServer(market, speed=1.0) as server:
        yield server


@pytest.fixture
async def installation(tmp_path: Path, btc_ledger: Path) -> Path:
    """A ledger (copied from real decisions) with a promoted model in its registry.

    The model zip's bytes are arbitrary: doctor hashes model files and reads their
    metadata, it never unpickles them."""
    db = tmp_path / "shadow.sqlite"
    db.write_bytes(btc_ledger.read_bytes())
    source = tmp_path / "trained" / "model.zip"
    source.parent.mkdir()
    source.write_bytes(b"PK\x03\x04 a model zip")
    ModelMetadata.for_current_code(lookback_window=20, env={}, symbol="BTCUSDT", timeframe="1m", data_range={},
                                   hyperparameters={}, seed=0).save_beside(source)
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, tmp_path / "models", source, symbol="BTCUSDT", interval="1m", status="promoted")
    return db


def _config(tmp_path: Path, server_url: str, *, extra: str = "") -> Path:
    config = tmp_path / "shadow.toml"
    ws = server_url.replace("http://", "ws://") + "/v5/public/linear"
    config.write_text(f'[exchange]\nws_url = "{ws}"\nrest_url = "{server_url}"\n{extra}')
    return config


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes


async def test_a_sound_installation_passes(tmp_path: Path, installation: Path, replay: ReplayServer) -> None:
    findings = _by_check(await diagnose(_config(tmp_path, replay.rest_url), installation, timeout_s=3))
    statuses = {check: f.status for check, f in findings.items()}
    assert statuses == {"config": OK, "ledger": OK, "registry": OK, "strategy": OK, "disk": OK,
                        "exchange REST": OK, "clock": WARN, "exchange websocket": OK}, findings
    assert "1 model file(s), each matching its sha256" in findings["registry"].detail
    assert "a promoted model for every symbol" in findings["strategy"].detail
    assert "expected against a replay server" in findings["clock"].fix  # the replay's clock is March 2023


async def test_a_tampered_model_file_fails_the_registry_check(tmp_path: Path, installation: Path,
                                                            replay: ReplayServer) -> None:
    model = tmp_path / "models" / "v0001.zip"
    model.write_bytes(model.read_bytes() + b"\x00")  # changed after it was published
    registry = _by_check(await diagnose(_config(tmp_path, replay.rest_url), installation, timeout_s=3))["registry"]
    assert registry.status == FAIL
    assert f"(promoted) model v0001: {model.resolve()} has sha256" in registry.detail
    assert "restore the model files" in registry.fix


async def test_a_missing_retired_model_is_only_a_warning(tmp_path: Path, installation: Path,
                                                        replay: ReplayServer) -> None:
    async with await Ledger.open(installation) as ledger:
        await ledger.registry.set_model_status("v0001", "retired", at_ms=1)
    (tmp_path / "models" / "v0001.zip").unlink()
    findings = _by_check(await diagnose(_config(tmp_path, replay.rest_url), installation, timeout_s=3))
    assert findings["registry"].status == WARN and "(retired) model v0001: file" in findings["registry"].detail
    assert findings["strategy"].status == WARN and "the fallback 'flat' trades" in findings["strategy"].detail


async def test_unreachable_endpoints_fail_quickly(tmp_path: Path, installation: Path) -> None:
    url = _closed_port_url()
    findings = _by_check(await diagnose(_config(tmp_path, url), installation, timeout_s=2))
    rest = findings["exchange REST"]
    assert rest.status == FAIL and f"cannot reach Bybit REST {url}" in rest.detail
    websocket = findings["exchange websocket"]
    assert websocket.status == FAIL and f"cannot reach {url.replace('http', 'ws')}/v5/public/linear" in websocket.detail
    assert "check [exchange] ws_url" in websocket.fix
    assert "clock" not in findings  # no exchange clock to compare with


@pytest.mark.parametrize("damage", ["not sqlite", "corrupt page", "index out of step", "foreign database"])
async def test_a_damaged_or_foreign_ledger_fails(tmp_path: Path, installation: Path, damage: str) -> None:
    if damage == "not sqlite":
        installation.write_text("id,price\n1,2\n" * 500)
    elif damage == "corrupt page":
        data = bytearray(installation.read_bytes())
        page = int.from_bytes(data[16:18], "big")
        data[page * 3: page * 6] = b"\xff" * (page * 3)  # scribble over a few pages of tables and indexes
        installation.write_bytes(bytes(data))
    elif damage == "index out of step":  # readable, but an index no longer matches its table
        with closing(sqlite3.connect(installation)) as conn:
            root, page_size = conn.execute("SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM "
                                           "sqlite_master WHERE name = 'decisions_model'").fetchone()
        data = bytearray(installation.read_bytes())
        at = data.index(b"ppo-0001", (root - 1) * page_size)
        data[at + 7] = ord("9")
        installation.write_bytes(bytes(data))
    else:
        installation.unlink()
        with closing(sqlite3.connect(installation)) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
    findings = _by_check(await diagnose(_config(tmp_path, _closed_port_url()), installation, timeout_s=1))
    ledger = findings["ledger"]
    expected = {"not sqlite": "not a usable SQLite database", "corrupt page": "database disk image is malformed",
                "index out of step": "is damaged: row", "foreign database": "not a Shadow ledger"}[damage]
    assert ledger.status == FAIL and expected in ledger.detail, ledger
    assert "restore the newest backup" in ledger.fix
    assert "registry" not in findings  # its rows cannot be trusted


async def test_a_missing_ledger_is_a_warning_and_low_disk_a_failure(tmp_path: Path) -> None:
    config = _config(tmp_path, _closed_port_url(), extra="[service]\nmin_free_disk_mb = 1e12\n")
    findings = _by_check(await diagnose(config, tmp_path / "new.sqlite", timeout_s=1))
    assert findings["ledger"].status == WARN and "does not exist yet" in findings["ledger"].detail
    assert findings["disk"].status == FAIL and "less than [service] min_free_disk_mb" in findings["disk"].detail


async def test_a_bad_strategy_spec_fails(tmp_path: Path, installation: Path) -> None:
    config = _config(tmp_path, _closed_port_url(), extra='[daemon]\nstrategy = "ppo:models/none.zip"\n')
    strategy = _by_check(await diagnose(config, installation, timeout_s=1))["strategy"]
    assert strategy.status == FAIL and "model file models/none.zip not found" in strategy.detail


async def test_every_accounts_strategy_is_checked(tmp_path: Path, installation: Path) -> None:
    accounts = ('[[accounts]]\nname = "main"\n[[accounts]]\nname = "sma"\nstrategy = "sma:fast=5,slow=20"\n'
                '[[accounts]]\nname = "pinned"\nstrategy = "registry:v0001"\n')
    config = _config(tmp_path, _closed_port_url(), extra=accounts)
    strategy = _by_check(await diagnose(config, installation, timeout_s=1))["strategy"]
    expected = "registry: a promoted model for every symbol (BTCUSDT); sma: sma:fast=5,slow=20, pinned: registry:v0001"
    assert (strategy.status, strategy.detail) == (OK, expected)
    config.write_text(config.read_text().replace("registry:v0001", "registry:v0009"))
    strategy = _by_check(await diagnose(config, installation, timeout_s=1))["strategy"]
    assert strategy.status == FAIL
    assert "account 'pinned': strategy 'registry:v0009' names a model the " in strategy.detail


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "doctor", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=os.environ | {"COLUMNS": "1000"})


def test_the_command_prints_each_check_and_exits_1_on_failure(tmp_path: Path, installation: Path) -> None:
    config = _config(tmp_path, _closed_port_url())
    result = _doctor("--config", str(config), "--db", str(installation), "--timeout", "1")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   config") and f"file {config}" in lines[0]
    assert any(line.startswith("ok   ledger") for line in lines)
    assert any(line.startswith("FAIL exchange REST") for line in lines)
    assert any(line.strip().startswith("fix: check [exchange] rest_url") for line in lines)
    assert lines[-1].endswith("2 failed")


def test_a_bad_config_fails_first_and_alone(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[env]\ncommission = -1\n")
    result = _doctor("--config", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL config") and "invalid value for env.commission: -1" in result.stdout
    assert "1 checks: 0 ok, 0 warning(s), 1 failed" in result.stdout


async def test_an_http_403_is_reported_as_a_ban_or_blocked_region(tmp_path: Path, installation: Path,
                                                                   btc_candles: pd.DataFrame) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:300])], history=250)
    async with ReplayServer(market, speed=1.0, faults=parse_faults(["forbidden:1"])) as server:
        findings = _by_check(await diagnose(_config(tmp_path, server.rest_url), installation))
    rest = findings["exchange REST"]
    assert rest.status == FAIL
    assert "HTTP 403 Forbidden (access too frequent): an IP ban (more than 600 requests in 5 s) or a blocked " \
           "region" in rest.detail
    assert "10 minutes" in rest.fix and "region" in rest.fix
    assert [p for _, p in server.http_requests if p.startswith("/v5/market")] == ["/v5/market/time"]  # once: no retry
