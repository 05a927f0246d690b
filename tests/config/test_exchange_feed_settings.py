"""The [exchange] keepalive/back-off fields and the [feed] section: good values load, bad
ones fail with a ConfigError naming the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_defaults_follow_bybit_advice() -> None:
    settings = load_settings()
    assert settings.exchange.ping_interval_s == 20 and settings.exchange.watchdog_s > 20
    assert settings.feed.symbols == ["BTCUSDT"] and settings.feed.interval == "1m"


def test_a_toml_file_sets_the_feed(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text('[exchange]\ncategory = "spot"\nws_url = "ws://127.0.0.1:8765/v5/public/spot"\n'
                    'rest_url = "http://127.0.0.1:8765/"\n[feed]\nsymbols = ["BTCUSDT", "ETHUSDT"]\ninterval = "5m"\n')
    settings = load_settings(path)
    assert settings.exchange.rest_url == "http://127.0.0.1:8765"
    assert settings.feed.symbols == ["BTCUSDT", "ETHUSDT"] and settings.feed.interval == "5m"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exchange": {"category": "spot"}}, ("exchange.ws_url: 'wss://stream.bybit.com/v5/public/linear'"
                                              " (the default): is the linear stream but exchange.category is 'spot'")),
        ({"exchange": {"ws_url": "http://x"}}, "exchange.ws_url: 'http://x'"),
        ({"exchange": {"ping_interval_s": 0}}, "exchange.ping_interval_s: 0"),
        ({"exchange": {"watchdog_s": 10}}, ("exchange.watchdog_s: 10 (passed in code): must be longer than "
                                            "ping_interval_s")),
        ({"exchange": {"backoff_min_s": 5, "backoff_max_s": 2}}, ("exchange.backoff_max_s: 2 (passed in code): "
                                                                  "must be at least backoff_min_s")),
        ({"exchange": {"rest_attempts": 0}}, "exchange.rest_attempts: 0"),
        ({"feed": {"symbols": []}}, "feed.symbols: []"),
        ({"feed": {"symbols": ["btc/usdt"]}}, "'btc/usdt' is not a Bybit symbol"),
        ({"feed": {"symbols": ["BTCUSDT", "BTCUSDT"]}}, "listed more than once: BTCUSDT"),
        ({"feed": {"interval": "1mo"}}, "feed.interval: '1mo' (passed in code): unknown interval"),
    ],
)
def test_bad_values_name_field_and_value(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert message in str(caught.value)


def test_an_environment_variable_is_named_as_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_FEED__INTERVAL", "7m")
    with pytest.raises(ConfigError, match=r"feed.interval: '7m' \(set by SHADOW_FEED__INTERVAL\)"):
        load_settings()
