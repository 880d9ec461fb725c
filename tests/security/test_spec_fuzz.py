"""Property-based fuzzing of the spec loader: nothing but InvalidSpec, within the bounds.

Arbitrary YAML-ish text (built from YAML's own punctuation, tags, anchors and escapes) goes
through the text loader; arbitrary nested data (what a JSON body can hold, lone surrogates and
NUL included, with the keys of the real models) goes through the validator of the API. Either
a resource comes out or an :class:`InvalidSpec` whose texts are printable and serializable;
any other exception fails. Memory stays under a bound while the examples run.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidSpec
from dockyard.spec import KINDS
from dockyard.spec.loader import MAX_MESSAGE_CHARS, load_text, validate_data
from dockyard.spec.schema import json_schema

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MEMORY_BOUND = 64 * 2**20  # what one example may allocate at its peak, in bytes

HEAD = "apiVersion: dockyard.dev/v1\nkind: Job\nmetadata:\n  name: a\nspec:\n  command: [x]\n"
TOKENS = [
    # structure
    "\n", "\n  ", "\n    ", " ", "- ", ": ", "? ", ", ", "[", "]", "{", "}", "---\n", "...\n",
    "#", "|", ">", "'", '"', "`", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n",
    # anchors, aliases, merge keys
    "&a ", "&b ", "*a", "*b", "<<: ", "<<: *a",
    # tags
    "!!set ", "!!omap ", "!!pairs ", "!!binary ", "!!python/object/apply:os.getpid ",
    "!!python/name:os.system ", "!!int ", "!!float ", "!!str ", "!!timestamp ", "!foo ", "! ",
    # scalars
    "a", "env", "labels", "command", "priority", "retry", "limit", "memory", "cpu", "gpu",
    "0", "1", "-1", "1.5", "1e15", "1.0e+400", "0x1F", "0o7", "1:30", "1_000", "9" * 50,
    ".inf", "-.inf", ".nan", "~", "null", "true", "yes", "on", "2024-02-30", "2024-01-01",
    "500m", "1Gi", "9" * 30 + "Gi",
    # escapes in double-quoted strings: NUL, lone surrogates, control characters
    '"\\0"', '"\\ud800"', '"\\udfff"', '"\\e"', '"\\x00"', '"\\U0001F600"', '"\\N"',
    # raw characters YAML or a terminal may trip on
    "\t", "\r", "\ufeff", "\x85", "\u2028", "\x00", "\x1b", "é", "\U0001f600",
]  # fmt: skip


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(st.sampled_from(TOKENS), max_size=60)))
    if draw(st.booleans()):
        return HEAD + "  " + body
    return body


def field_names() -> list[str]:
    names: set[str] = set()
    for kind in KINDS:
        stack: list[Any] = [json_schema(kind)]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                names.update(node.get("properties", {}))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return sorted(names)


KEYS = field_names()
NASTY_TEXT = ["", "\x00", "\ud800", "a\udfffb", "\x1b[31m", "../../etc", "/etc", "x" * 70_000]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**30, -(10**30), 10**400, 2**63, 2**64 + 1])
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
    | st.sampled_from(NASTY_TEXT)
)
keys = st.sampled_from(KEYS) | st.text(max_size=8) | st.sampled_from(NASTY_TEXT[:5])
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=40,
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)  # anything at all, not even a mapping
    kind = draw(st.sampled_from([*KINDS, "Jbo", ""]))
    spec = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
    metadata = draw(st.dictionaries(st.sampled_from(["name", "project", "labels", "annotations"]),
                                    values, max_size=3))  # fmt: skip
    metadata.setdefault("name", "a")
    return {"apiVersion": "dockyard.dev/v1", "kind": kind, "metadata": metadata, "spec": spec}


def check_error(exc: InvalidSpec) -> None:
    """The error is what the CLI prints and the API answers: printable, short, serializable."""
    orjson.dumps(exc.details)
    exc.message.encode("utf-8")
    assert exc.details["errors"], exc.message
    for problem in exc.details["errors"]:
        assert f"{problem['source']}{problem['path']}{problem['message']}".isprintable()
        assert len(problem["message"]) <= MAX_MESSAGE_CHARS
        assert isinstance(problem["line"], int)
        assert problem["line"] >= 1


def peak_memory(run: Callable[[], object]) -> int:
    """The peak of what ``run`` allocates (tracemalloc), in bytes; its InvalidSpec is fine."""
    tracemalloc.start()
    try:
        with contextlib.suppress(InvalidSpec):
            run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@FUZZ
@given(text=yaml_texts())
def test_any_yaml_text_loads_or_is_invalid_spec(text: str) -> None:
    try:
        loaded = load_text(text, "fuzz.yaml")
    except InvalidSpec as exc:
        check_error(exc)
    else:
        for item in loaded:
            orjson.dumps(item.resource.model_dump(mode="json", by_alias=True))


@FUZZ
@given(data=documents())
def test_any_data_validates_or_is_invalid_spec(data: Any) -> None:
    try:
        resource = validate_data(data, "document 1")
    except InvalidSpec as exc:
        check_error(exc)
    else:  # what was accepted can be stored and answered: UTF-8, no NUL, finite numbers
        stored = orjson.dumps(resource.model_dump(mode="json", by_alias=True))
        assert b"\\u0000" not in stored


SMALL = settings(FUZZ, max_examples=30)


@SMALL
@given(text=yaml_texts())
def test_yaml_texts_stay_within_the_memory_bound(text: str) -> None:
    assert peak_memory(lambda: load_text(text, "fuzz.yaml")) < MEMORY_BOUND


@SMALL
@given(data=documents())
def test_documents_stay_within_the_memory_bound(data: Any) -> None:
    assert peak_memory(lambda: validate_data(data, "document 1")) < MEMORY_BOUND
