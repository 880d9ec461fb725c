"""Resource specs and the YAML loader: validation, quantities, and errors that point at lines."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dockyard.errors import InvalidRequest, InvalidSpec
from dockyard.spec import (
    KINDS,
    DatasetSpec,
    EnvironmentSpec,
    JobSpec,
    ModelRef,
    Resources,
    RetryPolicy,
    ServiceSpec,
    kind_of,
    parse_bytes,
    parse_cpu,
)
from dockyard.spec.loader import load_paths, load_text, validate_data
from dockyard.spec.schema import json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHA = "0123456789abcdef" * 4

MINIMAL_SPECS: dict[str, dict[str, Any]] = {
    "Volume": {},
    "Environment": {},
    "Dataset": {"volume": "data", "source": "file:///srv/data"},
    "Model": {},
    "Job": {"command": ["python", "train.py"]},
    "Service": {"model": "digits"},
}


def doc(kind: str, spec: dict[str, Any], name: str = "thing") -> dict[str, Any]:
    return {"apiVersion": "dockyard.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(*paths: Path) -> InvalidSpec:
    with pytest.raises(InvalidSpec) as info:
        load_paths(paths)
    return info.value


def data_error(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpec) as info:
        validate_data(data, "req")
    return info.value.message


# -- examples -------------------------------------------------------------------------------
def example_dirs() -> Iterator[Path]:
    return iter(sorted(p for p in EXAMPLES.iterdir() if p.is_dir()))


def test_there_are_examples() -> None:
    assert [p.name for p in example_dirs()], f"no examples under {EXAMPLES}"


@pytest.mark.parametrize("example", list(example_dirs()), ids=lambda p: p.name)
def test_every_example_loads(example: Path) -> None:
    loaded = load_paths([example])
    assert loaded
    for item in loaded:
        code = getattr(item.resource.spec, "code", None)
        prepare = getattr(item.resource.spec, "prepare", None)
        code = code or (prepare.code if prepare is not None else None)
        if code is not None:
            assert (Path(item.doc.source).parent / code).is_dir(), f"{item.resource.name}: {code}"


def test_digits_example_content() -> None:
    loaded = load_paths([EXAMPLES / "digits"])
    by_key = {(x.resource.kind, x.resource.name): x.resource for x in loaded}
    assert set(by_key) == {
        ("Volume", "digits-data"),
        ("Volume", "digits-checkpoints"),
        ("Environment", "sklearn"),
        ("Dataset", "digits"),
        ("Job", "train-digits"),
        ("Service", "digits"),
    }
    job = by_key[("Job", "train-digits")].spec
    assert isinstance(job, JobSpec)
    assert job.resources.memory == 2**30
    assert job.retry.limit == 2
    assert job.retry.backoff_seconds == 2
    assert job.timeout_seconds == 600
    assert job.outputs.model is not None
    assert job.outputs.model.name == "digits"
    service = by_key[("Service", "digits")].spec
    assert isinstance(service, ServiceSpec)
    assert service.model_ref() == ModelRef("digits", alias="latest")
    assert service.resources.cpu == 0.5
    assert service.resources.memory == 512 * 2**20


# -- each kind ------------------------------------------------------------------------------
def test_minimal_specs_cover_every_kind() -> None:
    assert set(MINIMAL_SPECS) == set(KINDS)


@pytest.mark.parametrize("kind", list(MINIMAL_SPECS))
def test_each_kind_validates_a_minimal_doc(kind: str) -> None:
    resource = validate_data(doc(kind, MINIMAL_SPECS[kind], name="my-thing"))
    assert isinstance(resource, KINDS[kind])
    assert resource.kind == kind
    assert resource.name == "my-thing"
    assert resource.project == "default"
    assert resource.status is None


def test_job_defaults() -> None:
    spec = JobSpec.model_validate({"command": ["x"]})
    assert spec.resources.cpu == 1.0
    assert spec.resources.memory is None
    assert spec.resources.gpu == 0
    assert spec.retry.limit == 0
    assert spec.priority == 0
    assert spec.outputs.model is None


def test_spec_dict_uses_camel_case() -> None:
    resource = validate_data(doc("Job", {"command": ["x"], "timeoutSeconds": 5}))
    dumped = resource.spec_dict()
    assert dumped["timeoutSeconds"] == 5
    assert "timeout_seconds" not in dumped
    assert dumped["retry"]["backoffSeconds"] == 5.0


def test_job_needs_a_command() -> None:
    assert data_error(doc("Job", {})) == "req:1 spec.command: required field is missing"
    assert "expected at least 1 item(s)" in data_error(doc("Job", {"command": []}))


@pytest.mark.parametrize("name", ["Bad_Name", "-lead", "trail-", "a" * 64, ""])
def test_bad_names_are_refused(name: str) -> None:
    message = data_error(doc("Volume", {}, name=name))
    assert "metadata.name: expected a name of lowercase letters" in message


# -- quantities -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "cores"),
    [("500m", 0.5), (2, 2.0), ("1.5", 1.5), (0.25, 0.25), ("2", 2.0), ("100m", 0.1), (" 3 ", 3.0)],
)
def test_parse_cpu(value: Any, cores: float) -> None:
    assert parse_cpu(value) == pytest.approx(cores)
    assert Resources.model_validate({"cpu": value}).cpu == pytest.approx(cores)


@pytest.mark.parametrize(
    ("value", "n"),
    [
        ("512Mi", 512 * 2**20),
        ("2Gi", 2 * 2**30),
        ("1G", 10**9),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1.5Gi", 3 * 2**29),
        (1073741824, 2**30),
        (0, 0),
        ("100", 100),
    ],
)
def test_parse_bytes(value: Any, n: int) -> None:
    assert parse_bytes(value) == n
    assert Resources.model_validate({"memory": value}).memory == n


@pytest.mark.parametrize("value", ["lots", "-500m", "1.5.2", "2 cores", True, "", "1e3"])
def test_bad_cpu_message(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Resources.model_validate({"cpu": value})
    got = repr(value) if isinstance(value, str) else str(value)
    assert info.value.errors()[0]["msg"] == (
        f"expected a CPU amount such as 2, 0.5 or '500m', got {got}"
    )


def test_negative_cpu_message() -> None:
    with pytest.raises(ValidationError) as info:
        Resources.model_validate({"cpu": -1})
    assert info.value.errors()[0]["msg"] == "expected a CPU amount ≥ 0, got -1"


@pytest.mark.parametrize("value", ["12 parsecs", "1Gb", "2gi", -1, 1.5, True, "Mi"])
def test_bad_memory_message(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Resources.model_validate({"memory": value})
    got = repr(value) if isinstance(value, str) else str(value)
    assert info.value.errors()[0]["msg"] == f"expected a size such as '512Mi' or '2Gi', got {got}"


@pytest.mark.parametrize("value", [3, "3"])
def test_gpu_accepts_whole_numbers(value: Any) -> None:
    assert Resources.model_validate({"gpu": value}).gpu == 3


@pytest.mark.parametrize("value", ["two", -1, 1.5, True, "-1"])
def test_gpu_refuses_the_rest(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Resources.model_validate({"gpu": value})
    assert info.value.errors()[0]["msg"].startswith("expected an integer ≥ 0, got ")


def test_nan_cpu_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: a
        spec:
          command: [x]
          resources:
            cpu: .nan
        """,
    )
    load_error(path)


