"""The dashboard in a real browser (headless Chromium through Selenium).

Against a daemon fed by the local Bybit replay server: every page loads without a console
error (a CSP violation is one), a new candle appears on the open market page within a
second of its commit, and the trade markers in view are the ledger's trades in that range,
after panning and zoomed out over the whole ledger too. Against ``shadow ui`` on sample
ledgers: the trade filters change the table exactly as the same SQL would, names holding
markup and script render as text, each of two accounts has its own overview section and
market chart, and every page fits a phone's width.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from bot.web.app import PAGES
from bot.web.server import LedgerDashboard
from state.sample_ledger import SampleSpan
from tests.bot.service_harness import HISTORY, RunningService, running_service
from tests.bot.web.browser import Browser, InThread
from tests.ledgers import HOSTILE_STRATEGY, HOSTILE_SYMBOL

READY = {  # when each page has drawn its data
    "/": "document.querySelectorAll('#accounts tbody tr').length > 0",
    "/market": "document.getElementById('last-bar').dataset.time > 0",
    "/equity": "document.querySelectorAll('#summary .card').length > 0",
    "/trades": "document.querySelectorAll('#trades tbody tr').length > 0",
    "/models": "document.querySelectorAll('#timeline li').length > 0",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """A daemon replaying 240 real candles at 10 a second, its dashboard, and each candle's commit time."""
    db = tmp_path_factory.mktemp("browser") / "shadow.sqlite"
    frame = btc_candles.iloc[: HISTORY + 240].reset_index(drop=True)
    committed: dict[int, float] = {}
    served: InThread[RunningService] = InThread(lambda: running_service(frame, db, speed=10.0))
    service = served.value
    service.daemon.listeners.append(lambda s, item, _: committed.setdefault(item.candle.open_time_ms,
                                                                            time.monotonic()))
    while len(committed) < 40:  # trades to show
        time.sleep(0.05)
    yield {"served": served, "service": service, "db": db, "committed": committed}
    served.stop()


@pytest.fixture(scope="module")
def sample_ui(sample_ledger: tuple[Path, SampleSpan]) -> Iterator[LedgerDashboard]:
    served = InThread(lambda: LedgerDashboard(sample_ledger[0], "127.0.0.1", 0))
    yield served.value
    served.stop()


def test_every_page_loads_without_a_console_error(browser: Browser, daemon: dict[str, Any]) -> None:
    base = daemon["service"].api.url
    browser.console_errors()
    for path, ready in READY.items():
        browser.open(base + path, ready)
        browser.wait("document.getElementById('live').textContent === 'live'")
        assert browser.console_errors() == [], path
    assert set(READY) == set(PAGES)


def test_a_new_candle_appears_on_the_open_page_within_a_second(browser: Browser, daemon: dict[str, Any]) -> None:
    browser.open(daemon["service"].api.url + "/market", READY["/market"])
    committed: dict[int, float] = daemon["committed"]
    delays = []
    for _ in range(3):
        shown = int(browser.js("document.getElementById('last-bar').dataset.time"))
        newer = shown + 60_000
        deadline = time.monotonic() + 10
        while newer not in committed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert newer in committed, "the daemon decided no new candle"
        browser.wait(f"document.getElementById('last-bar').dataset.time >= {newer}", 5)
        delays.append(time.monotonic() - committed[newer])
    assert max(delays) < 1.0, delays
    assert browser.console_errors() == []


def _in_view(browser: Browser) -> dict[str, int]:
    data = browser.js("Object.assign({}, document.getElementById('in-view').dataset)")
    return {k: int(float(v)) for k, v in data.items()}


