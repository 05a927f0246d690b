"""Screenshots of every dashboard page for the README (docs/img/dashboard_*.png).

Builds the sample ledger (``state.sample_ledger``: 6,000 real BTCUSDT minutes of March
2023, two accounts' seeded random traders' decisions, a registry with a rejected and a promoted
candidate, a failed retrain, a rollback, a risk stop), serves it with ``shadow ui``'s
server and photographs each page in headless Chromium (Debian's chromium and
chromium-driver), at desktop width and the overview and market also at a phone's.

Run from the repository root: ``python scripts/dashboard_screenshots.py [--out docs/img]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.web.server import LedgerDashboard  # noqa: E402
from env.candles import load_candles  # noqa: E402
from state.sample_ledger import build_sample_ledger  # noqa: E402
from tests.bot.web.browser import Browser, InThread  # noqa: E402
from tests.bot.web.test_browser import READY  # noqa: E402

PAGES = {"/": "overview", "/market": "market", "/equity": "equity", "/trades": "trades", "/models": "models"}
PHONE = ("/", "/market")
ACCOUNTS = ("main", "challenger")  # two paper accounts side by side, as [[accounts]] runs them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shadow-screens-"))
    candles = load_candles(REPO / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz").iloc[:6000].reset_index(drop=True)
    db = work / "shadow.sqlite"
    asyncio.run(build_sample_ledger(db, {"BTCUSDT": candles}, trade_probability=0.04, accounts=ACCOUNTS))
    served = InThread(lambda: LedgerDashboard(db, "127.0.0.1", 0))
    try:
        desktop = Browser(width=1440, height=900)
        try:
            for path, name in PAGES.items():
                desktop.open(served.value.url + path, READY[path])
                desktop.wait("document.getElementById('live').textContent === 'live'")
                out = args.out / f"dashboard_{name}.png"
                desktop.driver.save_screenshot(str(out))
                print(out)
        finally:
            desktop.close()
        phone = Browser(width=390, height=844)
        try:
            phone.phone()
            for path in PHONE:
                phone.open(served.value.url + path, READY[path])
                out = args.out / f"dashboard_{PAGES[path]}_phone.png"
                phone.driver.save_screenshot(str(out))
                print(out)
        finally:
            phone.close()
    finally:
        served.stop()


if __name__ == "__main__":
    main()
