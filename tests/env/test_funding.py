"""Perpetual funding in the one money step, against hand-computed cases, and the
``funding_rate`` column of candle files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from env.candles import CandleDataError, RepairPolicy, candles_to_seed_csv, load_candles, resample_candles
from env.crypto_trading_env import CryptoTradingEnv
from env.execution import Account
from env.funding import FundingPayment, FundingRate, due_between, funding_due_by_candle, funding_rate_column
from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action, Side
from tests.conftest import FUNDING_BY_HOUR, PREFIX, make_candles, with_funding

approx = pytest.approx
MINUTE = 60_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a funding time
RATE = 0.001  # 0.1%, large enough for round hand-computed numbers


def account() -> Account:
    """100 USDT, commission 0.1%, fully invested: at price 100 a position is 1.0 unit."""
    return Account(Portfolio(PortfolioConfig(initial_balance=100.0, commission=0.001)))


def test_a_long_held_across_a_funding_time_pays_it() -> None:
    acc = account()
    acc.mark(100.0, T0 - 2 * MINUTE)
    acc.execute(Action.BUY)  # qty 1.0, fee 0.1, cash 99.9
    equity = acc.mark(110.0, T0 - MINUTE, FundingRate(T0, RATE))  # the candle ending at T0
    assert acc.funding_payment == FundingPayment(T0, RATE, 110.0, Side.LONG, 1.0, approx(0.11))
    p = acc.portfolio
    assert p.cash == approx(99.79) and equity == approx(109.79) and p.funding_paid == approx(0.11)
    acc.mark(110.0, T0)
    (close,) = acc.execute(Action.CLOSE).fills
    trade = close.trade
    assert trade.gross_pnl == approx(10.0) and trade.fees == approx(0.21) and trade.funding == approx(0.11)
    assert trade.net_pnl == approx(10.0 - 0.21 - 0.11)
    assert p.cash == approx(109.68) and p.total_pnl == approx(p.realized_pnl - p.fees_paid - p.funding_paid)
    assert p.position_funding == 0.0


def test_a_short_receives_a_positive_rate_and_pays_a_negative_one() -> None:
    acc = account()
    acc.mark(100.0, T0 - 2 * MINUTE)
    acc.execute(Action.SELL)
    acc.mark(90.0, T0 - MINUTE, FundingRate(T0, RATE))
    assert acc.funding_payment.amount == approx(-0.09)  # -1 x 1.0 x 90 x 0.001: received
    assert acc.portfolio.cash == approx(99.9 + 0.09)
    acc.mark(90.0, T0 + 479 * MINUTE, FundingRate(T0 + 480 * MINUTE, -RATE))
    assert acc.funding_payment.amount == approx(0.09)  # a negative rate: shorts pay longs
    assert acc.portfolio.funding_paid == approx(0.0)


def test_a_position_opened_at_the_funding_time_pays_nothing_for_it() -> None:
    acc = account()
    acc.mark(100.0, T0 - MINUTE, FundingRate(T0, RATE))  # flat into T0: nothing due
    assert acc.funding == FundingRate(T0, RATE) and acc.funding_payment is None
    acc.execute(Action.BUY)  # the decision at T0 fills after the settlement
    acc.mark(105.0, T0)  # the next candle holds no funding time
    p = acc.portfolio
    assert acc.funding_payment is None and p.funding_paid == 0.0 and p.cash == approx(99.9)


def test_a_reversal_at_the_funding_close_charges_the_closed_side_only() -> None:
    """Long into T0: the long pays at T0's mark, then the decision at T0 reverses. The
    closed trade carries the payment; the new short starts with none."""
    acc = account()
    acc.mark(100.0, T0 - 2 * MINUTE)
    acc.execute(Action.BUY)
    acc.mark(100.0, T0 - MINUTE, FundingRate(T0, RATE))  # pays 0.1
    close, open_ = acc.execute(Action.SELL).fills
    assert close.trade.funding == approx(0.1) and close.trade.net_pnl == approx(-0.1 - 0.1 - 0.1)
    p = acc.portfolio
    assert open_.side == Side.SHORT and p.position_funding == 0.0 and p.funding_paid == approx(0.1)


def test_a_reversal_before_the_funding_close_charges_the_new_side() -> None:
    acc = account()
    acc.mark(100.0, T0 - 3 * MINUTE)
    acc.execute(Action.BUY)
    acc.mark(100.0, T0 - 2 * MINUTE)
    close, _ = acc.execute(Action.SELL).fills  # reversal one candle before the funding candle closes
    assert close.trade.funding == 0.0
    acc.mark(100.0, T0 - MINUTE, FundingRate(T0, RATE))
    short_qty = acc.portfolio.qty
    assert acc.funding_payment.side == Side.SHORT and acc.funding_payment.amount == approx(-short_qty * 100.0 * RATE)
    (closing,) = acc.execute(Action.CLOSE).fills
    assert closing.trade.funding == approx(-short_qty * 100.0 * RATE)


def test_the_column_and_the_live_sum_give_the_same_charge() -> None:
    """A file's ``funding_rate`` column and the live engine's settlements agree to the bit,
    also for candles longer than the funding interval (three 8 h fundings in a day)."""
    hour = 60 * MINUTE
    opens = np.arange(T0, T0 + 5 * 24 * hour, 24 * hour, dtype=np.int64)
    settlements = [(T0 + k * 8 * hour, 1e-4 * (k % 5) + 3.3e-5) for k in range(-3, 16)]
    column = funding_rate_column(opens, 24 * hour, settlements)
    due = funding_due_by_candle(opens, column)
    for t in range(len(opens) - 1):
        assert due[t] == due_between(int(opens[t]), int(opens[t]) + 24 * hour, settlements)
    assert due[-1] is None  # its close is not in the data
    assert column[0] == sum(r for time, r in settlements if T0 - 24 * hour < time <= T0)


def funding_frame(n: int, rows: dict[int, float]) -> pd.DataFrame:
    frame = make_candles(100.0 + np.sin(np.arange(n) / 7.0), start_ms=T0 - PREFIX * MINUTE)
    frame["funding_rate"] = 0.0
    for row, rate in rows.items():
        frame.loc[row, "funding_rate"] = rate
    return frame


def test_the_env_charges_a_row_s_rate_at_the_close_of_the_candle_before_it() -> None:
    k = PREFIX + 5
    env = CryptoTradingEnv(funding_frame(PREFIX + 20, {k: RATE}))
    env.reset()
    assert env.funding
    cash = {}  # candle index -> cash after its mark
    for step in range(10):
        _, _, _, _, info = env.step(Action.BUY if step == 0 else Action.HOLD)
        cash[info["step"]] = info["balance"]
    p = env.portfolio
    charged = p.qty * env.candles["close"].iloc[k - 1] * RATE
    assert cash[k - 2] - cash[k - 1] == approx(charged)  # charged at the mark of candle k - 1
    assert {v for t, v in cash.items() if t < k - 1} == {cash[k - 2]}  # nothing else moved
    assert {v for t, v in cash.items() if t >= k - 1} == {cash[k - 1]}
    assert info["funding_paid"] == approx(charged) == p.funding_paid
    assert info["total_pnl"] == approx(p.realized_pnl + p.unrealized_pnl - p.fees_paid - p.funding_paid)


def test_the_net_reward_charges_the_funding_at_the_candle_it_is_paid() -> None:
    """The net reward is the account's equity change, and funding is equity: the perpetual's
    reward differs from the spot twin's only at the mark that settles the funding, by it."""
    k = PREFIX + 5
    frame = funding_frame(PREFIX + 20, {k: RATE})
    perpetual, spot = (CryptoTradingEnv(f, reward_mode="net") for f in (frame, frame.drop(columns="funding_rate")))
    runs = []
    for env in (perpetual, spot):
        env.reset()
        runs.append([env.step(Action.BUY if step == 0 else Action.HOLD) for step in range(10)])
    i = next(n for n, (*_, info) in enumerate(runs[0]) if info["step"] == k - 1)
    (paid, spot_paid) = (run[i] for run in runs)
    assert [r[1] for r in runs[0][:i]] == [r[1] for r in runs[1][:i]]
    charged = perpetual.portfolio.qty * frame["close"].iloc[k - 1] * RATE
    assert paid[4]["equity"] == approx(spot_paid[4]["equity"] - charged)
    assert paid[1] == approx(spot_paid[1] + 100 * np.log(paid[4]["equity"] / spot_paid[4]["equity"]))
    assert sum(r[1] for r in runs[0]) == approx(100 * np.log(perpetual.portfolio.equity / 100.0), abs=1e-12)