def _ledger_trades(db: Path, start_ms: int, end_ms: int) -> tuple[int, int]:
    with closing(sqlite3.connect(db)) as conn:
        entries = conn.execute("SELECT count(*) FROM trades WHERE entry_time_ms BETWEEN ? AND ?",
                               (start_ms, end_ms)).fetchone()[0]
        entries += conn.execute("SELECT count(*) FROM positions WHERE side <> 0 AND entry_time_ms BETWEEN ? AND ?",
                                (start_ms, end_ms)).fetchone()[0]
        exits = conn.execute("SELECT count(*) FROM trades WHERE exit_time_ms BETWEEN ? AND ?",
                             (start_ms, end_ms)).fetchone()[0]
    return entries, exits


def test_markers_in_view_are_the_ledgers_trades_when_panned_and_zoomed_out(browser: Browser,
                                                                           daemon: dict[str, Any]) -> None:
    daemon["served"].call(lambda: daemon["service"].finished(60))  # the replay is over: the ledger holds still
    browser.open(daemon["service"].api.url + "/market", READY["/market"])
    browser.wait("document.getElementById('in-view').dataset.entries !== undefined")
    view = _in_view(browser)
    assert view["level"] == 60_000 and view["entries"] + view["exits"] > 5
    assert (view["entries"], view["exits"]) == _ledger_trades(daemon["db"], view["from"], view["to"])
    assert (view["entryMarks"], view["exitMarks"]) == (view["entries"], view["exits"])  # one marker per trade

    chart = browser.driver.find_element(By.ID, "chart")
    drag = ActionChains(browser.driver).move_to_element(chart).click_and_hold()
    for _ in range(10):  # drag right in steps, as a hand does: older candles come into view
        drag = drag.move_by_offset(35, 0)
    drag.release().perform()
    browser.wait(f"document.getElementById('in-view').dataset.to < {view['to']}")
    panned = _in_view(browser)
    assert (panned["entries"], panned["exits"]) == _ledger_trades(daemon["db"], panned["from"], panned["to"])

    browser.driver.find_element(By.ID, "all").click()
    browser.wait(f"document.getElementById('in-view').dataset.from < {panned['from']}")
    whole = _in_view(browser)
    with closing(sqlite3.connect(daemon["db"])) as conn:
        first, last = conn.execute("SELECT min(open_time_ms), max(open_time_ms) FROM candles").fetchone()
    assert (whole["from"], whole["to"]) == (first, last)  # every candle in view
    assert (whole["entries"], whole["exits"]) == _ledger_trades(daemon["db"], first, last)

    browser.driver.find_element(By.XPATH, "//div[@id='levels']/button[text()='1h']").click()
    browser.wait("document.getElementById('in-view').dataset.level == 3600000")
    hourly = _in_view(browser)
    assert (hourly["entries"], hourly["exits"]) == _ledger_trades(daemon["db"], first, last)
    assert hourly["entryMarks"] < hourly["entries"]  # counted per bar at a coarse resolution
    assert browser.console_errors() == []


def _table_ids(browser: Browser) -> list[int]:
    return [int(c.text) for c in browser.driver.find_elements(By.CSS_SELECTOR, "#trades tbody td:first-child")]


