"""``shadow replay-server`` by hand: it serves real candles, and bad flags get one clear line."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pandas as pd
import pytest

from bot.bybit.markets import INTERVALS
from bot.bybit.rest import BybitRest
from bot.cli import main
from config.settings import ExchangeSettings
from tests.conftest import ETH_SAMPLE, REPO

ETH = ETH_SAMPLE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", str(ETH), "--data", str(ETH), "--symbol", "ETHUSDT"],
         "give one --symbol per --data file (2 file(s), 1 symbol(s))"),
        (["--data", "missing.csv", "--symbol", "ETHUSDT"], "missing.csv: file not found"),
        (["--data", str(ETH), "--symbol", "ETHUSDT", "--fault", "drop"], "drop needs the candle it hits"),
        (["--data", str(ETH), "--symbol", "ETHUSDT", "--history", "0"], "history must be between 1 and"),
        (["--data", str(ETH), "--symbol", "ETHUSDT", "--speed", "-1"], "speed must be a positive number"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["shadow", "replay-server", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


async def test_the_command_serves_the_file_to_a_rest_client(eth_frame: pd.DataFrame) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "replay-server", "--data", str(ETH), "--symbol", "ETHUSDT", "--port", "0",
        "--history", "300", cwd=REPO, stdout=asyncio.subprocess.PIPE, env=os.environ | {"COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        rest_url = None
        while rest_url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "replay-server exited early"
            found = re.search(r'rest_url = "(http://[^"]+)"', line)
            rest_url = found and found.group(1)
        async with BybitRest(ExchangeSettings(rest_url=rest_url)) as rest:
            candles = await rest.fetch_recent("ETHUSDT", INTERVALS["1m"], 50)
        assert [c.open_time_ms for c in candles] == eth_frame.open_time_ms.iloc[250:300].tolist()
        assert [c.close for c in candles] == eth_frame.close.iloc[250:300].tolist()
    finally:
        process.terminate()
        await process.wait()
