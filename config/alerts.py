"""``[alerts]``: telling the operator when something happens, without a page open."""

from __future__ import annotations

from pydantic import Field, field_validator

from config.section import Section

ALERT_KINDS: tuple[str, ...] = ("promotion", "rollback", "rejection", "retrain_failed", "risk_stop", "stream_down",
                                "candles_stale", "unhealthy", "recovered", "daemon_stopped")
"""What can alert (``[alerts] events``)."""


class AlertSettings(Section):
    """Alerts from ``shadow run`` through apprise (https://github.com/caronc/apprise/wiki):
    one URL per channel, e.g. ``tgram://BOT_TOKEN/CHAT_ID``, ``discord://WEBHOOK_ID/TOKEN``,
    ``slack://TOKEN_A/TOKEN_B/TOKEN_C``, ``mailtos://user:password@example.com``,
    ``json://host/path`` (a webhook)."""

    urls: list[str] = Field(
        [], description="apprise notification URLs, one per channel (Telegram, Discord, Slack, "
        "e-mail, webhooks...); empty: no alerts"
    )
    events: list[str] = Field(
        list(ALERT_KINDS), description="which events alert: promotion, rollback, rejection, "
        "retrain_failed, risk_stop, stream_down, candles_stale, unhealthy (a symbol stopped, the ledger not "
        "writable), recovered (health back to ok), daemon_stopped"
    )
    min_interval_s: float = Field(
        300.0, ge=0, description="the same alert (kind and subject) is sent at most once per this many seconds; "
        "repeats in between are counted in the next one"
    )
    max_per_hour: int = Field(30, ge=1, description="alerts sent per hour at most, all kinds together")
    health_after_s: float = Field(
        30.0, ge=0, description="a health problem (stream down, stale candles...) alerts once it has lasted this "
        "long, so a quick reconnect stays quiet"
    )
    check_seconds: float = Field(5.0, gt=0, le=3600, description="seconds between two health checks for alerts")
    stop_timeout_s: float = Field(
        10.0, ge=0, description="at shutdown, how long the daemon waits for queued alerts (the stop alert "
        "included) to be sent"
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = [e for e in events if e not in ALERT_KINDS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; choose from {', '.join(ALERT_KINDS)}")
        return events

    @field_validator("urls")
    @classmethod
    def _no_blank_url(cls, urls: list[str]) -> list[str]:
        cleaned = [u.strip() for u in urls]
        if any(not u for u in cleaned):
            raise ValueError("an empty URL")
        return cleaned
