"""Metrics against values computed by hand, including the edge cases."""

from __future__ import annotations

import json
import math

import pytest

from env.portfolio import ClosedTrade
from trainer.evaluation.metrics import compute_metrics, describe_skill, periods_per_year

DAY_MS = 86_400_000


def trade(net: float, entry_day: int = 0, exit_day: int = 1) -> ClosedTrade:
    return ClosedTrade(1, 1.0, entry_day * DAY_MS, exit_day * DAY_MS, 100.0, 100.0 + net, net, 0.0, net)


def test_periods_per_year_counts_around_the_clock_candles():
    assert periods_per_year(60_000) == 525_600
    assert periods_per_year(DAY_MS) == 365
    with pytest.raises(ValueError):
        periods_per_year(0)


def test_a_small_run_by_hand():
    # Daily candles: +10%, -5%, +10%.
    m = compute_metrics([100.0, 110.0, 104.5, 114.95], [1, 1, 0],
                        [trade(10.0, 0, 2), trade(-5.0, 2, 3), trade(2.5, 3, 4)], fees_paid=1.25, interval_ms=DAY_MS)
    assert m.total_return == pytest.approx(0.1495)
    assert m.annualized_return == pytest.approx(1.1495 ** (365 / 3) - 1)
    # mean 0.05; sample std sqrt((0.05^2 + 0.1^2 + 0.05^2) / 2) = sqrt(0.0075)
    assert m.sharpe == pytest.approx(0.05 / math.sqrt(0.0075) * math.sqrt(365))
    # downside deviation sqrt(0.05^2 / 3)
    assert m.sortino == pytest.approx(0.05 / math.sqrt(0.0025 / 3) * math.sqrt(365))
    assert m.max_drawdown == pytest.approx(0.05)  # 110 -> 104.5
    assert m.calmar == pytest.approx(m.annualized_return / 0.05)
    assert (m.n_trades, m.win_rate, m.profit_factor) == (3, pytest.approx(2 / 3), pytest.approx(12.5 / 5.0))
    assert m.avg_holding_candles == pytest.approx(4 / 3) and m.avg_holding_hours == pytest.approx(32.0)
    assert m.exposure == pytest.approx(2 / 3)
    assert (m.fees_paid, m.final_equity, m.total_pnl, m.n_steps) == (1.25, 114.95, pytest.approx(14.95), 3)


def test_no_trades_and_no_volatility_is_all_zeros_and_nones():
    m = compute_metrics([100.0] * 6, [0] * 5, [], fees_paid=0.0, interval_ms=60_000)
    assert (m.total_return, m.annualized_return, m.sharpe, m.sortino, m.max_drawdown, m.calmar) == (0, 0, 0, 0, 0, 0)
    assert (m.n_trades, m.win_rate, m.profit_factor) == (0, 0.0, None)
    assert (m.avg_holding_candles, m.avg_holding_hours) == (None, None)
    assert m.exposure == 0.0


def test_all_losses():
    m = compute_metrics([100.0, 99.0, 97.0], [1, 1], [trade(-1.0), trade(-2.0)], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.win_rate, m.profit_factor) == (0.0, 0.0)
    assert m.max_drawdown == pytest.approx(0.03)
    r1, r2 = 99 / 100 - 1, 97 / 99 - 1
    mean = (r1 + r2) / 2
    assert m.sharpe == pytest.approx(mean / (abs(r1 - r2) / math.sqrt(2)) * math.sqrt(365))
    assert m.sortino == pytest.approx(mean / math.sqrt((r1**2 + r2**2) / 2) * math.sqrt(365))


def test_only_wins_has_unbounded_profit_factor():
    m = compute_metrics([100.0, 101.0], [1], [trade(1.0)], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.win_rate, m.profit_factor) == (1.0, None)


def test_constant_positive_return_has_no_volatility_so_ratios_are_unbounded():
    equity = [100.0 * 1.001 ** k for k in range(50)]
    m = compute_metrics(equity, [1] * 49, [], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.sharpe, m.sortino, m.max_drawdown, m.calmar) == (None, None, 0.0, None)


def test_single_step_has_no_sharpe():
    m = compute_metrics([100.0, 101.0], [1], [], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.sharpe, m.sortino) == (None, None)


def test_wiped_out_account():
    m = compute_metrics([100.0, 50.0, 0.0], [1, 1], [], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.total_return, m.annualized_return, m.max_drawdown) == (-1.0, -1.0, 1.0)


def test_annualising_a_short_spike_overflows_to_none():
    m = compute_metrics([100.0, 200.0], [1], [], fees_paid=0.0, interval_ms=60_000)
    assert m.annualized_return is None and m.calmar is None


def test_no_steps():
    m = compute_metrics([100.0], [], [], fees_paid=0.0, interval_ms=60_000)
    assert (m.total_return, m.annualized_return, m.exposure, m.max_drawdown, m.n_steps) == (0.0, 0.0, 0.0, 0.0, 0)


