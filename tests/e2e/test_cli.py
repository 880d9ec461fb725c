"""The CLI as a user runs it: real processes, the digits example, errors without tracebacks."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import CLI, DOCKYARD

# `dockyard serve` in a Python where scikit-learn cannot be imported
NO_SKLEARN = (
    "import sys; sys.modules.update(sklearn=None, joblib=None); "
    "from dockyard.cli.main import main; main()"
)


def serve_without_scikit_learn(cli: CLI, env_cache: Path, compile_cache: Path) -> None:
    """The README's `dockyard serve --model digits=models:/digits@production`, from a Python
    without scikit-learn: it execs the server in the environment the model was trained in."""
    import signal

    import httpx

    from tests.conftest import free_port

    port = free_port()
    argv = ["serve", "--model", "digits=models:/digits@production", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_SKLEARN, *argv],
        env={**cli.env, "DOCKYARD_COMPILE_CACHE": str(compile_cache)},
        cwd=ROOT,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, proc.communicate()[1]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        request = json.loads((ROOT / "examples/digits/sample-request.json").read_text())
        answer = httpx.post(f"{url}/v2/models/digits/infer", json=request, timeout=30).json()
        assert answer["outputs"][0]["data"] == [8]
        assert answer["model_version"] == "1"
        proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the server: it is this process
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.communicate()[1]
    assert f"running in the training environment, {env_cache}" in stderr, stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.slow
def test_digits_example_end_to_end(cli: CLI, env_cache: Path, compile_cache: Path) -> None:
    out = cli("apply", "-f", "examples/digits/", "--wait").stdout
    for name in (
        "volume/digits-data",
        "environment/sklearn",
        "dataset/digits",
        "job/train-digits",
        "service/digits",
    ):
        assert f"{name} created" in out
    prediction = cli.json("predict", "digits", "--file", "examples/digits/sample-request.json")
    assert prediction["outputs"][0]["data"] == [8]  # type: ignore[index]
    assert prediction["id"] == "demo-1"  # type: ignore[index]
    job = cli.json("get", "job", "train-digits")
    assert job["status"]["phase"] == "Succeeded"  # type: ignore[index]
    version = cli.json("models", "show", "digits", "1")
    assert version["metrics"]["accuracy"] > 0.9  # type: ignore[index]
    dataset = cli.json("get", "dataset", "digits")
    assert version["lineage"]["datasets"] == [  # type: ignore[index]
        {"name": "digits", "sha256": dataset["status"]["sha256"]}
    ]  # type: ignore[index]
    assert version["lineage"]["codeHash"].startswith("sha256:")  # type: ignore[index]
    cli("models", "alias", "digits", "production", "1")
    listed = cli.json("models", "list")
    assert listed[0]["status"]["aliases"] == {"latest": 1, "production": 1}  # type: ignore[index]
    serve_without_scikit_learn(cli, env_cache, compile_cache)
    assert "accuracy" in cli("logs", "train-digits").stdout
    assert "Attempts" in cli("describe", "job", "train-digits").stdout
    again = cli("apply", "-f", "examples/digits/").stdout
    assert again.count("unchanged") == 6 and "created" not in again
    table = cli("get").stdout
    assert "train-digits" in table and "Succeeded" in table
    url = cli.json("get", "service", "digits")["status"]["url"]  # type: ignore[index]
    cli("server", "stop")
    status = cli("server", "status", ok=False)
    assert "not running" in status.stdout
    import httpx

    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/v2/health/ready", timeout=2)  # the model server stopped too


def test_bad_file_gives_one_line_with_file_and_line(cli: CLI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""\
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: train
        spec:
          command: [python, train.py]
          resources:
            cpu: 2
            gpu: two
        """)
    )
    result = cli("apply", "-f", str(bad), ok=False)
    assert result.returncode == 1
    assert f"{bad}:9 spec.resources.gpu: expected an integer ≥ 0, got 'two'" in result.stderr
    missing = cli("apply", "-f", str(tmp_path / "nope.yaml"), ok=False)
    assert "nope.yaml: no such file or directory" in missing.stderr