def test_resampled_candles_keep_their_funding(btc_candles: pd.DataFrame) -> None:
    """Training on 15m or daily candles from a 1m perpetual file: each settlement lands on the
    first coarser row opening at or after it, as the exchange's history is laid out."""
    minutes = with_funding(btc_candles)
    settled = minutes.loc[minutes["funding_rate"] != 0, ["open_time_ms", "funding_rate"]]
    quarter = resample_candles(minutes, 900_000)
    on_grid = quarter.set_index("open_time_ms")["funding_rate"]
    assert on_grid[on_grid != 0].to_dict() == settled.set_index("open_time_ms")["funding_rate"].to_dict()
    daily = resample_candles(minutes, 86_400_000)["funding_rate"]
    assert len(daily) >= 19 and set(daily.iloc[1:].round(12)) == {round(sum(FUNDING_BY_HOUR.values()), 12)}


def test_without_a_funding_column_nothing_is_charged() -> None:
    frame = funding_frame(PREFIX + 20, {PREFIX + 5: RATE}).drop(columns="funding_rate")
    env = CryptoTradingEnv(frame)
    env.reset()
    env.step(Action.BUY)
    for _ in range(10):
        *_, info = env.step(Action.HOLD)
    assert not env.funding and info["funding_paid"] == 0.0