# -- errors name file, line and field -------------------------------------------------------
def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        # a comment first
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: train
        spec:
          command: [python, train.py]
          resources:
            cpu: 1
            gpu: two
        """,
    )
    err = load_error(path)
    assert err.message == f"{path}:10 spec.resources.gpu: expected an integer ≥ 0, got 'two'"
    assert err.details["errors"] == [
        {
            "source": str(path),
            "line": 10,
            "path": "spec.resources.gpu",
            "message": "expected an integer ≥ 0, got 'two'",
        }
    ]
    assert "nothing was changed" in (err.hint or "")


def test_error_line_in_second_document_and_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata:
          name: data
        spec: {}
        ---
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: train
        spec:
          command: [python]
          volumes:
            - name: data
            - name: other
              path: relative/dir
        """,
    )
    err = load_error(path)
    assert err.message == (
        f"{path}:16 spec.volumes[1].path: expected an absolute path without '..' such as "
        "'/data/x', got 'relative/dir'"
    )


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: Bad_Name
        spec:
          command: [x]
          resources:
            cpu: lots
            memory: 12 parsecs
        """,
    )
    err = load_error(path)
    assert err.message.startswith("3 problems:\n")
    assert [(e["line"], e["path"]) for e in err.details["errors"]] == [
        (4, "metadata.name"),
        (8, "spec.resources.cpu"),
        (9, "spec.resources.memory"),
    ]
    assert f"  {path}:8 spec.resources.cpu: expected a CPU amount" in err.message


def test_errors_from_several_files_are_collected(tmp_path: Path) -> None:
    ok = "apiVersion: dockyard.dev/v1\nkind: Volume\nmetadata: {name: ok}\nspec: {}\n"
    write(tmp_path, ok, "a.yaml")
    bad1 = write(tmp_path, "apiVersion: x\nkind: Volume\nmetadata: {name: v}\n", "b.yaml")
    bad2 = write(tmp_path, "kind: Job\nmetadata: {name: j}\nspec: {}\n", "c.yml")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    err = load_error(tmp_path)
    assert {(e["source"], e["path"]) for e in err.details["errors"]} == {
        (str(bad1), "apiVersion"),
        (str(bad1), "spec"),
        (str(bad2), "apiVersion"),
        (str(bad2), "spec.command"),
    }


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert err.message == f"{tmp_path / 'nope.yaml'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    err = load_error(tmp_path / "empty")
    assert "no .yaml or .yml files" in err.message


def test_unknown_field_suggests(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: a
        spec:
          comand: [x]
        """,
    )
    errors = load_error(path).details["errors"]
    unknown = [e for e in errors if e["path"] == "spec.comand"]
    assert len(unknown) == 1
    assert unknown[0]["line"] == 6
    assert unknown[0]["message"].startswith("unknown field 'comand'; did you mean 'command'? ")
    assert "valid fields: checkpoint, code, command," in unknown[0]["message"]


