"""The dashboard on a ledger of 1,000,000 decisions: first pages, zoom and pan, against
loading the same rows with ``pandas.read_sql`` in the same run.

The ledger holds one symbol's million 1-minute candles (the bundled real BTCUSDT sample,
extended by replaying its own candle shapes), a seeded random trader's decisions on every
one of them, and a service's history (``state.sample_ledger``). It is built once into
``--dir`` (about three minutes) and reused.

Measured, against ``shadow ui`` running as its own process, seen by an HTTP client:

1. what each page asks for first, cold (the server's first request) and warm;
2. zoom and pan on the market chart: the whole ledger in daily bars (cold, then from the
   coarse-bar cache), and twenty windows of 1,000 minute bars walking back in time;
3. the baseline: the rows a dashboard without windows would load, ``pd.read_sql`` of the
   symbol's candles, equity rows and trades;
4. with ``--browser`` (Debian's chromium and chromium-driver), the time until the market
   and equity pages have drawn their data in headless Chromium.

Run: ``python -m benchmarks.bench_dashboard [--decisions 1000000] [--browser]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pandas as pd

from benchmarks.common import REPO, real_candles
from state.sample_ledger import build_sample_ledger, ledger_counts


def build(path: Path, decisions: int) -> None:
    if path.exists():
        print(f"ledger {path} (reused): {ledger_counts(path)}")
        return
    start = time.perf_counter()
    partial = path.with_suffix(".partial")
    for stale in path.parent.glob(partial.name + "*"):
        stale.unlink()
    asyncio.run(build_sample_ledger(partial, {"BTCUSDT": real_candles(decisions)}, trade_probability=0.02))
    partial.rename(path)
    print(f"ledger {path} built in {time.perf_counter() - start:.0f} s: {ledger_counts(path)}")


def get(url: str) -> tuple[float, int]:
    """Milliseconds for one GET (body read), and the body's size."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return (time.perf_counter() - start) * 1000, len(body)


def serve(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "bot", "ui", "--db", str(db), "--http", f"127.0.0.1:{port}"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ | {"PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/static/css/app.css", timeout=1).read()
            return process, base
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("shadow ui did not start")


FIRST_REQUESTS = {
    "overview": ["/api/overview"],
    "market": ["/api/markets", "/api/candles?symbol=BTCUSDT&limit=1000"],
    "equity": ["/api/markets", "/api/equity?points=1500"],
    "trades": ["/api/markets", "/api/trade-models", "/api/trades?limit=50"],
    "models": ["/api/markets", "/api/timeline?limit=100"],
}


def first_pages(base: str) -> dict[str, tuple[float, float]]:
    """Per page: ms for its first requests cold (one after another, as the page sends them
    after each other) and warm (median of 5)."""
    results = {}
    for page, paths in FIRST_REQUESTS.items():
        cold = sum(get(base + p)[0] for p in paths)
        warm = statistics.median(sum(get(base + p)[0] for p in paths) for _ in range(5))
        results[page] = (cold, warm)
    return results


def zoom_and_pan(base: str) -> dict[str, float]:
    day = 86_400_000
    whole_cold, size = get(f"{base}/api/candles?symbol=BTCUSDT&level={day}&limit=5000")
    whole_warm = statistics.median(get(f"{base}/api/candles?symbol=BTCUSDT&level={day}&limit=5000")[0]
                                   for _ in range(5))
    hour_cold = get(f"{base}/api/candles?symbol=BTCUSDT&level=3600000&limit=2000")[0]
    pans, end = [], None
    for _ in range(20):
        url = f"{base}/api/candles?symbol=BTCUSDT&limit=1000" + (f"&end={end}" if end else "")
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            window = json.loads(response.read())
        pans.append((time.perf_counter() - start) * 1000)
        end = window["bars"][0][0] - 1
    return {"whole ledger, daily bars, cold": whole_cold, "whole ledger, daily bars, cached": whole_warm,
            "2,000 hourly bars, cold": hour_cold, "pan: 1,000 minute bars, p50": statistics.median(pans),
            "pan: 1,000 minute bars, max": max(pans), "whole ledger payload KB": size / 1000}


def read_sql_baseline(db: Path) -> dict[str, tuple[float, int]]:
    """What loading the same data without windows costs: pandas.read_sql of every row."""
    results = {}
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        for name, sql in (("candles", ("SELECT open_time_ms, open, high, low, close, volume FROM candles "
                                       "WHERE symbol = 'BTCUSDT' ORDER BY open_time_ms")),
                          ("equity", ("SELECT open_time_ms, equity, close, drawdown, side FROM equity "
                                      "WHERE symbol = 'BTCUSDT' ORDER BY open_time_ms")),
                          ("trades", "SELECT * FROM v_trades ORDER BY exit_time_ms DESC")):
            start = time.perf_counter()
            frame = pd.read_sql_query(sql, conn)
            results[name] = ((time.perf_counter() - start) * 1000, len(frame))
    return results


def browser_times(base: str) -> dict[str, float]:
    from tests.bot.web.browser import Browser
    from tests.bot.web.test_browser import READY

    browser = Browser()
    try:
        times = {}
        for page in ("/market", "/equity", "/trades", "/"):
            start = time.perf_counter()
            browser.open(base + page, READY[page], timeout_s=60)
            times[page] = (time.perf_counter() - start) * 1000
        return times
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=REPO / "benchmarks" / "out" / "dashboard")
    parser.add_argument("--browser", action="store_true", help="also time the pages in headless Chromium")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"ledger-{args.decisions}.sqlite"
    build(db, args.decisions)
    print(f"ledger size {db.stat().st_size / 1e6:,.0f} MB")

    baseline = read_sql_baseline(db)
    process, base = serve(db)
    try:
        pages = first_pages(base)
        zoom = zoom_and_pan(base)
        browser = browser_times(base) if args.browser else {}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    print(f"\n{'first requests of a page':34} {'cold ms':>9} {'warm ms':>9}")
    for page, (cold, warm) in pages.items():
        print(f"{page:34} {cold:9.1f} {warm:9.1f}")
    print(f"\n{'market chart':34} {'ms':>9}")
    for name, value in zoom.items():
        print(f"{name:34} {value:9.1f}")
    print(f"\n{'baseline: pandas.read_sql':34} {'ms':>9} {'rows':>10}")
    for name, (ms, rows) in baseline.items():
        print(f"{name:34} {ms:9.1f} {rows:10,}")
    naive_market = baseline["candles"][0] + baseline["trades"][0]
    naive_equity = baseline["equity"][0]
    print(f"\nmarket page, first requests: {pages['market'][0]:.0f} ms cold vs {naive_market:.0f} ms to read_sql the "
          f"candles and trades: {naive_market / pages['market'][0]:.0f}x")
    print(f"equity page, first requests: {pages['equity'][0]:.0f} ms cold, {pages['equity'][1]:.0f} ms warm vs "
          f"{naive_equity:.0f} ms to read_sql the equity rows: {naive_equity / pages['equity'][0]:.1f}x cold")
    for page, ms in browser.items():
        print(f"headless Chromium, {page} drawn with its data: {ms:.0f} ms")


if __name__ == "__main__":
    main()