def test_serving_a_file_without_its_framework_names_the_extra(cli: CLI, tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\0")
    result = subprocess.run(
        [sys.executable, "-c", NO_SKLEARN, "serve", "--model", f"m={model}"],
        env={**cli.env, "COLUMNS": "60"},
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: scikit-learn is not installed in this Python "
        f"({sys.executable}): pip install 'dockyard[sklearn]'; "
        "or serve a registry version, which runs in its training environment\n"
    )


def test_server_side_errors_point_at_the_file(cli: CLI, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        textwrap.dedent("""\
        apiVersion: dockyard.dev/v1
        kind: Job
        metadata:
          name: train
        spec:
          command: [python, -c, "print(1)"]
          environment: nope
        """)
    )
    result = cli("apply", "-f", str(job), ok=False)
    assert f"{job}:7 spec.environment: environment 'nope' not found" in result.stderr
    assert "nothing was changed" in result.stderr


def test_server_lifecycle_and_remote_url(cli: CLI, home: Path, env_cache: Path) -> None:
    assert "not running" in cli("server", "status", ok=False).stdout
    started = cli("server", "start").stdout
    assert "Dockyard server running at http://127.0.0.1:" in started
    url = started.split(" at ")[1].split()[0]
    status = cli("server", "status").stdout
    assert url in status and "runtime local" in status
    stranger = CLI(home.parent / "elsewhere", env_cache, DOCKYARD_URL=url)
    refused = stranger("get", "jobs", ok=False)  # another home: no token
    assert "a valid token is needed" in refused.stderr and "DOCKYARD_TOKEN" in refused.stderr
    token = (home / "token").read_text().strip()
    assert (home / "token").stat().st_mode & 0o777 == 0o600
    remote = CLI(home.parent / "elsewhere", env_cache, DOCKYARD_URL=url, DOCKYARD_TOKEN=token)
    remote("apply", "-f", "examples/digits/", "--dry-run")
    assert remote.json("get", "jobs") == []  # dry run changed nothing
    cli("server", "stop")
    down = remote("get", "jobs", ok=False)
    assert "cannot reach the Dockyard server" in down.stderr


def test_predict_input_errors(cli: CLI) -> None:
    result = cli("predict", "digits", "--json", "{not json", ok=False)
    assert "not valid JSON" in result.stderr
    result = cli("predict", "digits", ok=False)
    assert "exactly one of --json or --file" in result.stderr


def test_schema(cli: CLI) -> None:
    everything = json.loads(cli("schema").stdout)
    assert {v["$ref"].split("/")[-1] for v in everything["oneOf"]} == {
        "Volume",
        "Environment",
        "Dataset",
        "Model",
        "Job",
        "Service",
    }
    job = json.loads(cli("schema", "job").stdout)
    assert "spec" in job["properties"]
    assert "unknown kind 'jbo'" in cli("schema", "jbo", ok=False).stderr


@pytest.mark.containers
def test_digits_example_in_podman_containers(
    home: Path, env_cache: Path, base_image: str, tmp_path: Path
) -> None:
    """`make demo RUNTIME=podman`, as tests: the same files, every workload in a container."""
    from tests.conftest import BASE, CONF, podman

    ours: set[str] = set()
    cli = CLI(
        home,
        env_cache,
        DOCKYARD_RUNTIME="podman",
        DOCKYARD_CONTAINERS_CONF=str(CONF),
        DOCKYARD_BASE_IMAGE=BASE,
    )
    try:
        out = cli("apply", "-f", "examples/digits/", "--wait", timeout=1800).stdout
        assert "service/digits created" in out
        prediction = cli.json("predict", "digits", "--file", "examples/digits/sample-request.json")
        assert prediction["outputs"][0]["data"] == [8]  # type: ignore[index]
        job = cli.json("get", "job", "train-digits")
        attempt = job["status"]  # type: ignore[index]
        assert attempt["phase"] == "Succeeded"
        names = podman(
            "ps",
            "-a",
            "--filter",
            "label=dev.dockyard.managed=true",
            "--format",
            "{{.Names}} {{.Image}}",
        ).stdout
        assert "job-train-digits-" in names and "localhost/dockyard/env:" in names
        assert "localhost/dockyard/serve-digits:1-" in names  # model server image
        images = cli.json("images", "list")
        assert any(
            i["model"] == "digits" and i["modelVersion"] == "1"  # type: ignore[index]
            for i in images
        )  # type: ignore[union-attr]
        assert "accuracy" in cli("logs", "train-digits").stdout
        # the serving image was compiled at build time: the server never imports scikit-learn
        assert "(compiled, from cache)" in cli("logs", "service", "digits").stdout
        from dockyard.client import Client
        from dockyard.settings import Settings

        with Client(settings=Settings(home=home), autostart=False) as c:
            ours = {
                w["id"]
                for kind, name in (
                    ("Job", "train-digits"),
                    ("Service", "digits"),
                    ("Dataset", "digits"),
                )
                for w in c.workloads(kind, name)
            }
        again = cli("apply", "-f", "examples/digits/").stdout
        assert again.count("unchanged") == 6
        # the same service with a token (spec.auth): it reaches the container as a secret
        token = tmp_path / "token"
        token.write_text("container-serving-token-123\n")
        cli("secrets", "set", "serving", f"token=@{token}")
        guarded = tmp_path / "guarded.yaml"
        text = (ROOT / "examples/digits/digits.yaml").read_text()
        guarded.write_text(
            text[text.index("apiVersion: dockyard.dev/v1\nkind: Service") :]
            + "  auth:\n    token: {secretRef: serving/token}\n"
        )
        cli("apply", "-f", str(guarded), "--wait", timeout=600)
        request = ("predict", "digits", "--file", "examples/digits/sample-request.json")
        refused = cli(*request, ok=False)
        assert refused.returncode == 1 and "needs its token" in refused.stderr
        answer = cli.json(*request, "--token-file", str(token))
        assert answer["outputs"][0]["data"] == [8]  # type: ignore[index]
    finally:
        subprocess.run(
            [*DOCKYARD, "delete", "-f", "examples/digits/", "--purge"],
            env=cli.env,
            cwd=ROOT,
            capture_output=True,
            timeout=300,
            check=False,
        )
        subprocess.run(
            [*DOCKYARD, "server", "stop"],
            env=cli.env,
            capture_output=True,
            timeout=300,
            check=False,
        )
    left = set(
        podman(
            "ps", "-a", "--filter", "label=dev.dockyard.managed=true", "--format", "{{.Names}}"
        ).stdout.split()
    )
    assert ours and not ours & left  # delete removed this example's containers
