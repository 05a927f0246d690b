"""The live side: Bybit stream client, REST backfill, engine, daemon and the ``shadow`` CLI."""