def test_unknown_nested_field_suggests_camel_case() -> None:
    spec = {"command": ["x"], "resources": {"cpus": 2}, "volumes": [{"name": "v", "readonly": 1}]}
    message = data_error(doc("Job", spec))
    assert (
        "spec.resources.cpus: unknown field 'cpus'; did you mean 'cpu'? "
        "valid fields: cpu, cpuLimit, gpu, gpuType, memory"
    ) in message
    assert "spec.volumes[0].readonly: unknown field 'readonly'; did you mean 'readOnly'?" in message


def test_unknown_field_without_close_match() -> None:
    message = data_error(doc("Volume", {"zzzzzz": 1}))
    assert (
        "unknown field 'zzzzzz'; valid fields: backup, replicas, size, snapshots, source, tier"
        in message
    )
    assert "did you mean" not in message


def test_unknown_kind_suggests_closest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Jbo
        metadata:
          name: a
        spec: {}
        """,
    )
    assert load_error(path).message == (
        f"{path}:2 kind: unknown kind 'Jbo'; valid kinds: Volume, Environment, Dataset, Model, "
        "Job, Service (did you mean 'Job'?)"
    )
    assert "did you mean 'Service'" in data_error(doc("Servce", {}))
    assert "did you mean" not in data_error(doc("Deployment", {}))


def test_missing_kind() -> None:
    data = doc("Job", {"command": ["x"]})
    del data["kind"]
    assert "kind: required field is missing; valid kinds:" in data_error(data)


def test_wrong_api_version(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        kind: Volume
        apiVersion: dockyard.dev/v2
        metadata:
          name: a
        spec: {}
        """,
    )
    assert load_error(path).message == (
        f"{path}:2 apiVersion: expected 'dockyard.dev/v1', got 'dockyard.dev/v2'"
    )


def test_missing_api_version_is_not_defaulted() -> None:
    data = doc("Volume", {})
    del data["apiVersion"]
    assert data_error(data) == "req:1 apiVersion: required field is missing"


def test_duplicate_names_in_one_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata:
          name: data
        spec: {}
        ---
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata:
          labels: {a: b}
          name: data
        spec: {}
        """,
    )
    assert load_error(path).message == (
        f"{path}:11 metadata.name: duplicate Volume 'data' (first defined at {path}:4); "
        "names must be unique per kind"
    )


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    body = "apiVersion: dockyard.dev/v1\nkind: Volume\nmetadata:\n  name: data\nspec: {}\n"
    first = write(tmp_path, body, "a.yaml")
    second = write(tmp_path, body, "b.yaml")
    err = load_error(tmp_path)
    assert err.details["errors"][0]["source"] == str(second)
    assert f"first defined at {first}:4" in err.message


def test_same_name_is_fine_for_other_kinds_and_projects() -> None:
    text = textwrap.dedent(
        """
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata: {name: digits}
        spec: {}
        ---
        apiVersion: dockyard.dev/v1
        kind: Model
        metadata: {name: digits}
        spec: {}
        ---
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata: {name: digits, project: other}
        spec: {}
        """
    )
    loaded = load_text(text, "x.yaml")
    assert [(x.resource.kind, x.resource.project) for x in loaded] == [
        ("Volume", "default"),
        ("Model", "default"),
        ("Volume", "other"),
    ]


def test_duplicate_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: a
        spec:
          command: [x]
          resources:
            cpu: 1
            memory: 1Gi
            cpu: 2
        """,
    )
    assert load_error(path).message == (
        f"{path}:10 spec.resources.cpu: duplicate key 'cpu' (first at line 8)"
    )


