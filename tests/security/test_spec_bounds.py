"""Every number in a spec has a documented upper bound; every string is UTF-8 without NUL.

The documents go through ``validate_data``, the path of the API (JSON, where ``\\ud800`` and
``\\u0000`` escapes arrive as lone surrogates and NUL), and through the YAML loader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.client import Client
from dockyard.errors import InvalidSpec
from dockyard.spec import RetryPolicy, parse_bytes
from dockyard.spec.common import (
    MAX_ANNOTATION_BYTES,
    MAX_ANNOTATIONS,
    MAX_ARGS,
    MAX_COMMAND_BYTES,
    MAX_ENV,
    MAX_ENV_BYTES,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_STRING_BYTES,
)
from dockyard.spec.jobs import MAX_BACKOFF_SECONDS
from dockyard.spec.loader import validate_data
from dockyard.spec.schema import json_schema
from tests.security.helpers import JOB, NO_SERVER, refused, spec_file

BIG = 10**30


def doc(kind: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": kind,
        "metadata": {"name": "a", **metadata},
        "spec": spec,
    }


def job(**spec: Any) -> dict[str, Any]:
    return doc("Job", {"command": ["x"], **spec})


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSpec) as info:
        validate_data(data, "req")
    return [(e["path"], e["message"]) for e in info.value.details["errors"]]


def one_problem(data: dict[str, Any]) -> tuple[str, str]:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


def nest(path: str, value: Any) -> dict[str, Any]:
    """``nest("retry.limit", 3)`` → ``{"retry": {"limit": 3}}``."""
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    assert isinstance(out, dict)
    return out


# -- numbers --------------------------------------------------------------------------------
# (kind, spec path, largest accepted, how the error says it)
NUMBERS = [
    ("Job", "priority", 1_000_000, "expected a number ≤ 1000000"),
    ("Job", "retry.limit", 100, "expected a number ≤ 100"),
    ("Job", "retry.backoffSeconds", 86_400, "expected a number ≤ 86400"),
    ("Job", "retry.maxBackoffSeconds", 86_400, "expected a number ≤ 86400"),
    ("Job", "retry.backoffFactor", 10, "expected a number ≤ 10"),
    ("Job", "timeoutSeconds", 30 * 86_400, "expected a number ≤ 2592000"),
    ("Job", "resources.gpu", 64, "expected a number ≤ 64"),
    ("Job", "resources.cpu", 1024, "expected a CPU amount of at most 1024 cores"),
    ("Job", "resources.cpuLimit", 1024, "expected a CPU amount of at most 1024 cores"),
    ("Job", "resources.memory", 2**50, "expected a size of at most 1 PiB (1024Ti)"),
    ("Service", "replicas", 100, "expected a number ≤ 100"),
    ("Service", "port", 65_535, "expected a number ≤ 65535"),
    ("Service", "batching.maxBatchSize", 4096, "expected a number ≤ 4096"),
    ("Service", "batching.maxLatencyMs", 10_000, "expected a number ≤ 10000"),
    ("Volume", "size", 2**50, "expected a size of at most 1 PiB (1024Ti)"),
]
BASE: dict[str, dict[str, Any]] = {
    "Job": {"command": ["x"]},
    "Service": {"model": "m"},
    "Volume": {},
}


@pytest.mark.parametrize(("kind", "path", "largest", "says"), NUMBERS, ids=[n[1] for n in NUMBERS])
@pytest.mark.parametrize("over", [1, BIG, 10**400], ids=["max+1", "1e30", "1e400"])
def test_every_number_has_an_upper_bound(
    kind: str, path: str, largest: int, says: str, over: int
) -> None:
    validate_data(doc(kind, {**BASE[kind], **nest(path, largest)}))
    value = largest + 1 if over == 1 else over
    field, message = one_problem(doc(kind, {**BASE[kind], **nest(path, value)}))
    assert field == f"spec.{path}"
    assert message.startswith(says), message
    assert len(message) < 200  # a huge number is described, never printed in full


@pytest.mark.parametrize(("kind", "path", "largest", "says"), NUMBERS, ids=[n[1] for n in NUMBERS])
def test_the_bound_is_documented_in_the_field_description(
    kind: str, path: str, largest: int, says: str
) -> None:
    schema = json_schema(kind)
    defs = schema["$defs"]
    node = defs[f"{kind}Spec"]
    *parents, name = path.split(".")
    for parent in parents:
        node = defs[node["properties"][parent]["$ref"].split("/")[-1]]
    description = node["properties"][name]["description"]
    shown = {2**50: "1 PiB", 30 * 86_400: "2,592,000"}.get(largest, f"{largest:,}")
    assert shown in description or str(largest) in description, description


def walk_schema(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((where, node))
        for key, value in node.items():
            out += walk_schema(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += walk_schema(value, f"{where}/{i}")
    return out


def test_every_number_list_and_map_in_the_json_schema_is_bounded() -> None:
    unbounded = []
    for where, node in walk_schema(json_schema()):
        if "/properties/status" in where:
            continue  # written by the server
        kind = node.get("type")
        if kind in ("integer", "number") and "maximum" not in node:
            unbounded.append(where)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(where)
        is_map = kind == "object" and isinstance(node.get("additionalProperties"), dict)
        if is_map and "maxProperties" not in node:
            unbounded.append(where)
    assert unbounded == []


@pytest.mark.parametrize(
    ("memory", "says"),
    [
        ("9" * 400 + "Gi", "expected a size of at most 1 PiB (1024Ti), got '9999"),
        ("1025Ti", "expected a size of at most 1 PiB (1024Ti), got '1025Ti'"),
        ("1." + "5" * 400 + "Gi", "expected a size of at most 1 PiB (1024Ti)"),
        (2**50 + 1, "expected a size of at most 1 PiB (1024Ti), got 1125899906842625"),
    ],
)
def test_memory_quantities_never_build_huge_numbers(memory: Any, says: str) -> None:
    field, message = one_problem(job(resources={"memory": memory}))
    assert field == "spec.resources.memory"
    assert message.startswith(says)


def test_memory_at_the_bound() -> None:
    assert parse_bytes("1024Ti") == 2**50
    assert parse_bytes(str(2**50)) == 2**50


@pytest.mark.parametrize("cpu", ["1025", "1024001m", 10**400, "9" * 400, 1024.5, "1." + "1" * 40])
def test_cpu_over_1024_cores(cpu: Any) -> None:
    field, message = one_problem(job(resources={"cpu": cpu}))
    assert field == "spec.resources.cpu"
    assert message.startswith("expected a CPU amount of at most 1024 cores, got ")


@pytest.mark.parametrize("gpu", ["9" * 400, str(10**19)])
def test_gpu_digits_are_capped(gpu: str) -> None:
    field, message = one_problem(job(resources={"gpu": gpu}))
    assert field == "spec.resources.gpu"
    assert message.startswith("expected an integer ≥ 0 of at most 18 digits, got '")


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("path", ["timeoutSeconds", "retry.backoffSeconds", "retry.backoffFactor"])
def test_non_finite_numbers_from_json_are_refused(path: str, value: float) -> None:
    field, message = one_problem(job(**nest(path, value)))
    assert field == f"spec.{path}"
    assert message.startswith("expected a finite number") or "≤" in message or "≥" in message


def test_backoff_of_1e15_from_yaml_is_refused_with_the_bound(tmp_path: Path) -> None:
    for value in ("1e15", "1.0e+15", "1000000000000000"):
        path = spec_file(tmp_path, JOB + f"  retry: {{backoffSeconds: {value}}}\n")
        err = refused(path)
        assert err.message.startswith(
            f"{path}:7 spec.retry.backoffSeconds: expected a number ≤ 86400, got "
        )


def test_exit_codes_are_bounded() -> None:
    assert one_problem(job(retry={"onExitCodes": [256]})) == (
        "spec.retry.onExitCodes[0]",
        "expected a number ≤ 255, got 256",
    )
    field, message = one_problem(job(retry={"onExitCodes": [1] * 257}))
    assert (field, message) == ("spec.retry.onExitCodes", "expected at most 256 item(s), got 257")


def test_model_versions_are_bounded() -> None:
    field, message = one_problem(doc("Service", {"model": "digits@" + "9" * 400}))
    assert field == "spec.model"
    assert message.startswith("expected NAME, NAME@ALIAS or NAME@VERSION")
    validate_data(doc("Service", {"model": "digits@999999999"}))


# -- retry delays ---------------------------------------------------------------------------
def test_delay_before_never_overflows_even_past_the_bounds() -> None:
    wild = RetryPolicy.model_construct(
        limit=10**9, backoff_seconds=1e300, backoff_factor=1e300, max_backoff_seconds=1e308
    )
    assert wild.delay_before(10**9) == 1e308
    tiny = RetryPolicy.model_construct(
        backoff_seconds=1e-300, backoff_factor=1.0000001, max_backoff_seconds=1.0
    )
    assert 0 < tiny.delay_before(10**6) <= 1.0


@settings(max_examples=200, deadline=None, database=None)
@given(
    backoff=st.floats(0, MAX_BACKOFF_SECONDS),
    factor=st.floats(1, 10),
    cap=st.floats(0, MAX_BACKOFF_SECONDS),
    attempt=st.integers(-5, 10**12),
)
def test_delay_before_stays_within_the_cap(
    backoff: float, factor: float, cap: float, attempt: int
) -> None:
    retry = RetryPolicy(
        backoff_seconds=backoff, backoff_factor=factor, max_backoff_seconds=cap, limit=100
    )
    delay = retry.delay_before(attempt)
    assert 0.0 <= delay <= cap
    assert delay <= retry.delay_before(attempt + 1) or attempt <= 1


# -- strings --------------------------------------------------------------------------------
# where a user writes text, as (document, field path that the error names)
TEXT_PLACES: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "annotation value": (
        lambda s: job() | {"metadata": {"name": "a", "annotations": {"k": s}}},
        "metadata.annotations.k",
    ),
    "annotation key": (
        lambda s: job() | {"metadata": {"name": "a", "annotations": {s: "v"}}},
        "metadata.annotations.{s}",
    ),
    "label value": (
        lambda s: job() | {"metadata": {"name": "a", "labels": {"k": s}}},
        "metadata.labels.k",
    ),
    "label key": (
        lambda s: job() | {"metadata": {"name": "a", "labels": {s: "v"}}},
        "metadata.labels.{s}",
    ),
    "env value": (lambda s: job(env={"A": s}), "spec.env.A"),
    "env key": (lambda s: job(env={s: "v"}), "spec.env.{s}"),
    "command arg": (lambda s: job(command=["python", s]), "spec.command[1]"),
    "working dir": (lambda s: job(workingDir=s), "spec.workingDir"),
    "gpu type": (lambda s: job(resources={"gpuType": s}), "spec.resources.gpuType"),
    "name": (lambda s: doc("Volume", {}) | {"metadata": {"name": s}}, "metadata.name"),
    "source": (lambda s: doc("Dataset", {"volume": "v", "source": s}), "spec.source"),
    "package": (lambda s: doc("Environment", {"packages": [s]}), "spec.packages[0]"),
    "model": (lambda s: doc("Model", {"description": s}), "spec.description"),
    "service env": (lambda s: doc("Service", {"model": "m", "env": {"A": s}}), "spec.env.A"),
    "prepare command": (
        lambda s: doc("Dataset", {"volume": "v", "prepare": {"command": [s]}}),
        "spec.prepare.command[0]",
    ),
}
BAD_TEXT = {
    "nul": (
        "a\x00b",
        "a NUL character (\\x00) at position 1; strings in a spec are UTF-8 text without NUL",
    ),
    "surrogate": (
        "a\ud800b",
        "a lone surrogate '\\ud800' at position 1 is not valid UTF-8; "
        "strings in a spec are UTF-8 text without NUL",
    ),
    "too long": (
        "x" * (MAX_STRING_BYTES + 1),
        f"{MAX_STRING_BYTES + 1:,} bytes long; strings "
        f"in a spec are at most {MAX_STRING_BYTES:,} bytes",
    ),
}


@pytest.mark.parametrize("bad", list(BAD_TEXT))
@pytest.mark.parametrize("place", list(TEXT_PLACES))
def test_every_string_is_utf8_without_nul(place: str, bad: str) -> None:
    make, path = TEXT_PLACES[place]
    text, why = BAD_TEXT[bad]
    field, message = one_problem(make(text))
    shown = text.replace("\x00", "\\x00").replace("\ud800", "\\ud800")
    where = path.replace("{s}", shown)
    assert field == (where if len(where) <= 300 else where[:299] + "…")
    is_key = "{s}" in path
    assert message == ("in this key: " if is_key else "") + why


def test_a_lone_surrogate_from_a_json_escape_is_refused() -> None:
    """The issue's case: ``"\\ud800"`` in the JSON of an apply, stored, then every list 500."""
    data = json.loads('{"note": "caf\\ud800"}')
    assert one_problem(job() | {"metadata": {"name": "a", "annotations": data}}) == (
        "metadata.annotations.note",
        "a lone surrogate '\\ud800' at position 3 is not valid UTF-8; strings in a spec are "
        "UTF-8 text without NUL",
    )


