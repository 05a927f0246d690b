"""The dashboard of a sample ledger served by ``shadow ui``'s server on a free local port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.web.server import LedgerDashboard
from state.sample_ledger import SampleSpan
from tests.ledgers import hostile_ledger, sample_frames, sample_ledger  # noqa: F401  (fixtures)


@pytest.fixture
async def ui(sample_ledger: tuple[Path, SampleSpan]) -> AsyncIterator[LedgerDashboard]:  # noqa: F811
    async with LedgerDashboard(sample_ledger[0], "127.0.0.1", 0) as dashboard:
        yield dashboard