def test_invalid_yaml_gives_a_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Volume
        metadata:
          name: [a
        spec: {}
        """,
    )
    err = load_error(path)
    assert err.message.startswith(f"{path}:5: invalid YAML: ")
    assert err.details["errors"][0]["line"] == 5


def test_document_that_is_not_a_mapping() -> None:
    with pytest.raises(InvalidSpec) as info:
        load_text("- a\n- b\n", "list.yaml")
    assert info.value.message == (
        "list.yaml:1: expected a document with apiVersion, kind, metadata and spec"
    )


MODEL_DOC = "apiVersion: dockyard.dev/v1\nkind: Model\nmetadata: {name: m}\nspec: {}\n"


@pytest.mark.parametrize(
    ("text", "names"),
    [("", []), ("# only a comment\n", []), ("---\n" + MODEL_DOC, ["m"])],
    ids=["empty", "comment", "leading"],
)
def test_documents_without_content_are_skipped(text: str, names: list[str]) -> None:
    assert [x.resource.name for x in load_text(text)] == names


@pytest.mark.parametrize(
    "text",
    [MODEL_DOC + "---\n", "---\n---\n" + MODEL_DOC, MODEL_DOC + "---\n# trailing comment\n"],
    ids=["trailing", "double", "trailing-comment"],
)
def test_explicit_empty_documents_are_skipped(text: str) -> None:
    assert [x.resource.name for x in load_text(text)] == ["m"]


def test_wrong_type_message() -> None:
    message = data_error(doc("Job", {"command": ["x"], "priority": "high"}))
    assert message == "req:1 spec.priority: expected an integer, got 'high'"


# -- datasets -------------------------------------------------------------------------------
def test_dataset_needs_exactly_one_origin() -> None:
    expected = "req:1 spec: give exactly one of 'source' (a URI) or 'prepare' (a command)"
    assert data_error(doc("Dataset", {"volume": "v"})) == expected
    both = {"volume": "v", "source": "file:///x", "prepare": {"command": ["make"]}}
    assert data_error(doc("Dataset", both)) == expected
    prepared = DatasetSpec.model_validate({"volume": "v", "prepare": {"command": ["make"]}})
    assert prepared.prepare is not None
    assert prepared.prepare.command == ["make"]


@pytest.mark.parametrize(
    "source",
    ["file:///srv/data", "https://x.org/d.csv", "http://h/d", "s3://bucket/x", "volume://raw/a"],
)
def test_dataset_sources(source: str) -> None:
    assert DatasetSpec.model_validate({"volume": "v", "source": source}).source == source


@pytest.mark.parametrize("source", ["/srv/data", "ftp://h/x", "HTTPS://x"])
def test_dataset_bad_sources(source: str) -> None:
    message = data_error(doc("Dataset", {"volume": "v", "source": source}))
    assert message == (
        "req:1 spec.source: expected a URI starting with file://, https://, http://, s3:// or "
        f"volume://, got {source!r}"
    )


@pytest.mark.parametrize("source", ["volume://Bad_Name/x", "volume://raw/../etc"])
def test_dataset_bad_volume_sources(source: str) -> None:
    message = data_error(doc("Dataset", {"volume": "v", "source": source}))
    assert message.startswith("req:1 spec.source: expected")


def test_a_pinned_dataset_version() -> None:
    from dockyard.spec.common import DatasetMount

    assert DatasetMount.model_validate({"name": "digits@v2"}).version == 2
    assert DatasetMount.model_validate({"name": "digits"}).version is None
    message = data_error(doc("Job", {"command": ["x"], "datasets": [{"name": "digits@latest"}]}))
    assert "expected NAME@vN" in message


def test_dataset_sha256() -> None:
    ok = DatasetSpec.model_validate({"volume": "v", "source": "file:///x", "sha256": SHA})
    assert ok.sha256 == SHA
    for bad in [SHA.upper(), SHA[:-1], SHA + "0", "g" * 64]:
        message = data_error(doc("Dataset", {"volume": "v", "source": "file:///x", "sha256": bad}))
        assert message == f"req:1 spec.sha256: expected 64 lowercase hex digits, got {bad!r}"


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../../b"])
def test_dataset_path_must_stay_in_the_volume(path: str) -> None:
    message = data_error(doc("Dataset", {"volume": "v", "source": "file:///x", "path": path}))
    assert "spec.path: expected a relative path inside the volume" in message


# -- services and model references ----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ref", "shown"),
    [
        ("digits", ModelRef("digits", alias="latest"), "digits@latest"),
        ("digits@3", ModelRef("digits", version=3), "digits@3"),
        ("digits@prod", ModelRef("digits", alias="prod"), "digits@prod"),
        ("my-model@canary-2", ModelRef("my-model", alias="canary-2"), "my-model@canary-2"),
    ],
)
def test_model_ref_parse(text: str, ref: ModelRef, shown: str) -> None:
    parsed = ModelRef.parse(text)
    assert parsed == ref
    assert str(parsed) == shown


@pytest.mark.parametrize(
    "text", ["Digits", "@3", "digits@0", "digits@-1", "digits@Prod", "a@b@c", "d@3x", "a b"]
)
def test_model_ref_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="bad"):
        ModelRef.parse(text)


def test_service_model_validation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: dockyard.dev/v1
        kind: Service
        metadata:
          name: digits
        spec:
          replicas: 2
          model: "Digits@0"
        """,
    )
    assert load_error(path).message == (
        f"{path}:7 spec.model: expected NAME, NAME@ALIAS or NAME@VERSION "
        "(e.g. 'digits@latest', 'digits@3'), got 'Digits@0'"
    )


