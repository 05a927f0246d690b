"""The dashboard's reads: small, windowed, parameterised queries over a read-only ledger
connection (:func:`state.database.connect_reader`).

One module per page's data: :mod:`.overview`, :mod:`.market` (candles, trade marks and
exposure at a chosen resolution), :mod:`.equity`, :mod:`.trades`, :mod:`.timeline`, and
:mod:`.changes` (what was committed since a cursor: live updates and alerts). Every query
takes a :class:`~state.queries.scope.Scope`, so the account dimension of a ledger with
several accounts is one more condition, not a rewrite.
"""
