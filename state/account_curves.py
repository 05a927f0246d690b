"""What each account did on each symbol over a range, read back from the ledger for review
(``shadow accounts``, a live trial's verdict): the equity after each decision, the position
it then held with its notional, the candle close, the fees and the funding paid so far, the
trades it closed and the notional it traded, plus where the range started from.

A curve starts at the account's money just before the range's first decision: the equity,
position and fees after the decision before it, or, when the range starts at the account's
very first decision, its initial balance, flat, marked at that first candle's close (an
account is flat before it trades, and a live trial's challenger starts at exactly that
close with its incumbent's equity).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from env.portfolio import ClosedTrade

_OPEN_END = 2**62


@dataclass(frozen=True, slots=True)
class AccountCurve:
    """One account on one symbol over a range of decided candles.

    Args:
        account / symbol / interval: whose decisions.
        start_equity / start_notional / start_close / start_fees / start_funding: the money
            before the first decision (see the module docstring): its equity, the signed
            notional of the position it held (``side x qty x close``), the close it was
            marked at, and the fees and the funding (net) paid so far.
        open_time_ms: the decided candles.
        equity: the equity after each decision (the ledger's ``equity``).
        notional: the signed notional held after each decision, at that candle's close.
        close: each decided candle's close.
        fees_paid: the fees paid so far after each decision.
        funding_paid: the perpetual funding paid so far (net of funding received) after
            each decision.
        trades: the round trips closed in the range.
        traded_notional: ``qty x price`` summed over the fills in the range.
    """

    account: str
    symbol: str
    interval: str
    start_equity: float
    start_notional: float
    start_close: float
    start_fees: float
    start_funding: float
    open_time_ms: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]
    notional: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    fees_paid: npt.NDArray[np.float64]
    funding_paid: npt.NDArray[np.float64]
    trades: tuple[ClosedTrade, ...]
    traded_notional: float


_SERIES = ("SELECT account, symbol, min(interval) FROM decisions WHERE open_time_ms >= ? AND open_time_ms < ? "
           "GROUP BY account, symbol ORDER BY account, symbol")
_ROWS = ("SELECT open_time_ms, equity, side, close, fees_paid, funding_paid FROM equity WHERE account = ? "
         "AND symbol = ? AND open_time_ms < ? ORDER BY open_time_ms")
_FILLS = ("SELECT time_ms, qty, opens, price FROM fills WHERE account = ? AND symbol = ? AND time_ms < ? "
          "ORDER BY time_ms, seq")
_TRADES = ("SELECT side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, fees, net_pnl, "
           "funding FROM trades WHERE account = ? AND symbol = ? AND exit_time_ms >= ? AND exit_time_ms < ? "
           "ORDER BY exit_time_ms")
_INITIAL = "SELECT initial_balance FROM positions WHERE account = ? AND symbol = ?"


def account_curves(conn: sqlite3.Connection, *, start_ms: int | None = None, end_ms: int | None = None,
                   accounts: Sequence[str] = (), symbols: Sequence[str] = ()) -> list[AccountCurve]:
    """Every account's curve on every symbol with decisions in ``[start_ms, end_ms)``
    (``None``: open ended), optionally only of ``accounts`` and ``symbols``; by account,
    then symbol. Run it inside one read transaction (:func:`state.decision_log.snapshot`)."""
    low, high = -_OPEN_END if start_ms is None else start_ms, _OPEN_END if end_ms is None else end_ms
    curves = []
    for account, symbol, interval in conn.execute(_SERIES, (low, high)).fetchall():
        if (accounts and account not in accounts) or (symbols and symbol not in symbols):
            continue
        curves.append(_curve(conn, account, symbol, interval, low, high))
    return curves


def _curve(conn: sqlite3.Connection, account: str, symbol: str, interval: str, low: int, high: int) -> AccountCurve:
    rows = conn.execute(_ROWS, (account, symbol, high)).fetchall()
    times = np.array([r[0] for r in rows], dtype=np.int64)
    first = int(np.searchsorted(times, low))
    notional, traded = _notional(conn, account, symbol, low, high, rows)
    picked = rows[first:]
    if first:
        _, start_equity, _, start_close, start_fees, start_funding = rows[first - 1]
        start_notional = float(notional[first - 1])
    else:
        (start_equity,) = conn.execute(_INITIAL, (account, symbol)).fetchone()
        start_close, start_fees, start_funding, start_notional = picked[0][3], 0.0, 0.0, 0.0
    trades = tuple(ClosedTrade(*row) for row in conn.execute(_TRADES, (account, symbol, low, high)))
    return AccountCurve(
        account, symbol, interval, start_equity, start_notional, start_close, start_fees, start_funding,
        times[first:], np.array([r[1] for r in picked], dtype=np.float64), notional[first:],
        np.array([r[3] for r in picked], dtype=np.float64), np.array([r[4] for r in picked], dtype=np.float64),
        np.array([r[5] for r in picked], dtype=np.float64), trades, traded,
    )


def _notional(conn: sqlite3.Connection, account: str, symbol: str, low: int, high: int,
              rows: list[tuple[int, float, int, float, float, float]]) -> tuple[npt.NDArray[np.float64], float]:
    """The signed notional held after each decision (the quantity of the last opening fill
    while a position is open, at the candle's close), and the notional traded from ``low``."""
    qty_at: dict[int, float] = {}
    qty = traded = 0.0
    for time_ms, fill_qty, opens, price in conn.execute(_FILLS, (account, symbol, high)):
        qty = fill_qty if opens else 0.0
        qty_at[time_ms] = qty
        traded += fill_qty * price if time_ms >= low else 0.0
    held, out = 0.0, np.empty(len(rows))
    for i, (time_ms, _, side, close, _, _) in enumerate(rows):
        held = qty_at.get(time_ms, held)
        out[i] = side * held * close
    return out, traded
