"""Typed shapes of the Bybit v5 public websocket messages Shadow reads.

Validated with pydantic straight from the JSON bytes (its Rust core parses and checks in
one pass), so nothing past :mod:`bot.bybit.parse` ever touches a raw Bybit dict. Prices
arrive as strings (``"16649.5"``) and are converted to floats here; a price that is not
a positive finite number, or a candle whose high/low do not bracket its open/close, is a
malformed message, never a candle.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    TypeAdapter,
    model_validator,
)

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Quantity = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Ohlcv(_Message):
    """Prices and volume of one candle, checked the same way for the stream and REST."""

    open: Price
    high: Price
    low: Price
    close: Price
    volume: Quantity

    @model_validator(mode="after")
    def _bracketed(self) -> Ohlcv:
        if not (self.low <= min(self.open, self.close) and self.high >= max(self.open, self.close)):
            raise ValueError(
                f"high/low do not bracket open/close (open {self.open}, high {self.high}, low {self.low}, "
                f"close {self.close})"
            )
        return self


class KlineData(Ohlcv):
    """One candle state inside a kline push (``data[]``)."""

    start: StrictInt
    end: StrictInt
    interval: str
    confirm: StrictBool


class KlinePush(_Message):
    """A ``kline.{interval}.{symbol}`` push: the forming candle (``confirm`` false) or the closed one."""

    topic: str
    ts: StrictInt
    data: list[KlineData] = Field(min_length=1)


class TickerData(_Message):
    """The funding fields of a linear ``tickers.{symbol}`` push. A snapshot carries every
    field, a delta only those that changed, so both are optional."""

    symbol: str
    fundingRate: Annotated[float, Field(allow_inf_nan=False)] | None = None  # Bybit's field names
    nextFundingTime: Annotated[int, Field(gt=0)] | None = None


class TickerPush(_Message):
    """A ``tickers.{symbol}`` push: the rate Bybit announces for the next funding time."""

    topic: str
    ts: StrictInt
    data: TickerData


class OpReply(_Message):
    """The server's answer to one of our ops: a subscribe ack or a pong.

    A pong on the public channel echoes ``op: "ping"`` with ``ret_msg: "pong"``.
    """

    op: str
    success: bool | None = None
    ret_msg: str = ""
    req_id: str | None = None


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "topic" in value:
            return "ticker" if str(value["topic"]).startswith("tickers.") else "kline"
        return "op" if "op" in value else None
    return None


PublicMessage = Annotated[
    Annotated[KlinePush, Tag("kline")] | Annotated[TickerPush, Tag("ticker")] | Annotated[OpReply, Tag("op")],
    Discriminator(_kind, custom_error_type="unknown_message",
                  custom_error_message="neither a topic push nor an op reply"),
]
PUBLIC_MESSAGE: TypeAdapter[KlinePush | TickerPush | OpReply] = TypeAdapter(PublicMessage)
