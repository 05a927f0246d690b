"""Candle data: Bybit history and its cache, candles stored in the ledger, date ranges and chronological splits."""
