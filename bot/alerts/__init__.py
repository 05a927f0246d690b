"""Alerts: the service tells its operator about promotions, rollbacks, rejections, risk
stops, a stream down or stale candles, failed retrains and its own stop, through apprise
(:mod:`.notifier`), from what the ledger records and what the health rule sees
(:mod:`.watch`)."""
