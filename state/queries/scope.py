"""Which rows a dashboard query reads: an account and (optionally) one symbol.

A ledger holds one paper account today, :data:`DEFAULT_ACCOUNT`; every query already
filters and labels by account through :func:`account_sql`, so when ledger rows carry an
``account`` column the change is that expression, not every query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_ACCOUNT = "default"
"""The name of a ledger's only account (until the ledger records accounts)."""


def account_sql(alias: str) -> str:
    """The SQL expression giving the account of a row of table ``alias``.

    Today a literal (every row belongs to :data:`DEFAULT_ACCOUNT`); with an ``account``
    column it becomes ``f"{alias}.account"``.
    """
    del alias  # the rows carry no account yet
    return f"'{DEFAULT_ACCOUNT}'"


def ledger_accounts() -> list[str]:
    """The accounts a ledger holds (one, today)."""
    return [DEFAULT_ACCOUNT]


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
            conditions.append(f"{account_sql(alias)} = ?")
            params.append(self.account)
        if self.symbol is not None:
            conditions.append(f"{alias}.symbol = ?")
            params.append(self.symbol)
        return " AND ".join(conditions), params


EVERYTHING = Scope()
"""Every account and symbol."""
