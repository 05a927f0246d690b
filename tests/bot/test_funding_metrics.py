"""``/metrics`` counts the funding a perpetual's positions paid and received, and shows the
announced next funding rate and time."""

from __future__ import annotations

import random

from bot.bybit.funding import FundingFeed
from bot.bybit.schemas import TickerData
from bot.daemon import Daemon, DaemonReport, SymbolStats
from bot.engine import ServingStrategy, SymbolEngine
from bot.metrics import DaemonMetrics
from config.settings import EnvSettings, ExchangeSettings, RiskSettings, Settings
from strategies.specs import build_strategy
from tests.bot.bybit.test_funding_feed import FakeRest, T


async def test_metrics_count_funding_paid_and_received_per_symbol(tmp_path) -> None:
    daemon = Daemon(Settings(ledger={"db_path": tmp_path / "l.sqlite"}))
    daemon.engines = {"BTCUSDT": SymbolEngine("BTCUSDT", "1m", EnvSettings(), RiskSettings(),
                                              ServingStrategy(build_strategy("flat"), "flat"), perpetual=True)}
    daemon.report = DaemonReport(1, {"BTCUSDT": SymbolStats(funding_paid=1.5, funding_received=0.25)})
    daemon.funding = FundingFeed(FakeRest({}), ExchangeSettings(), random.Random(0))  # type: ignore[arg-type]
    await daemon.funding.start("BTCUSDT", [])
    daemon.funding.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    body, _ = await DaemonMetrics(daemon).render()
    text = body.decode()
    assert 'shadow_funding_paid_total{symbol="BTCUSDT"} 1.5' in text
    assert 'shadow_funding_received_total{symbol="BTCUSDT"} 0.25' in text
    assert 'shadow_funding_rate_announced{symbol="BTCUSDT"} 0.0001' in text
    (line,) = [line for line in text.splitlines() if line.startswith("shadow_next_funding_timestamp_seconds{")]
    assert float(line.split()[-1]) == T / 1000


async def test_spot_has_no_funding_metrics(tmp_path) -> None:
    daemon = Daemon(Settings(ledger={"db_path": tmp_path / "l.sqlite"}))
    body, _ = await DaemonMetrics(daemon).render()
    assert b"shadow_funding" not in body
