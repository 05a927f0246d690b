"""The trade table: closed trades (``v_trades``) filtered, sorted and paged on the server.

Every filter is a parameter and the sort column is picked from a fixed list, so no text
from a request ever becomes SQL. A trade belongs to the model of the decision that opened
it (a baseline's trades to the strategy's name) and to the time it closed, as in
``shadow trades`` and ``v_daily_pnl``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from state.queries.scope import EVERYTHING, Scope

COLUMNS: tuple[str, ...] = ("trade_id", "account", "symbol", "side", "entry_time", "exit_time", "holding_minutes",
                            "qty", "entry_price", "exit_price", "gross_pnl", "fees", "funding", "net_pnl", "return_pct",
                            "strategy", "model_version", "entry_time_ms", "exit_time_ms")
"""The columns of a trade row, in order (``v_trades``'s)."""

SORTABLE: tuple[str, ...] = tuple(c for c in COLUMNS if c not in ("entry_time", "exit_time"))
"""Columns a request may sort by (the text times sort as their ``*_ms`` twins)."""

MAX_PAGE_SIZE = 500

_MODEL = "coalesce(t.model_version, t.strategy)"


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which trades: ``scope`` (account, symbol), the opening ``model`` (a model version, or
    a baseline strategy's name), ``side`` (``long``/``short``) and the exit time in
    ``[from_ms, to_ms)``. ``None`` leaves a filter out."""

    scope: Scope = EVERYTHING
    model: str | None = None
    side: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        sql, params = self.scope.where("t")
        conditions = [sql]
        for condition, value in ((f"{_MODEL} = ?", self.model), ("t.side = ?", self.side),
                                 ("t.exit_time_ms >= ?", self.from_ms), ("t.exit_time_ms < ?", self.to_ms)):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        return " AND ".join(conditions), params


@dataclass(frozen=True, slots=True)
class Sort:
    """``column`` (one of :data:`SORTABLE`) and direction; ties go by ``trade_id``."""

    column: str = "exit_time_ms"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.column not in SORTABLE:
            raise ValueError(f"cannot sort trades by {self.column!r}; choose one of {', '.join(SORTABLE)}")

    def sql(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"t.{self.column} {direction}, t.trade_id {direction}"


NEWEST_FIRST = Sort()
"""The default order: the latest exit first."""


@dataclass(frozen=True, slots=True)
class TradePage:
    """One page of rows (tuples in :data:`COLUMNS` order) and what the whole filter holds."""

    rows: list[tuple[Any, ...]]
    total: int
    net_pnl: float
    offset: int


def _select(trade_filter: TradeFilter, sort: Sort) -> tuple[str, list[Any]]:
    where, params = trade_filter.where()
    columns = ", ".join(f"t.{c}" for c in COLUMNS)
    return f"SELECT {columns} FROM v_trades t WHERE {where} ORDER BY {sort.sql()}", params


def trades_page(conn: sqlite3.Connection, trade_filter: TradeFilter, sort: Sort = NEWEST_FIRST, *, offset: int = 0,
                limit: int = 50) -> TradePage:
    """Rows ``offset .. offset + limit`` of the filtered, sorted trades, their total count
    and summed net PnL."""
    if not 1 <= limit <= MAX_PAGE_SIZE or offset < 0:
        raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE} and offset >= 0 (got {limit}, {offset})")
    sql, params = _select(trade_filter, sort)
    rows = conn.execute(f"{sql} LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
    where, where_params = trade_filter.where()
    total, net = conn.execute(f"SELECT count(*), coalesce(sum(t.net_pnl), 0.0) FROM v_trades t WHERE {where}",
                              where_params).fetchone()
    return TradePage(rows, total, net, offset)


def iter_trades(conn: sqlite3.Connection, trade_filter: TradeFilter, sort: Sort = NEWEST_FIRST,
                chunk: int = 2000) -> Iterator[list[tuple[Any, ...]]]:
    """Every filtered trade, in ``chunk``-row lists (for a CSV download of any size)."""
    sql, params = _select(trade_filter, sort)
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(chunk):
        yield rows


def trade_models(conn: sqlite3.Connection, scope: Scope = EVERYTHING) -> list[str]:
    """The models (or baseline strategies) that opened the scope's trades, for a filter."""
    where, params = scope.where("t")
    return [m for (m,) in conn.execute(
        f"SELECT DISTINCT {_MODEL} AS m FROM v_trades t WHERE {where} AND m IS NOT NULL ORDER BY m", params)]