def test_the_funding_column_survives_a_round_trip_through_a_file(tmp_path: Path) -> None:
    frame = funding_frame(300, {250: 1.23456789e-4, 290: -7.5e-5})
    path = tmp_path / "f.csv"
    candles_to_seed_csv(load_candles_from(frame, tmp_path), path)
    loaded = load_candles(path)
    assert loaded["funding_rate"].tolist() == frame["funding_rate"].tolist()


def load_candles_from(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "raw.csv"
    frame.to_csv(path, index=False)
    return load_candles(path)


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("", "line 12: funding_rate is empty (a gap"),
        ("abc", "line 12: funding_rate 'abc' is not a number"),
        ("0.5", "line 12: funding_rate 0.5 is beyond the sane bound of +-0.05"),
        ("-inf", "line 12: funding_rate -inf is beyond the sane bound"),
    ],
    ids=["gap", "not-a-number", "out-of-bound", "infinite"],
)
@pytest.mark.parametrize("repair", [RepairPolicy.STRICT, RepairPolicy.REPAIR])
def test_a_bad_funding_cell_is_one_clear_error_even_when_repairing(tmp_path: Path, cell: str, problem: str,
                                                                    repair: RepairPolicy) -> None:
    frame = funding_frame(30, {}).astype({"funding_rate": object})
    frame.loc[10, "funding_rate"] = cell
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(CandleDataError, match="funding_rate") as caught:
        load_candles(path, repair=repair)
    assert str(caught.value).startswith(f"{path}, {problem}") and "\n" not in str(caught.value)


def test_a_repaired_gap_in_the_candles_settles_no_funding(tmp_path: Path) -> None:
    frame = funding_frame(30, {20: 1e-4}).drop(index=[5, 6])
    path = tmp_path / "gap.csv"
    frame.to_csv(path, index=False)
    repaired = load_candles(path, repair=RepairPolicy.REPAIR)
    assert len(repaired) == 30 and repaired["funding_rate"].tolist() == [0.0] * 20 + [1e-4] + [0.0] * 9