def test_service_defaults_and_port_bounds() -> None:
    spec = ServiceSpec.model_validate({"model": "digits@2"})
    assert spec.replicas == 1
    assert spec.resources.cpu == 0.5
    assert spec.model_ref() == ModelRef("digits", version=2)
    message = data_error(doc("Service", {"model": "digits", "port": 70000}))
    assert message == "req:1 spec.port: expected a number ≤ 65535, got 70000"


# -- mounts and env -------------------------------------------------------------------------
def test_mount_paths() -> None:
    spec = JobSpec.model_validate(
        {
            "command": ["x"],
            "volumes": [{"name": "a"}, {"name": "b", "path": "/mnt/b/"}],
            "datasets": [{"name": "d"}, {"name": "e", "path": "/in"}],
        }
    )
    assert [v.mount_path() for v in spec.volumes] == ["/volumes/a", "/mnt/b"]
    assert [d.mount_path() for d in spec.datasets] == ["/data/d", "/in"]


@pytest.mark.parametrize("path", ["data", "./data", "/data/../etc", "../x"])
@pytest.mark.parametrize("where", ["volumes", "datasets"])
def test_mount_paths_must_be_absolute(where: str, path: str) -> None:
    message = data_error(doc("Job", {"command": ["x"], where: [{"name": "a", "path": path}]}))
    assert message == (
        f"req:1 spec.{where}[0].path: expected an absolute path without '..' such as '/data/x', "
        f"got {path!r}"
    )


def test_checkpoint_path_must_be_absolute() -> None:
    spec = {"command": ["x"], "checkpoint": {"volume": "c", "path": "ckpt"}}
    assert "spec.checkpoint.path: expected an absolute path" in data_error(doc("Job", spec))
    ok = JobSpec.model_validate({"command": ["x"], "checkpoint": {"volume": "c"}})
    assert ok.checkpoint is not None
    assert ok.checkpoint.path == "/checkpoints"


def test_model_output_path_must_be_relative() -> None:
    spec = {"command": ["x"], "outputs": {"model": {"name": "m", "path": "/abs/model"}}}
    message = data_error(doc("Job", spec))
    assert "spec.outputs.model.path: expected a path relative to the output directory" in message


@pytest.mark.parametrize("name", ["MY_VAR", "_x", "a1", "PATH"])
def test_env_names_accepted(name: str) -> None:
    assert JobSpec.model_validate({"command": ["x"], "env": {name: "v"}}).env == {name: "v"}


