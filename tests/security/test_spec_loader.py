"""The YAML loader reads what anyone may write: bounded, and every oddity is `file:line: why`.

Each case of the security issue runs through the real loader (``load_paths``) and, where the
issue saw a traceback or a hang, through the CLI in a subprocess: exit 1, one ``error:`` line
naming the file, no traceback, and back within the subprocess timeout.
"""

from __future__ import annotations

import os
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from dockyard.errors import InvalidSpec
from dockyard.spec import loader
from dockyard.spec.loader import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_FILE_BYTES,
    MAX_NUMBER_CHARS,
    MAX_REPORTED_ERRORS,
    MAX_VALUES,
    load_paths,
    validate_data,
)
from tests.security.helpers import JOB, assert_one_clean_error, dockyard, refused, spec_file


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Ten levels of nine aliases of the level below: a billion strings once expanded."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


DEEP_LIST = "x: " + "[" * 5000 + "]" * 5000 + "\n"

# the cases the issue saw end in a traceback or a hang, and what the error says now
CLI_CASES = {
    "recursive-anchor": ("a: &a [1, *a]\n", 1, "recursive alias"),
    "recursive-mapping": ("a: &m\n  b: *m\n", 2, "recursive alias"),
    "set-key": (JOB + "  env:\n    ? !!set {a, b}\n    : x\n", 8, "got a !!set as a key"),
    "deep-list": (DEEP_LIST, 1, f"nested deeper than {MAX_DEPTH} levels"),
    "inf": (JOB + "  timeoutSeconds: .inf\n", 7, "expected a finite number, got .inf"),
    "billion-laughs": (billion_laughs(), None, f"more than {MAX_VALUES:,} values"),
    "empty": ("", 1, "the file is empty"),
}


# -- aliases and anchors --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["a: &a [1, *a]\n", "a: &m\n  b: *m\n", "a: &m\n  b: [1, {c: *m}]\n"]
)
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, text: str) -> None:
    err = refused(spec_file(tmp_path, text))
    assert "the alias *" in err.message
    assert "is used inside the value it names (a recursive alias)" in err.message