@pytest.mark.parametrize("equity, positions", [
    ([100.0] * 3, [0, 0]), ([100.0, 200.0], [1]), ([100.0, 0.0], [1]), ([100.0], []), ([100.0, 90.0, 80.0], [1, 1]),
])
def test_every_edge_case_is_strict_json(equity, positions):
    json.dumps(compute_metrics(equity, positions, [], 0.0, 60_000).to_dict(), allow_nan=False)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="positions has 1 values; expected one per step \\(2\\)"):
        compute_metrics([100.0, 101.0, 102.0], [1], [], 0.0, 60_000)
    with pytest.raises(ValueError, match="starting above 0"):
        compute_metrics([0.0, 1.0], [1], [], 0.0, 60_000)


def test_timing_separates_riding_the_market_from_timing_it(btc_candles):
    """On real candles without costs, buy & hold's return is all market and no timing, and
    flat has neither (the backtest's figures, through the one timing definition)."""
    from config.settings import EnvSettings
    from strategies.specs import build_strategy
    from trainer.evaluation.backtest import make_env, run_backtest
    from trainer.evaluation.metrics import timing

    frame = btc_candles.iloc[:3000].reset_index(drop=True)
    env = make_env(frame, EnvSettings(commission=0.0))
    hold = run_backtest(build_strategy("buy_and_hold"), env).metrics
    assert hold.buy_and_hold_return is not None and abs(hold.buy_and_hold_return) > 0.01
    assert hold.net_exposure == pytest.approx(1.0, abs=1e-3) and hold.timing == pytest.approx(0.0, abs=2e-3)
    assert timing(0.05, 0.5, 0.04) == pytest.approx(0.03)
    flat = run_backtest(build_strategy("flat"), env).metrics
    assert flat.timing == 0.0 and flat.buy_and_hold_return == hold.buy_and_hold_return


def test_skill_figures_by_hand_separate_riding_the_market_from_timing_it():
    # Daily candles, close 100 -> 110 -> 99 -> 108.9 (buy & hold +8.9%): long, short, flat.
    closes = [100.0, 110.0, 99.0, 108.9]
    m = compute_metrics([100.0, 110.0, 119.9, 119.9], [1, -1, 0], [trade(10.0, 0, 1), trade(9.9, 1, 2)],
                        fees_paid=0.5, interval_ms=DAY_MS, closes=closes, traded_notional=420.0)
    assert (m.time_long, m.time_short, m.net_exposure) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 0.0)
    assert (m.fees_to_capital, m.turnover) == (pytest.approx(0.005), pytest.approx(4.2))
    assert m.buy_and_hold_return == pytest.approx(0.089)
    assert m.exposure_matched_return == 0.0 and m.timing == pytest.approx(0.199)  # all of it is timing


def test_a_long_only_ride_has_the_markets_return_and_no_timing():
    closes = [100.0, 104.0, 102.0, 110.0]
    equity = [100.0 * c / 100.0 for c in closes]  # long throughout, no fees
    m = compute_metrics(equity, [1, 1, 1], [], fees_paid=0.0, interval_ms=DAY_MS, closes=closes, position_size=1.0)
    assert (m.time_long, m.net_exposure, m.buy_and_hold_return) == (1.0, 1.0, pytest.approx(0.1))
    assert m.timing == pytest.approx(0.0, abs=1e-12) and m.exposure_matched_return == pytest.approx(m.total_return)
    doubled = compute_metrics(equity, [1, 1, 1], [], 0.0, DAY_MS, closes=closes, position_size=2.0)
    assert doubled.net_exposure == 2.0 and doubled.timing == pytest.approx(0.1 - 0.2)


def test_without_closes_the_market_figures_are_undefined_not_zero():
    m = compute_metrics([100.0, 101.0], [1], [], fees_paid=0.0, interval_ms=DAY_MS)
    assert (m.buy_and_hold_return, m.exposure_matched_return, m.timing) == (None, None, None)
    assert (m.time_long, m.time_short, m.turnover) == (1.0, 0.0, 0.0)


def test_funding_is_a_cost_beside_the_fees_in_the_skill_figures():
    closes = [100.0, 104.0, 102.0, 110.0]
    m = compute_metrics([100.0, 103.0, 100.5, 108.0], [1, 1, 1], [], fees_paid=0.5, interval_ms=DAY_MS, closes=closes,
                        traded_notional=100.0, funding_paid=0.25)
    assert (m.funding_paid, m.funding_to_capital, m.fees_to_capital) == (0.25, 0.0025, 0.005)
    assert describe_skill(m.to_dict()).endswith("0 trades, fees 0.50% and funding +0.25% of capital, turnover 1.0x")
    spot = compute_metrics([100.0, 103.0], [1], [], fees_paid=0.5, interval_ms=DAY_MS)
    assert spot.funding_to_capital == 0.0 and "funding" not in describe_skill(spot.to_dict())
