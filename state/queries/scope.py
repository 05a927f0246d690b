"""Which rows a dashboard query reads: an account and (optionally) one symbol.

Every ledger row of an account's money (decisions, fills, trades, positions, equity,
funding, risk events) carries its ``account`` (schema 9, :mod:`config.accounts`), which
:meth:`Scope.where` filters on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Scope:
    """An account and, when set, one symbol of it.

    Args:
        account: the account's name (``None``: every account).
        symbol: one market (``None``: every symbol of the account).
    """

    account: str | None = None
    symbol: str | None = None

    def where(self, alias: str) -> tuple[str, list[Any]]:
        """SQL conditions (joined with AND, ``1 = 1`` when empty) and their parameters, for
        rows of table ``alias`` that have a ``symbol`` column."""
        conditions, params = ["1 = 1"], []
        if self.account is not None:
            conditions.append(f"{alias}.account = ?")
            params.append(self.account)
        if self.symbol is not None:
            conditions.append(f"{alias}.symbol = ?")
            params.append(self.symbol)
        return " AND ".join(conditions), params


EVERYTHING = Scope()
"""Every account and symbol."""
