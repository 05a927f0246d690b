"""Bybit v5 adapter: kline stream, REST backfill and the gap-free candle feed built on them."""
