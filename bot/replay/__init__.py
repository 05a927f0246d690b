"""A local Bybit-compatible market-data server that replays candle files, with fault injection."""