@pytest.mark.parametrize("name", ["1BAD", "MY-VAR", "A=B", "", "with space"])
def test_env_names_refused(name: str) -> None:
    message = data_error(doc("Job", {"command": ["x"], "env": {"OK": "1", name: "v"}}))
    assert message == (
        f"req:1 spec.env: expected environment variable names like MY_VAR, got {name!r}"
    )


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("Service", {"model": "digits", "env": {"A=B": "v"}}),
        ("Dataset", {"volume": "v", "prepare": {"command": ["x"], "env": {"A=B": "v"}}}),
        ("Environment", {"env": {"A=B": "v"}}),
    ],
)
def test_env_names_refused_in_every_kind(kind: str, spec: dict[str, Any]) -> None:
    assert "expected environment variable names" in data_error(doc(kind, spec))


# -- schema ---------------------------------------------------------------------------------
def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_json_schema_has_every_kind() -> None:
    schema = json_schema()
    json.dumps(schema)  # serialisable as is
    assert set(KINDS) <= set(schema["$defs"])
    assert {v["$ref"] for v in schema["oneOf"]} == {f"#/$defs/{k}" for k in KINDS}
    job = schema["$defs"]["Job"]
    assert "spec" in job["properties"]
    assert {"apiVersion", "kind", "metadata"} <= set(job["properties"])
    dangling = [r for r in _refs(schema) if r.removeprefix("#/$defs/") not in schema["$defs"]]
    assert dangling == []


def test_json_schema_of_one_kind() -> None:
    schema = json_schema("Service")
    assert schema["$schema"].endswith("2020-12/schema")
    spec = schema["$defs"]["ServiceSpec"]["properties"]
    assert "model" in spec
    assert "replicas" in spec


# -- retries, environments, kinds -----------------------------------------------------------
def test_retry_delay_before() -> None:
    retry = RetryPolicy.model_validate(
        {"limit": 5, "backoffSeconds": 5, "backoffFactor": 3, "maxBackoffSeconds": 40}
    )
    assert [retry.delay_before(n) for n in range(1, 6)] == [0.0, 5.0, 15.0, 40.0, 40.0]
    assert RetryPolicy().delay_before(2) == 5.0
    assert RetryPolicy().delay_before(3) == 10.0
    assert RetryPolicy().delay_before(0) == 0.0


def test_retry_policy_bounds() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"backoffFactor": 0.5})
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"backoffSeconds": -1})


def test_environment_content_hash() -> None:
    a = EnvironmentSpec.model_validate({"packages": ["numpy==2.0", "scikit-learn==1.5.2"]})
    b = EnvironmentSpec.model_validate({"packages": [" scikit-learn==1.5.2", "numpy==2.0"]})
    c = EnvironmentSpec.model_validate({"packages": ["numpy==2.1", "scikit-learn==1.5.2"]})
    assert a.content_hash("3.11") == b.content_hash("3.11")
    assert len(a.content_hash("3.11")) == 64
    assert a.content_hash("3.11") != a.content_hash("3.12")
    assert a.content_hash("3.11") != c.content_hash("3.11")


@pytest.mark.parametrize("python", ["3", "3.11.2", "2.7", "python3"])
def test_environment_python_version(python: str) -> None:
    assert "expected a Python version such as '3.11'" in data_error(
        doc("Environment", {"python": python})
    )


@pytest.mark.parametrize("package", ["", "  ", "-r requirements.txt", "--index-url=x"])
def test_environment_packages(package: str) -> None:
    assert "expected pip requirements" in data_error(doc("Environment", {"packages": [package]}))


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        ("jobs", "Job"),
        ("job", "Job"),
        ("Job", "Job"),
        ("JOBS", "Job"),
        ("svc", "Service"),
        ("env", "Environment"),
        ("datasets", "Dataset"),
        ("vol", "Volume"),
    ],
)
def test_kind_of(spelling: str, kind: str) -> None:
    assert kind_of(spelling) == kind


def test_kind_of_suggests() -> None:
    with pytest.raises(InvalidRequest) as info:
        kind_of("jbos")
    assert info.value.message == "unknown kind 'jbos'"
    assert (info.value.hint or "").startswith("did you mean 'jobs'? kinds are: volumes,")
    with pytest.raises(InvalidRequest) as info:
        kind_of("xyzzy")
    assert "did you mean" not in (info.value.hint or "")