def test_filters_change_the_table_as_the_same_sql_would(browser: Browser, sample_ui: LedgerDashboard,
                                                        sample_ledger: tuple[Path, SampleSpan]) -> None:
    browser.open(sample_ui.url + "/trades", READY["/trades"])
    with closing(sqlite3.connect(sample_ledger[0])) as conn:
        def sql(where: str, order: str = "exit_time_ms DESC, trade_id DESC", *params: object) -> list[int]:
            return [t for (t,) in conn.execute(f"SELECT trade_id FROM v_trades WHERE {where} ORDER BY {order} "
                                               "LIMIT 50", params)]

        assert _table_ids(browser) == sql("1 = 1")
        form = {name: Select(browser.driver.find_element(By.ID, name)) for name in ("symbol", "model", "side")}
        form["symbol"].select_by_value("BTCUSDT")
        browser.wait("document.getElementById('count').dataset.total > 0")
        form["side"].select_by_value("short")
        form["model"].select_by_value("ppo-0003")
        expected = sql("symbol = 'BTCUSDT' AND side = 'short' AND model_version = 'ppo-0003'")
        browser.wait(f"document.querySelectorAll('#trades tbody tr').length === {len(expected)}")
        assert _table_ids(browser) == expected and len(expected) >= 3
        page_before = len(expected)

        noon = conn.execute("SELECT max(exit_time_ms) FROM trades WHERE symbol = 'BTCUSDT'").fetchone()[0] - 43_200_000
        day = pd.Timestamp(noon, unit="ms").strftime("%Y-%m-%d")  # closed on the day before the last, or later
        browser.js("(input => { input.value = arguments[1]; input.dispatchEvent(new Event('change', "
                   "{bubbles: true})); })(arguments[0])", browser.driver.find_element(By.ID, "from"), day)
        from_ms = int(pd.Timestamp(day, tz="UTC").value // 1_000_000)
        expected = sql("symbol = 'BTCUSDT' AND side = 'short' AND model_version = 'ppo-0003' "
                       f"AND exit_time_ms >= {from_ms}")
        browser.wait(f"document.getElementById('count').dataset.total == {len(expected)}")
        assert _table_ids(browser) == expected and 0 < len(expected) < page_before

        form["model"].select_by_value("")
        form["side"].select_by_value("")
        expected = sql(f"symbol = 'BTCUSDT' AND exit_time_ms >= {from_ms}")
        browser.wait(f"document.getElementById('count').dataset.total == {len(expected)}")  # the table settled
        browser.driver.find_element(By.CSS_SELECTOR, "#trades th:nth-child(11) button").click()  # Net PnL, descending
        expected = sql(f"symbol = 'BTCUSDT' AND exit_time_ms >= {from_ms}", "net_pnl DESC, trade_id DESC")
        browser.wait(f"document.querySelector('#trades th:nth-child(11)').getAttribute('aria-sort') === 'descending'"
                     f" && document.getElementById('count').dataset.total == {len(expected)}")
        assert _table_ids(browser) == expected
        csv_link = browser.js("document.getElementById('csv').getAttribute('href')")
        assert "symbol=BTCUSDT" in csv_link and "sort=net_pnl" in csv_link and f"from={from_ms}" in csv_link
    assert browser.console_errors() == []


def test_names_holding_markup_and_script_render_as_text(browser: Browser, hostile_ledger: Path) -> None:
    served = InThread(lambda: LedgerDashboard(hostile_ledger, "127.0.0.1", 0))
    try:
        url = served.value.url
        for path, ready in READY.items():
            browser.open(url + path, ready)
            assert browser.js("window.__pwned") is None, path
            assert browser.js("document.querySelectorAll('img, script:not([src])').length") == 0, path
            assert browser.console_errors() == [], path
        browser.open(url + "/", READY["/"])
        cells = [c.text for c in browser.driver.find_elements(By.CSS_SELECTOR, "#accounts td.name")]
        assert HOSTILE_SYMBOL in cells and f"{HOSTILE_STRATEGY} ppo-0001" in cells
        browser.open(url + "/trades", READY["/trades"])
        symbol_cell = browser.driver.find_element(By.CSS_SELECTOR, "#trades tbody td:nth-child(3)")  # after account
        assert symbol_cell.text == HOSTILE_SYMBOL
        browser.open(url + "/market", READY["/market"])
        assert browser.js("document.querySelector('#symbol option').textContent") == f"{HOSTILE_SYMBOL} · 1m"
    finally:
        served.stop()


def test_each_account_has_its_own_section_chart_and_trades(browser: Browser,
                                                           accounts_ledger: tuple[Path, SampleSpan]) -> None:
    """A ledger of two accounts: the overview shows a section per account, and the market
    chart shows the chosen account's trades (switched with its account selector)."""
    def account_trades(account: str) -> tuple[int, int]:
        with closing(sqlite3.connect(accounts_ledger[0])) as conn:
            exits = conn.execute("SELECT count(*) FROM trades WHERE account = ? AND symbol = 'BTCUSDT'",
                                 (account,)).fetchone()[0]
            entries = exits + conn.execute("SELECT count(*) FROM positions WHERE account = ? AND symbol = 'BTCUSDT' "
                                           "AND side <> 0", (account,)).fetchone()[0]
        return entries, exits

    served = InThread(lambda: LedgerDashboard(accounts_ledger[0], "127.0.0.1", 0))
    browser.console_errors()  # a page of another test's server, gone, may have failed to reconnect
    try:
        url = served.value.url
        browser.open(url + "/", READY["/"])
        names = [e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, "#accounts .account-name")]
        assert names == ["fast", "main"]
        browser.open(url + "/market?account=fast&symbol=BTCUSDT", READY["/market"])
        seen = {}
        for account in ("fast", "main"):
            Select(browser.driver.find_element(By.ID, "account")).select_by_value(account)
            browser.wait(f"new URLSearchParams(location.search).get('account') === '{account}'")
            browser.driver.find_element(By.ID, "all").click()
            expected = account_trades(account)
            browser.wait(f"document.getElementById('in-view').dataset.exits == {expected[1]}")
            view = _in_view(browser)
            seen[account] = (view["entries"], view["exits"])
            assert seen[account] == expected, account
        assert seen["fast"] != seen["main"]

        browser.open(url + "/trades", READY["/trades"])
        symbols = [o.get_attribute("value") for o in Select(browser.driver.find_element(By.ID, "symbol")).options]
        assert symbols == ["", "BTCUSDT", "ETHUSDT"]  # each symbol once, however many accounts trade it
        assert browser.js("document.querySelector('#trades th:nth-child(2)').textContent") == "Account"
        Select(browser.driver.find_element(By.ID, "account")).select_by_value("main")
        with closing(sqlite3.connect(accounts_ledger[0])) as conn:
            total = conn.execute("SELECT count(*) FROM trades WHERE account = 'main'").fetchone()[0]
        browser.wait(f"document.getElementById('count').dataset.total == {total}")
        shown = {c.text for c in browser.driver.find_elements(By.CSS_SELECTOR, "#trades tbody td:nth-child(2)")}
        assert shown == {"main"}
        assert browser.console_errors() == []
    finally:
        served.stop()