def test_a_lone_surrogate_from_a_yaml_escape_is_refused(tmp_path: Path) -> None:
    path = spec_file(tmp_path, JOB + '  env: {A: "x\\ud800", B: "\\0"}\n')
    err = refused(path)
    assert err.message == (
        f"{path}:7 spec.env.A: a lone surrogate '\\ud800' at position 1 is not valid UTF-8; "
        "strings in a spec are UTF-8 text without NUL"
    )


def test_text_at_the_bound_is_fine() -> None:
    validate_data(job(command=["x" * MAX_STRING_BYTES], env={"A": "é" * (MAX_STRING_BYTES // 2)}))


# -- counts and sizes -----------------------------------------------------------------------
def meta(**metadata: Any) -> dict[str, Any]:
    return job() | {"metadata": {"name": "a", **metadata}}


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            meta(labels={f"k{i}": "v" for i in range(MAX_LABELS + 1)}),
            "metadata.labels",
            f"expected at most {MAX_LABELS} item(s), got {MAX_LABELS + 1}",
        ),
        (
            meta(labels={"k" * (MAX_LABEL_KEY + 1): "v"}),
            f"metadata.labels.{'k' * (MAX_LABEL_KEY + 1)}.[key]",
            f"expected at most {MAX_LABEL_KEY} characters, got {MAX_LABEL_KEY + 1}",
        ),
        (
            meta(labels={"k": "v" * (MAX_LABEL_VALUE + 1)}),
            "metadata.labels.k",
            f"expected at most {MAX_LABEL_VALUE} characters, got {MAX_LABEL_VALUE + 1}",
        ),
        (
            meta(annotations={f"k{i}": "v" for i in range(MAX_ANNOTATIONS + 1)}),
            "metadata.annotations",
            f"expected at most {MAX_ANNOTATIONS} item(s), got {MAX_ANNOTATIONS + 1}",
        ),
        (
            meta(annotations={"a": "x" * 40_000, "b": "y" * 40_000}),
            "metadata.annotations",
            f"expected at most {MAX_ANNOTATION_BYTES:,} bytes of annotations (keys and values), "
            "got 80,002",
        ),
        (
            job(env={f"V{i}": "1" for i in range(MAX_ENV + 1)}),
            "spec.env",
            f"expected at most {MAX_ENV} item(s), got {MAX_ENV + 1}",
        ),
        (
            job(env={f"V{i}": "x" * 60_000 for i in range(5)}),
            "spec.env",
            f"expected at most {MAX_ENV_BYTES:,} bytes of environment (NAME=value), got 300,015",
        ),
        (
            job(command=["x"] * (MAX_ARGS + 1)),
            "spec.command",
            f"expected at most {MAX_ARGS} item(s), got {MAX_ARGS + 1}",
        ),
        (
            job(command=["x" * 60_000] * 5),
            "spec.command",
            f"expected at most {MAX_COMMAND_BYTES:,} bytes of command and arguments, got 300,000",
        ),
        (
            job(volumes=[{"name": "v"}] * 65),
            "spec.volumes",
            "expected at most 64 item(s), got 65",
        ),
    ],
    ids=[
        "labels",
        "label-key",
        "label-value",
        "annotations",
        "annotation-bytes",
        "env",
        "env-bytes",
        "args",
        "command-bytes",
        "volumes",
    ],
)
def test_counts_and_sizes_are_bounded(data: dict[str, Any], path: str, message: str) -> None:
    assert one_problem(data) == (path, message)


# -- paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("wd", ["../../../../tmp/x", "/etc", "a/../../b", "..", "/", "src/../.."])
def test_working_dir_stays_inside_the_code(wd: str) -> None:
    assert one_problem(job(workingDir=wd)) == (
        "spec.workingDir",
        "expected a relative path inside the code such as 'src' (not absolute, no '..'), "
        f"got {wd!r}",
    )


@pytest.mark.parametrize(
    ("wd", "stored"), [("src", "src"), ("./src/", "src"), ("a//b/./c", "a/b/c"), (".", ".")]
)
def test_working_dir_inside_the_code_is_kept_normalized(wd: str, stored: str) -> None:
    assert validate_data(job(workingDir=wd)).spec.working_dir == stored


def code_job(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "code" / "src").mkdir(parents=True)
    (tmp_path / "code" / "src" / "train.py").write_text("print(1)\n")
    return spec_file(tmp_path, JOB + "  code: ./code\n" + extra)


def test_a_missing_working_dir_is_an_error_at_apply(tmp_path: Path) -> None:
    path = code_job(tmp_path, "  workingDir: nope\n")
    with Client(NO_SERVER) as client, pytest.raises(InvalidSpec) as info:
        client.apply_paths([path])
    assert info.value.message == (
        f"{path}:8 spec.workingDir: no directory 'nope' in the code directory "
        f"{(tmp_path / 'code').resolve()}"
    )


def test_a_working_dir_without_code_is_an_error_at_apply(tmp_path: Path) -> None:
    path = spec_file(tmp_path, JOB + "  workingDir: src\n")
    with Client(NO_SERVER) as client, pytest.raises(InvalidSpec) as info:
        client.apply_paths([path])
    assert info.value.message == (
        f"{path}:7 spec.workingDir: 'src' is a directory inside spec.code, and there is no "
        "spec.code"
    )


@pytest.mark.parametrize(
    "extra",
    [
        "  workingDir: src\n",
        "  workingDir: data/d/sub\n  datasets: [{name: d, path: /data/d}]\n",
        "  workingDir: volumes/v\n  volumes: [{name: v}]\n",
    ],
)
def test_a_working_dir_in_the_code_or_a_mount_is_uploaded(
    tmp_path: Path, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded: list[bytes] = []

    def upload(self: Client, archive: bytes) -> str:
        uploaded.append(archive)
        return "sha256:" + "0" * 64

    monkeypatch.setattr(Client, "upload_code", upload)
    monkeypatch.setattr(Client, "apply", lambda self, docs, dry_run=False: docs)
    with Client(NO_SERVER) as client:
        [applied] = client.apply_paths([code_job(tmp_path, extra)])
    assert applied["spec"]["code"] == "sha256:" + "0" * 64
    assert len(uploaded) == 1


@pytest.mark.parametrize(
    "source", ["file:///etc/shadow", "file://relative/data", "https://example.org/d.csv"]
)
def test_dataset_sources_stay_syntactically_valid(source: str) -> None:
    spec = validate_data(doc("Dataset", {"volume": "v", "source": source})).spec
    assert spec.source == source  # which directories a server may read is the server's rule


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("file://", "expected a path after file://, such as file:///srv/data"),
        ("https://", "expected a host after the scheme, such as https://example.org/data.csv"),
        ("http:///path", "expected a host after the scheme"),
        ("https://[::1", "expected a host after the scheme"),
        ("file:///a\nb", "expected a URI without control characters (tab, newline …)"),
        ("https://x/" + "a" * 5000, "expected at most 4096 characters, got 5010"),
    ],
)
def test_bad_dataset_sources(source: str, says: str) -> None:
    field, message = one_problem(doc("Dataset", {"volume": "v", "source": source}))
    assert field == "spec.source"
    assert message.startswith(says)


# -- the property behind all of it ----------------------------------------------------------
@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(kind=st.sampled_from(sorted(BASE)), value=st.integers() | st.floats())
def test_any_number_in_any_numeric_field_is_accepted_or_refused_cleanly(
    kind: str, value: float
) -> None:
    for path in [p for k, p, _, _ in NUMBERS if k == kind]:
        data = doc(kind, {**BASE[kind], **nest(path, value)})
        try:
            validate_data(data)
        except InvalidSpec as exc:
            assert exc.details["errors"][0]["path"] == f"spec.{path}"
