"""Secret values out of logs: a stream filter that replaces them, also across chunk ends."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = b"[secret]"
MIN_LENGTH = 4  # shorter values are not masked: they would mask ordinary text


class Redactor:
    """Replaces each value in the bytes passed through it. A value may be split between two
    chunks, so the last ``longest - 1`` bytes wait for the next chunk (or ``flush``)."""

    def __init__(self, values: Iterable[str]) -> None:
        found = sorted(
            {v.encode() for v in values if len(v.encode()) >= MIN_LENGTH}, key=len, reverse=True
        )
        self.pattern = re.compile(b"|".join(re.escape(v) for v in found)) if found else None
        self.keep = max((len(v) for v in found), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if self.pattern is None:
            return chunk
        data = self.pending + chunk
        hold = len(data) - self.keep if chunk else len(data)  # the rest may begin a value
        out, cut = [], 0
        for match in self.pattern.finditer(data):
            if match.end() > hold:  # may be the start of a longer value: see the next chunk
                hold = match.start()
                break
            out += [data[cut : match.start()], MASK]
            cut = match.end()
        hold = max(hold, cut)
        out.append(data[cut:hold])
        self.pending = data[hold:]
        return b"".join(out)

    def flush(self) -> bytes:
        return self.feed(b"")