def test_billion_laughs_stops_at_the_value_budget_in_little_memory(tmp_path: Path) -> None:
    path = spec_file(tmp_path, billion_laughs())
    tracemalloc.start()
    try:
        err = refused(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.message.startswith(f"{path}:")
    assert f"more than {MAX_VALUES:,} values" in err.message
    assert peak < 64 * 2**20, f"the loader used {peak / 2**20:.0f} MiB"


def test_the_value_budget_points_at_the_alias_that_expands(tmp_path: Path) -> None:
    err = refused(spec_file(tmp_path, billion_laughs()))
    line = err.details["errors"][0]["line"]
    assert 2 <= line <= 10  # a use of an alias, not the anchor of 'lol' on line 1


def test_aliases_within_the_limits_work(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata: {name: a, labels: {team: &team vision, owner: *team}}
        spec:
          command: [python, train.py]
          env: &env {A: "1"}
          datasets: [{name: d}]
          outputs: {model: {name: m, path: &p model.joblib, metrics: *p}}
        """
    ).lstrip()
    [job] = load_paths([spec_file(tmp_path, text)])
    assert job.resource.metadata.labels == {"team": "vision", "owner": "vision"}
    assert job.resource.spec.outputs.model.metrics == "model.joblib"


def test_too_many_aliases(tmp_path: Path) -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    err = refused(spec_file(tmp_path, text))
    assert f"more than {MAX_ALIASES} aliases (*name) in one file" in err.message


def test_an_alias_cannot_nest_a_value_deeper_than_the_limit(tmp_path: Path) -> None:
    half = MAX_DEPTH // 2 + 2
    text = "a: &deep " + "[" * half + "]" * half + "\n" + "b: " + "[" * half + "*deep" + "]" * half
    err = refused(spec_file(tmp_path, text + "\n"))
    assert f"nested deeper than {MAX_DEPTH} levels" in err.message
    assert err.details["errors"][0]["line"] == 2  # where the alias is used


def test_undefined_alias(tmp_path: Path) -> None:
    err = refused(spec_file(tmp_path, JOB + "  env: *nope\n"))
    assert err.message.startswith(f"{tmp_path / 'spec.yaml'}:7: invalid YAML: ")
    assert "undefined alias" in err.message


def test_merge_keys_are_refused_clearly(tmp_path: Path) -> None:
    text = JOB + "  env:\n    <<: {A: '1'}\n"
    err = refused(spec_file(tmp_path, text))
    assert err.message == f"{tmp_path / 'spec.yaml'}:8 spec.env: merge keys ('<<') are not " + (
        "supported; write the keys out"
    )


# -- nesting --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        DEEP_LIST,
        "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "".join("  " * i + "a:\n" for i in range(MAX_DEPTH + 2)) + "  " * (MAX_DEPTH + 2) + "1\n",
        "- " * 5000 + "x\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings", "block-lists"],
)
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    err = refused(spec_file(tmp_path, text))
    assert f"nested deeper than {MAX_DEPTH} levels of mappings and lists" in err.message


def test_nesting_up_to_the_limit_is_read() -> None:
    data = load_text_data("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    depth, value = 0, data["x"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == MAX_DEPTH - 2


def load_text_data(text: str) -> dict[str, Any]:
    docs = loader.parse_yaml(text, "t.yaml")
    assert len(docs) == 1
    data = docs[0].data
    assert isinstance(data, dict)
    return data


# -- tags, keys and scalars -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!set {a, b}", "!!set"),
        ("!!omap [{a: 1}]", "!!omap"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!python/object/apply:os.getpid []", "!!python/object/apply:os.getpid"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!custom x", "!custom"),
    ],
)
def test_tags_are_refused_at_their_line(tmp_path: Path, value: str, tag: str) -> None:
    err = refused(spec_file(tmp_path, JOB + f"  env: {value}\n"))
    assert err.message == (
        f"{tmp_path / 'spec.yaml'}:7 spec.env: unsupported tag {tag}: a spec holds mappings, "
        "lists, strings, numbers, true/false and null"
    )


def test_a_python_tag_is_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = JOB + f'  env: !!python/object/apply:os.mkdir ["{marker}"]\n'
    refused(spec_file(tmp_path, text))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("key", "what"),
    [("? !!set {a, b}", "a !!set"), ("? [a, b]", "a list"), ("? {a: 1}", "a mapping")],
)
def test_keys_that_are_not_text_are_refused(tmp_path: Path, key: str, what: str) -> None:
    err = refused(spec_file(tmp_path, JOB + f"  env:\n    {key}\n    : x\n"))
    assert err.message == (
        f"{tmp_path / 'spec.yaml'}:8 spec.env: expected a text key, got {what} as a key"
    )


def test_plain_scalar_keys_are_their_text(tmp_path: Path) -> None:
    text = JOB.replace("  name: a\n", "  name: a\n  labels: {1: a, true: b, null: c, 0x1F: d}\n")
    [job] = load_paths([spec_file(tmp_path, text)])
    assert job.resource.metadata.labels == {"1": "a", "true": "b", "null": "c", "0x1F": "d"}


@pytest.mark.parametrize("number", [".inf", "-.inf", ".nan", ".NaN", "1.0e+400"])
@pytest.mark.parametrize("field", ["timeoutSeconds", "priority", "retry:\n    limit"])
def test_non_finite_numbers_are_refused(tmp_path: Path, number: str, field: str) -> None:
    err = refused(spec_file(tmp_path, JOB + f"  {field}: {number}\n"))
    assert f"expected a finite number, got {number} (write it in quotes if it is text)" in (
        err.message
    )


def test_quoted_inf_is_text(tmp_path: Path) -> None:
    [job] = load_paths([spec_file(tmp_path, JOB.replace("[x]", "[echo, '.inf', .nan1]"))])
    assert job.resource.spec.command == ["echo", ".inf", ".nan1"]


@pytest.mark.parametrize("digits", [MAX_NUMBER_CHARS + 1, 400, 5000])
def test_long_number_literals_are_refused_before_conversion(tmp_path: Path, digits: int) -> None:
    err = refused(spec_file(tmp_path, JOB + f"  priority: {'9' * digits}\n"))
    assert err.message == (
        f"{tmp_path / 'spec.yaml'}:7 spec.priority: a number of {digits:,} characters; numbers "
        f"in a spec have at most {MAX_NUMBER_CHARS} (write it in quotes if it is text)"
    )


def test_dates_stay_text(tmp_path: Path) -> None:
    """PyYAML turns ``2024-02-30`` into a date (and fails: no such day); a spec keeps text."""
    text = JOB.replace("  name: a\n", "  name: a\n  annotations: {d: 2024-02-30, t: 2024-01-01}\n")
    [job] = load_paths([spec_file(tmp_path, text)])
    assert job.resource.metadata.annotations == {"d": "2024-02-30", "t": "2024-01-01"}


# -- files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n", "---\n", "---\n...\n"])
def test_an_empty_file_says_so_and_names_the_file(tmp_path: Path, text: str) -> None:
    path = spec_file(tmp_path, text)
    assert refused(path).message == (
        f"{path}:1: the file is empty: no documents in it (only blank lines, comments or '---')"
    )


def test_an_empty_file_among_good_ones_is_named(tmp_path: Path) -> None:
    spec_file(tmp_path, JOB, "a.yaml")
    empty = spec_file(tmp_path, "", "b.yaml")
    assert refused(tmp_path).message.startswith(f"{empty}:1: the file is empty")


def test_a_file_over_the_size_limit_is_not_parsed(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n")
    size = path.stat().st_size
    assert refused(path).message == (
        f"{path}:1: {size:,} bytes; a spec file is at most {MAX_FILE_BYTES:,} bytes (1 MiB)"
    )


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    padding = MAX_FILE_BYTES - len(JOB.encode()) - 3
    path = spec_file(tmp_path, JOB + "#" + "x" * padding + "\n")
    assert path.stat().st_size <= MAX_FILE_BYTES
    assert [x.resource.name for x in load_paths([path])] == ["a"]


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = spec_file(tmp_path, JOB.encode() + b"  env: {A: caf\xe9}\n")
    assert refused(path).message == (
        f"{path}:7: not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8"
    )


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_raw_control_characters_are_refused(tmp_path: Path, char: str) -> None:
    path = spec_file(tmp_path, JOB + f"  env: {{A: 'a{char}b'}}\n")
    assert refused(path).message == (
        f"{path}:7: the character U+{ord(char):04X} is not allowed in a YAML file"
    )


def test_a_fifo_given_as_a_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert refused(fifo).message == f"{fifo}:1: not a regular file (a FIFO, device or socket)"


def test_a_fifo_in_a_directory_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    spec_file(tmp_path, JOB, "job.yaml")
    assert [x.resource.name for x in load_paths([tmp_path])] == ["a"]


def test_a_device_is_refused(tmp_path: Path) -> None:
    assert refused(Path("/dev/zero")).message == (
        "/dev/zero:1: not a regular file (a FIFO, device or socket)"
    )


def test_too_many_documents(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "--- {}\n" * (MAX_DOCUMENTS + 1))
    err = refused(path)
    assert err.message == f"{path}:{MAX_DOCUMENTS + 1}: more than 10,000 documents in one apply"


def test_too_many_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILES", 3)
    for i in range(4):
        spec_file(tmp_path, JOB, f"{i}.yaml")
    with pytest.raises(InvalidSpec, match=r"more than 3 YAML files"):
        load_paths([tmp_path])


def test_too_many_directory_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_DIRECTORY_ENTRIES", 10)
    for i in range(11):
        (tmp_path / f"notes{i}.txt").write_text("")
    with pytest.raises(InvalidSpec, match=r"more than 10 files and directories to look at"):
        load_paths([tmp_path])


# -- what an error looks like ---------------------------------------------------------------
def test_many_problems_are_counted_and_the_first_listed(tmp_path: Path) -> None:
    text = JOB + "".join(f"  unknown{i}: 1\n" for i in range(200))
    err = refused(spec_file(tmp_path, text))
    assert err.message.startswith("200 problems:\n")
    assert err.message.endswith(f"\n  … and {200 - MAX_REPORTED_ERRORS} more")
    assert len(err.details["errors"]) == MAX_REPORTED_ERRORS
    assert err.details["count"] == 200


def test_problems_over_several_files_are_counted(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        spec_file(tmp_path, JOB + "".join(f"  unknown{i}: 1\n" for i in range(60)), name)
    err = refused(tmp_path)
    assert err.message.startswith("120 problems:\n")


@pytest.mark.parametrize(
    "data",
    [
        {"apiVersion": "dockyard.dev/v1", "kind": "Job", "metadata": {"name": "a"}, "spec": {}},
        {"kind": "\ud800\x1b[31m", "spec": {}},
        {"apiVersion": "\x00", "kind": "Job", "metadata": {"name": "a\ud800"}, "spec": {}},
        {"kind": "Job", "metadata": {"name": "a"}, "spec": {"\ud800\x00": 1, "command": ["x"]}},
        {"kind": "Job", "metadata": {"name": "a"}, "spec": {"command": "x" * 100_000}},
        {"kind": "Job", "metadata": {"name": "a"}, "spec": {"priority": 10**4000}},
    ],
)
def test_error_texts_are_printable_short_and_serializable(data: dict[str, object]) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_data(data, "req")
    err = info.value
    orjson.dumps(err.details)  # the API answers it as JSON: no lone surrogate may remain
    err.message.encode("utf-8")
    for problem in err.details["errors"]:
        text = f"{problem['path']} {problem['message']}"
        assert text.isprintable(), text
        assert len(problem["message"]) <= loader.MAX_MESSAGE_CHARS


# -- the CLI --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_prints_one_line_for_each_case(tmp_path: Path, case: str) -> None:
    text, line, expected = CLI_CASES[case]
    path = spec_file(tmp_path, text, f"{case}.yaml")
    run = dockyard(tmp_path / "home", "apply", "-f", str(path), "--dry-run")
    error = assert_one_clean_error(run, path, line)
    assert expected in error


def test_cli_does_not_wait_for_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    run = dockyard(tmp_path / "home", "apply", "-f", str(fifo))
    assert "not a regular file" in assert_one_clean_error(run, fifo, 1)


def test_cli_escapes_control_characters_in_messages(tmp_path: Path) -> None:
    text = JOB.replace("  name: a\n", '  name: a\n  annotations: {"\\e[31mk": "red\\0"}\n')
    path = spec_file(tmp_path, text)
    run = dockyard(tmp_path / "home", "apply", "-f", str(path))
    error = assert_one_clean_error(run, path, 5)
    assert "\x1b" not in run.stderr
    assert "metadata.annotations.\\x1b[31mk: a NUL character (\\x00) at position 3" in error
