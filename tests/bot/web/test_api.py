"""The dashboard's HTTP surface on a sample ledger: read-only, locked down, every list
bounded and paged, answers equal to the same SQL, bad parameters named."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from bot.web.app import PAGES, STATIC_DIR
from bot.web.server import LedgerDashboard
from state.replay import replay_decisions, write_records
from state.sample_ledger import SampleSpan
from tests.ledgers import ACCOUNTS, HOSTILE_STRATEGY, HOSTILE_SYMBOL


async def _get(url: str, **params: object) -> tuple[int, object]:
    async with aiohttp.ClientSession() as client, client.get(url, params=params) as response:
        kind = response.headers.get("Content-Type", "")
        return response.status, await (response.json() if "json" in kind else response.text())


async def test_only_get_and_head_exist(ui: LedgerDashboard) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/", "/market", "/api/trades", "/api/events", "/static/js/common.js", "/no/such/page"):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                async with client.request(method, ui.url + path) as response:
                    assert response.status == 405, (method, path)
                    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
            async with client.head(ui.url + path) as response:
                assert response.status in (200, 404)


async def test_every_response_carries_a_policy_that_allows_no_inline_script(ui: LedgerDashboard) -> None:
    async with aiohttp.ClientSession() as client:
        for path in (*PAGES, "/api/overview", "/static/css/app.css", "/missing", "/api/candles"):
            async with client.get(ui.url + path) as response:
                policy = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["X-Frame-Options"] == "DENY"
        async with client.get(ui.url + "/api/events") as response:  # a stream gets them too
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_pages_hold_no_inline_script_or_style_and_scripts_never_write_html() -> None:
    for page in STATIC_DIR.glob("*.html"):
        html = page.read_text()
        assert all('src="/static/' in tag for tag in re.findall(r"<script[^>]*>", html)), page.name
        assert not re.search(r"<script[^>]*>\s*[^<\s]", html), f"{page.name}: inline script"
        assert not re.search(r"\son[a-z]+=|<style|\sstyle=", html), f"{page.name}: inline handler or style"
    for script in (STATIC_DIR / "js").glob("*.js"):
        code = script.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", code), script.name


def test_the_wheel_ships_every_static_file() -> None:
    import tomllib

    from tests.conftest import REPO

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bot"]
    package = REPO / "bot"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert {p for p in STATIC_DIR.rglob("*") if p.is_file()} == shipped


async def test_bad_parameters_are_named(ui: LedgerDashboard) -> None:
    cases = [
        ("/api/candles", {}, 400, "symbol: missing"),
        ("/api/candles", {"symbol": "DOGEUSDT"}, 404, "no market 'DOGEUSDT'"),
        ("/api/candles", {"symbol": "BTCUSDT", "level": 123}, 400, "level=123"),
        ("/api/candles", {"symbol": "BTCUSDT", "limit": 0}, 400, "limit=0"),
        ("/api/candles", {"symbol": "BTCUSDT", "limit": 10**6}, 400, "limit=1000000"),
        ("/api/candles", {"symbol": "BTCUSDT", "end": "soon"}, 400, "end='soon'"),
        ("/api/trades", {"sort": "symbol; DROP TABLE trades"}, 400, "sort="),
        ("/api/trades", {"side": "sideways"}, 400, "side='sideways'"),
        ("/api/trades", {"limit": 501}, 400, "limit=501"),
        ("/api/trades", {"offset": -1}, 400, "offset=-1"),
        ("/api/timeline", {"before": "yesterday"}, 400, "before='yesterday'"),
        ("/api/timeline", {"limit": 501}, 400, "limit=501"),
        ("/api/equity", {"points": 10**6}, 400, "points=1000000"),
    ]
    for path, params, status, message in cases:
        got, body = await _get(ui.url + path, **params)
        assert (got, message in body["error"]) == (status, True), (path, params, body)


async def test_candle_windows_walk_back_over_the_whole_series(ui: LedgerDashboard,
                                                            sample_ledger: tuple[Path, SampleSpan]) -> None:
    times: list[int] = []
    end = None
    while True:
        _, page = await _get(ui.url + "/api/candles", symbol="BTCUSDT", limit=700, **({"end": end} if end else {}))
        assert len(page["bars"]) <= 700
        times = [bar[0] for bar in page["bars"]] + times
        if not page["more_before"]:
            break
        end = page["bars"][0][0] - 1
    with closing(sqlite3.connect(sample_ledger[0])) as conn:
        stored = [t for (t,) in conn.execute("SELECT open_time_ms FROM candles WHERE symbol = 'BTCUSDT' "
                                             "ORDER BY open_time_ms")]
    assert times == stored
    _, hourly = await _get(ui.url + "/api/candles", symbol="BTCUSDT", level=3_600_000)
    assert len(hourly["bars"]) == 50 and not hourly["more_before"] and hourly["levels_ms"][0] == 60_000


async def test_trades_pages_and_csv_are_the_filtered_rows(ui: LedgerDashboard,
                                                         sample_ledger: tuple[Path, SampleSpan]) -> None:
    with closing(sqlite3.connect(sample_ledger[0])) as conn:
        expected = [t for (t,) in conn.execute("SELECT trade_id FROM v_trades WHERE symbol = 'BTCUSDT' AND "
                                               "side = 'short' ORDER BY net_pnl ASC, trade_id ASC")]
    ids: list[int] = []
    offset = 0
    while True:
        _, page = await _get(ui.url + "/api/trades", symbol="BTCUSDT", side="short", sort="net_pnl", order="asc",
                             offset=offset, limit=10)
        ids += [row[0] for row in page["rows"]]
        offset += 10
        if offset >= page["total"]:
            break
    assert ids == expected and page["total"] == len(expected) > 10
    _, text = await _get(ui.url + "/api/trades.csv", symbol="BTCUSDT", side="short", sort="net_pnl", order="asc")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["trade_id", "account", "symbol"] and [int(r[0]) for r in rows[1:]] == expected


async def test_csv_cells_cannot_run_as_spreadsheet_formulas(hostile_ledger: Path) -> None:
    async with LedgerDashboard(hostile_ledger, "127.0.0.1", 0) as ui:
        _, text = await _get(ui.url + "/api/trades.csv")
    header, first = list(csv.reader(io.StringIO(text)))[:2]
    row = dict(zip(header, first, strict=True))
    assert row["symbol"] == HOSTILE_SYMBOL  # "<" starts no formula: left as it is
    assert row["strategy"] == "'" + HOSTILE_STRATEGY  # "=..." would run: quoted
    negative = next(r for r in list(csv.reader(io.StringIO(text)))[1:] if r[header.index("net_pnl")].startswith("-"))
    assert float(negative[header.index("net_pnl")]) < 0  # numbers stay numbers, negative ones too


async def test_overview_judges_a_ledger_without_its_daemon(ui: LedgerDashboard) -> None:
    _, doc = await _get(ui.url + "/api/overview")
    assert doc["mode"] == "ledger" and doc["health"]["source"] == "ledger"
    assert doc["health"]["status"] == "failing"
    assert any(p.startswith("BTCUSDT: newest candle closed") and p.endswith(" h ago (limit 150 s)")
               for p in doc["health"]["problems"])
    [account] = doc["accounts"]
    assert account["account"] == "main" and [s["symbol"] for s in account["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert account["equity"] == pytest.approx(sum(s["equity"] for s in account["symbols"]))
    assert doc["run"]["run_id"] == 2 and doc["run"]["stopped_at"] is None


async def test_equity_has_at_most_the_points_asked_for(ui: LedgerDashboard) -> None:
    _, curve = await _get(ui.url + "/api/equity", symbol="BTCUSDT", points=10)
    assert 0 < len(curve["times_ms"]) <= 10 and curve["level_ms"] == 21_600_000  # 3,000 minutes in 6 h bars
    assert len(curve["equity"]) == len(curve["buy_and_hold"]) == len(curve["flat"]) == len(curve["drawdown"])


async def test_a_commit_reaches_an_open_event_stream_within_a_second(tmp_path: Path, btc_candles) -> None:
    path = tmp_path / "l.sqlite"
    records = [r for r, _ in replay_decisions(btc_candles.iloc[:300], seed=2)]
    write_records(path, records[:250])
    async with LedgerDashboard(path, "127.0.0.1", 0) as ui, aiohttp.ClientSession() as client, \
            client.get(ui.url + "/api/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        await asyncio.sleep(0.5)  # the watch has taken its first look
        delays = []
        for record in records[250:253]:
            committed = time.monotonic()
            await asyncio.to_thread(write_records, path, [record])
            while not (line := (await stream.content.readline()).decode()).startswith("data:"):
                pass
            delays.append(time.monotonic() - committed)
            assert f'"BTCUSDT": {record.candle.open_time_ms}' in line
    assert max(delays) < 1.0, delays


async def test_a_ledger_of_several_accounts_is_shown_per_account(accounts_ledger: tuple[Path, SampleSpan]) -> None:
    """Two paper accounts trade the same candles: the overview, the markets, the chart's trade
    marks and exposure, the equity curve and the trades each show one account's own rows."""
    path = accounts_ledger[0]
    with closing(sqlite3.connect(path)) as conn:
        equity = dict(conn.execute("SELECT account, sum(equity) FROM positions GROUP BY account").fetchall())
        trades = dict(conn.execute("SELECT account, count(*) FROM trades WHERE symbol = 'BTCUSDT' "
                                   "GROUP BY account").fetchall())
        last = dict(conn.execute("SELECT account, equity FROM positions WHERE symbol = 'BTCUSDT'").fetchall())
    assert set(equity) == set(ACCOUNTS) and trades["main"] != trades["fast"] and last["main"] != last["fast"]
    async with LedgerDashboard(path, "127.0.0.1", 0) as ui:
        _, doc = await _get(ui.url + "/api/overview")
        assert {a["account"]: a["equity"] for a in doc["accounts"]} == pytest.approx(equity)
        stale = [p.split(":")[0] for p in doc["health"]["problems"] if "newest candle closed" in p]
        assert sorted(stale) == ["BTCUSDT", "ETHUSDT"]  # a symbol's feed is judged once, not once per account
        _, only = await _get(ui.url + "/api/overview", account="fast")
        assert [a["account"] for a in only["accounts"]] == ["fast"]
        _, found = await _get(ui.url + "/api/markets")
        assert found["accounts"] == sorted(ACCOUNTS)
        assert sorted((m["account"], m["symbol"]) for m in found["markets"]) == sorted(
            (a, s) for a in ACCOUNTS for s in ("BTCUSDT", "ETHUSDT"))
        for account in ACCOUNTS:
            _, chart = await _get(ui.url + "/api/candles", account=account, symbol="BTCUSDT", limit=5000)
            assert chart["market"]["account"] == account
            exits = [m for m in chart["marks"] if m["kind"] == "exit"]
            assert len(exits) == trades[account]
            _, curve = await _get(ui.url + "/api/equity", account=account, symbol="BTCUSDT")
            assert curve["equity"][-1] == last[account]
            _, page = await _get(ui.url + "/api/trades", account=account, symbol="BTCUSDT", limit=500)
            assert page["total"] == trades[account]
            assert {row[1] for row in page["rows"]} == {account}
        status, missing = await _get(ui.url + "/api/candles", account="nobody", symbol="BTCUSDT")
        assert status == 404 and "of account 'nobody'" in missing["error"]


async def test_the_event_stream_names_the_account_of_each_decision(tmp_path: Path, btc_candles) -> None:
    path = tmp_path / "l.sqlite"
    main = [r for r, _ in replay_decisions(btc_candles.iloc[:260], seed=2)]
    fast = [r for r, _ in replay_decisions(btc_candles.iloc[:260], seed=3, account="fast")]
    write_records(path, main[:250] + fast[:250])
    async with LedgerDashboard(path, "127.0.0.1", 0) as ui, aiohttp.ClientSession() as client, \
            client.get(ui.url + "/api/events") as stream:
        await asyncio.sleep(0.5)  # the watch has taken its first look
        await asyncio.to_thread(write_records, path, [fast[250]])
        while not (line := (await stream.content.readline()).decode()).startswith("data:"):
            pass
    change = json.loads(line.removeprefix("data:"))
    assert change["accounts"] == {"fast": {"BTCUSDT": fast[250].candle.open_time_ms}}
    assert change["decided"] == {"BTCUSDT": fast[250].candle.open_time_ms}