def test_the_models_page_shows_both_verdicts_of_a_trialled_candidate(browser: Browser,
                                                                     sample_ui: LedgerDashboard) -> None:
    browser.open(sample_ui.url + "/models", READY["/models"])
    trial = browser.driver.find_element(By.CSS_SELECTOR, "#timeline li[data-kind='trial']")
    assert "Live trial of ppo-0004: retired" in trial.text
    assert "sharpe over 240 live candles: candidate -0.35 · incumbent 0.18 · flat 0.00" in trial.text
    assert "trial-retired" in trial.get_attribute("class")
    risks = [r.text for r in browser.driver.find_elements(By.CSS_SELECTOR, "#timeline li[data-kind='risk']")]
    assert risks and all("(account " in r for r in risks)  # two accounts' stops are told apart
    runs = browser.driver.find_elements(By.CSS_SELECTOR, "#timeline li[data-kind='retrain']")
    (holdout,) = [r for r in runs if "candidate ppo-0004" in r.text]
    assert "BTCUSDT sharpe on the holdout: candidate 0.71 · incumbent 0.42" in holdout.text
    assert browser.console_errors() == []


def test_every_page_fits_a_phone(sample_ui: LedgerDashboard) -> None:
    phone = Browser(width=390, height=844)
    try:
        phone.phone()
        for path, ready in READY.items():
            phone.open(sample_ui.url + path, ready)
            width = phone.js("document.documentElement.scrollWidth")
            assert width <= 390, f"{path}: the page is {width} px wide on a 390 px screen"
            assert phone.js("document.querySelector('nav').getBoundingClientRect().height") > 0
        assert phone.console_errors() == []
    finally:
        phone.close()
