"""The log filter masks each secret value however the log is cut into chunks."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dockyard.redact import MASK, Redactor

VALUES = ["hunter22", "hunt", "s3cr3t-token-value"]
PIECES = st.sampled_from([*VALUES, "x", "hun", "ter", "2", "\n", "s3cr3t", "-token"])


def expected(text: bytes) -> bytes:
    longest_first = sorted((v.encode() for v in VALUES), key=len, reverse=True)
    return re.sub(b"|".join(re.escape(v) for v in longest_first), MASK, text)


@given(st.lists(PIECES, max_size=40), st.lists(st.integers(1, 9), min_size=1, max_size=40))
def test_values_are_masked_across_chunk_ends(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces).encode()
    redactor, out, at, i = Redactor(VALUES), b"", 0, 0
    while at < len(text):
        size = cuts[i % len(cuts)]
        out += redactor.feed(text[at : at + size])
        at, i = at + size, i + 1
    out += redactor.flush()
    assert out == expected(text)


def test_short_values_and_no_values_pass_text_through() -> None:
    assert Redactor(["abc"]).feed(b"abc abc") == b"abc abc"  # under MIN_LENGTH: not masked
    assert Redactor([]).feed(b"plain") == b"plain"
    held = Redactor(["password1"])
    assert held.feed(b"the password") == b"the " and held.flush() == b"password"
