"""uvicorn's httptools protocol with the bounds on slow and large request heads it lacks.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but nothing else: a
client that opens a connection and sends nothing, or trickles a request line and headers a
byte at a time, holds its connection forever, and httptools buffers headers without a size
limit (16 MB of headers were accepted in a test). h11 has a size limit
(``h11_max_incomplete_event_size``) but no timeout either, and is slower. So, around the
httptools parser:

- **header timeout**: from the moment a connection opens, and again from the first byte of
  each further request on it, the request line and headers must be complete within
  ``header_timeout`` seconds; else the server answers 408 and closes the connection.
- **body timeout**: the body must then be complete within ``body_timeout`` seconds (also a
  body the application never reads, after an early error); else 408 (or, when the answer was
  already sent, just the close).
- **header size**: at most ``max_header_bytes`` (plus one read of at most 256 KiB) are
  buffered before the headers are complete; beyond, 431 and the connection is closed.

The answers are ``{"error": "..."}`` like every other error of the model server; the body's
size is bounded by the application (``InferenceApp``). Nothing is done per request but one
comparison per read: one timer per server sweeps the open connections (every eighth of the
shorter timeout, at most every second), reads from uvicorn's own state whether each is
waiting for a request's head or body, and notes since when; a timeout fires at most a quarter
of itself (and at most 2 s) late.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dockyard.serving.settings import ServerSettings

LINGER = 2.0  # seconds a refused connection is still read (and dropped) before it is closed
_Base = HttpToolsProtocol  # called directly on the per-read path (cheaper than super())
_NOTHING = object()


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol with header and body timeouts and a header size limit."""

    header_timeout = 10.0
    body_timeout = 60.0
    max_header_bytes = 64 * 1024
    _sweeper: ClassVar[asyncio.TimerHandle | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._head_bytes = 0
        self._counted: object = _NOTHING  # the request head whose bytes are counted
        self._waiting: object = _NOTHING  # what the sweeper last saw this connection wait for
        self._since = 0.0  # … since when

    def _reading_head(self) -> bool:
        """Waiting for (the rest of) a request line and headers: uvicorn makes a new scope
        when a request begins, and its cycle when the headers are complete."""
        cycle = self.cycle
        return cycle is None or cycle.scope is not self.scope

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cls = type(self)
        if cls._sweeper is None:
            cls._sweeper = self.loop.call_later(
                cls.sweep_interval(), cls._sweep, self.loop, self.connections
            )

    @classmethod
    def sweep_interval(cls) -> float:
        return min(1.0, max(0.01, min(cls.header_timeout, cls.body_timeout) / 8))

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        cls._sweeper = None
        now = loop.time()
        for conn in list(connections):
            if isinstance(conn, GuardedHttpTools):
                conn._check(now)
        if connections:
            cls._sweeper = loop.call_later(cls.sweep_interval(), cls._sweep, loop, connections)

    def _check(self, now: float) -> None:
        if self._refused or self.transport.is_closing():
            return
        waiting: object
        if self._reading_head():  # the scope being filled (None before the first byte)
            waiting, timeout = self.scope, self.header_timeout
        elif self.cycle.more_body:  # uvicorn's flag: the body's last byte has not arrived
            waiting, timeout = self.cycle, self.body_timeout
        else:
            self._waiting = _NOTHING  # between requests: uvicorn's keep-alive timeout
            return
        if waiting is not self._waiting:  # the same request (object) as at the last sweep?
            self._waiting, self._since = waiting, now
        elif now - self._since >= timeout:
            self._expired()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: dropped
        cycle = self.cycle
        head = cycle is None or cycle.scope is not self.scope
        _Base.data_received(self, data)
        # every byte of this read belonged to a head that is still incomplete: count it
        if head and self._reading_head() and not self._refused:
            if self._counted is not self.scope:
                self._counted, self._head_bytes = self.scope, 0
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    f"the request line and headers are larger than {self.max_header_bytes} "
                    "bytes (max_header_bytes)",
                )

    def _expired(self) -> None:
        if self._reading_head():
            self._refuse(
                408,
                "Request Timeout",
                f"the request line and headers did not arrive within {self.header_timeout:g} s "
                "(header_timeout)",
            )
        elif self.cycle.response_started:
            self.transport.close()  # answered already (an early error): nothing more to say
        else:
            self._refuse(
                408,
                "Request Timeout",
                f"the request body did not arrive within {self.body_timeout:g} s (body_timeout)",
            )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer, then close gracefully: what the client still sends is read and dropped for
        a moment (a close with unread data would reset the connection, and the client could
        lose the answer)."""
        self._refused = True
        self.logger.warning("refused a client's request: %s", message)
        self.transport.write(_raw_response(status, reason, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)


def guarded_protocol(settings: ServerSettings) -> type[GuardedHttpTools]:
    """The protocol class for uvicorn's ``Config(http=...)``, with these settings' bounds."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "max_header_bytes": settings.max_header_bytes,
            "_sweeper": None,
        },
    )
