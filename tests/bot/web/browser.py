"""Headless Chromium for the dashboard tests and screenshots, and servers run beside it.

Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them), driven
by Selenium pointed at both binaries, so Selenium Manager never downloads anything. The
flags keep Chromium off the network and out of the way of other runs.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Generic, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-dev-shm-usage")

T = TypeVar("T")


class Browser:
    """A Chromium with a fresh profile; ``close()`` ends it and deletes the profile."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                               "(.ci/run installs them)")
        self.profile = tempfile.mkdtemp(prefix="shadow-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver: WebDriver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def open(self, url: str, ready: str, timeout_s: float = 15.0) -> None:
        """Load ``url`` and wait until the JavaScript expression ``ready`` is true."""
        self.driver.get(url)
        self.wait(ready, timeout_s)

    def wait(self, condition: str, timeout_s: float = 15.0) -> Any:
        """Wait until the JavaScript expression ``condition`` is truthy; returns its value."""
        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.05).until(
            lambda d: d.execute_script(f"return {condition};"), message=f"never true: {condition}")

    def js(self, expression: str, *args: Any) -> Any:
        return self.driver.execute_script(f"return {expression};", *args)

    def console_errors(self) -> list[str]:
        """Console messages at error level since the last call (CSP violations included)."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def phone(self, width: int = 390, height: int = 844) -> None:
        """Emulate a phone's screen (CSS pixels, touch, device scale 3)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 3, "mobile": True})

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


class InThread(Generic[T]):
    """An async context manager (a server, a daemon) entered in a thread of its own, with
    its own event loop, so blocking Selenium calls never stall it.

    ``value`` is what the context manager gave; ``call(fn)`` runs ``fn()`` (a coroutine
    function) on that loop and returns its result; ``stop()`` leaves the context.
    """

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[T]], timeout_s: float = 60.0) -> None:
        self._factory = factory
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.value: T
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the server did not start")
        if self._error is not None:
            raise self._error

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with self._factory() as value:
                self.value = value
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    def call(self, fn: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout_s)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None:
            raise self._error
