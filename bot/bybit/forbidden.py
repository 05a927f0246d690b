"""An HTTP 403 from Bybit, and the quiet period it starts.

Bybit answers 403 when it bans an IP (more than 600 requests in 5 s) and when it blocks a
region, and asks clients to stop every request for at least 10 minutes. The REST client
and the stream both keep a :class:`Forbidden` while they wait ``[exchange]
forbidden_wait_s``, so ``/health`` and ``shadow doctor`` can say why nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from env.candles import format_ms
from trainer.data.bybit_public import FORBIDDEN_ADVICE


@dataclass(frozen=True, slots=True)
class Forbidden:
    """Bybit refused with HTTP 403: where, why, and until when nothing is sent there.

    Attributes:
        where: ``"REST"`` or ``"websocket"``.
        url: the refused request.
        reason: Bybit's reason, from the response body.
        until_ms: wall-clock time the quiet period ends.
    """

    where: str
    url: str
    reason: str
    until_ms: int

    def describe(self) -> str:
        """One line for the log, /health and ``shadow doctor``."""
        return (f"Bybit {self.where} answered HTTP 403 Forbidden ({self.reason}): {FORBIDDEN_ADVICE}; "
                f"nothing is sent until {format_ms(self.until_ms)} UTC ([exchange] forbidden_wait_s)")
