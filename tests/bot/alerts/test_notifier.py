"""The notifier: rate limits by alert and by hour, filters by kind, never waits for a
channel, flushes at close, and refuses a URL apprise does not know."""

from __future__ import annotations

import threading
import time

import pytest

from bot.alerts.notifier import Alert, AlertNotifier, Send, apprise_sender
from config import UserError
from config.settings import AlertSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _collector() -> tuple[list[Alert], Send]:
    got: list[Alert] = []

    def send(alert: Alert) -> bool:
        got.append(alert)
        return True

    return got, send


def test_the_same_alert_is_sent_once_per_interval_and_the_next_one_counts_the_rest() -> None:
    clock = FakeClock()
    got, send = _collector()
    notifier = AlertNotifier(AlertSettings(min_interval_s=60, max_per_hour=100), send=send, clock=clock)
    stale = Alert("candles_stale", "BTCUSDT", "Shadow: BTCUSDT stale", "closed 200 s ago")
    assert notifier.notify(stale)
    assert not notifier.notify(stale) and not notifier.notify(stale)  # within a minute: held back
    assert notifier.notify(Alert("candles_stale", "ETHUSDT", "Shadow: ETHUSDT stale", "x"))  # another subject
    clock.now += 61
    assert notifier.notify(stale)
    assert notifier.close(5)
    assert [a.subject for a in got] == ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
    assert got[2].body == "closed 200 s ago\n(2 more like this were held back since the last one)"
    assert (notifier.stats.sent, notifier.stats.held_back) == (3, 2)


def test_at_most_max_per_hour_alerts_go_out() -> None:
    clock = FakeClock()
    got, send = _collector()
    notifier = AlertNotifier(AlertSettings(min_interval_s=0, max_per_hour=3), send=send, clock=clock)
    sent = [notifier.notify(Alert("risk_stop", f"s{i}", f"t{i}", "b")) for i in range(5)]
    assert sent == [True, True, True, False, False]
    clock.now += 3600
    assert notifier.notify(Alert("promotion", "v9", "t", "b"))
    assert notifier.close(5)
    assert got[-1].body == "b\n(2 other alert(s) were dropped by max_per_hour)" and notifier.stats.over_cap == 2


def test_only_the_configured_events_alert() -> None:
    got, send = _collector()
    notifier = AlertNotifier(AlertSettings(events=["rollback"]), send=send)
    assert not notifier.notify(Alert("promotion", "v2", "t", "b"))
    assert notifier.notify(Alert("rollback", "v1", "t", "b"))
    assert notifier.close(5) and [a.kind for a in got] == ["rollback"] and notifier.stats.filtered == 1


def test_a_stuck_channel_never_holds_up_the_caller() -> None:
    release = threading.Event()

    def stuck(alert: Alert) -> bool:
        release.wait(30)
        return True

    notifier = AlertNotifier(AlertSettings(min_interval_s=0, max_per_hour=10_000), send=stuck)
    start = time.perf_counter()
    results = [notifier.notify(Alert("risk_stop", f"s{i}", "t", "b")) for i in range(1000)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, elapsed  # a thousand alerts queued (or dropped) without waiting on the channel
    assert results.count(True) == 257 and notifier.stats.dropped == 1000 - 257  # one in flight + a full queue
    assert not notifier.close(0.2)  # still stuck: close gives up after its timeout
    release.set()


def test_a_failing_channel_is_counted_and_the_worker_goes_on() -> None:
    calls: list[str] = []

    def flaky(alert: Alert) -> bool:
        calls.append(alert.subject)
        if alert.subject == "boom":
            raise RuntimeError("channel bug")
        return alert.subject != "refused"

    notifier = AlertNotifier(AlertSettings(min_interval_s=0), send=flaky)
    for subject in ("boom", "refused", "fine"):
        notifier.notify(Alert("promotion", subject, "t", "b"))
    assert notifier.close(5)
    assert calls == ["boom", "refused", "fine"] and (notifier.stats.sent, notifier.stats.failed) == (1, 2)


def test_an_unknown_url_is_a_user_error_that_keeps_the_secret_out() -> None:
    with pytest.raises(UserError, match=r"\[alerts\] urls: 'nosuch://api\.example/\.\.\.' is not a notification URL"
                       ) as caught:
        apprise_sender(["json://127.0.0.1:9/ok", "nosuch://user:SECRET@api.example/token/SECRET2"])
    assert "SECRET" not in str(caught.value)
