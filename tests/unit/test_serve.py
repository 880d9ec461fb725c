"""A model whose framework is missing: one line naming the extra, or its training environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli.serve import PLAIN, Served, local_environment, runtime_of, server_environment
from dockyard.errors import InvalidRequest
from dockyard.serving import frameworks
from dockyard.serving.launch import BOOT, boot_environ
from dockyard.serving.runtimes.registry import load_runtime
from dockyard.serving.settings import ModelSettings, SettingsError

# runtime: (model file, its first bytes, the packages its runtime imports, the extra)
MODELS = {
    "sklearn": ("model.joblib", b"\0", ("sklearn", "joblib"), "sklearn"),
    "xgboost": ("model.json", b'{"learner": {}}', ("xgboost",), "xgboost"),
    "lightgbm": ("model.txt", b"tree\nversion=v4\n", ("lightgbm",), "lightgbm"),
    "onnx": ("model.onnx", b"\0", ("onnxruntime",), "onnx"),
    "torch": ("model.pt", b"\0", ("torch",), "torch"),
}


def without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make ``packages`` (and whatever of them is already imported) unimportable here."""
    for name in list(sys.modules):
        if name.partition(".")[0] in packages:
            monkeypatch.setitem(sys.modules, name, None)
    for name in packages:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("runtime", sorted(MODELS))
def test_missing_framework_names_the_extra(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, data, packages, extra = MODELS[runtime]
    (tmp_path / file).write_bytes(data)
    monkeypatch.setenv("DOCKYARD_COMPILE_CACHE", "off")
    assert runtime_of(tmp_path, None) == runtime
    without(monkeypatch, *packages)
    assert frameworks.missing(runtime) == packages[0]
    with pytest.raises(SettingsError) as raised:
        load_runtime(tmp_path, ModelSettings())
    message = str(raised.value)
    assert f"is not installed in this Python ({sys.executable}): " in message
    assert message.endswith(f"pip install 'dockyard[{extra}]'")
    assert "\n" not in message


def test_pickled_scikit_learn_model_without_scikit_learn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.serving_models import sklearn_model

    path = sklearn_model(tmp_path)
    monkeypatch.setenv("DOCKYARD_COMPILE_CACHE", "off")
    without(monkeypatch, "sklearn")
    with pytest.raises(SettingsError, match=r"^scikit-learn is not installed in this Python"):
        load_runtime(path, ModelSettings())


def test_frameworks_here_are_found() -> None:
    assert frameworks.missing("sklearn") is None  # the test environment has scikit-learn
    assert frameworks.missing("custom") is None  # its imports are the model's own business
    assert frameworks.not_installed("onnxruntime.capi").startswith("ONNX Runtime is not")
    assert frameworks.not_installed("catboost").endswith(": pip install catboost")


PREPARED = {"hash": "h", "location": "/envs/a", "python": "/envs/a/bin/python", "env": {}}


def test_server_environment_decides_which_python() -> None:
    here = Served("m=models:/m@1")
    assert server_environment([]) is None
    assert server_environment([here]) is None
    trained = Served("models:/m@1", "sklearn", PREPARED)
    assert server_environment([here, trained]) == PREPARED
    assert server_environment([trained, Served("models:/n@2", "joblib", PREPARED)]) == PREPARED
    other = Served("models:/o@3", "torch", {**PREPARED, "python": "/envs/b/bin/python"})
    with pytest.raises(InvalidRequest, match="trained in different environments"):
        server_environment([trained, other])


def test_plain_file_without_its_framework_is_one_line() -> None:
    with pytest.raises(InvalidRequest) as raised:
        server_environment([Served("./model.joblib", "sklearn")])
    assert raised.value.message == (
        f"scikit-learn is not installed in this Python ({sys.executable}): "
        f"pip install 'dockyard[sklearn]'; {PLAIN}"
    )
    assert raised.value.hint is None


def environment(python: Path | None) -> dict[str, Any]:
    local = {"python": str(python), "location": str(python and python.parent.parent)}
    return {"status": {"prepared": {"local": local} if python else {"podman": {}}}}


def test_local_environment(tmp_path: Path) -> None:
    python = tmp_path / "env" / "bin" / "python"
    assert local_environment(None, None) == (None, "it records no training environment")
    assert local_environment("sk", None)[1] == "its training environment 'sk' no longer exists"
    for resource in (environment(None), environment(python), {"status": {}}):
        prepared, why = local_environment("sk", resource)
        assert prepared is None and why.endswith("'sk' is not prepared on this machine")
    python.parent.mkdir(parents=True)
    python.write_text("")
    prepared, why = local_environment("sk", environment(python))
    assert prepared == environment(python)["status"]["prepared"]["local"] and why == ""


def test_boot_environ_puts_the_environment_first_and_dockyard_after() -> None:
    env = boot_environ("/envs/a", {"SEED": "1"}, base={"PATH": "/usr/bin", "HOME": "/h"})
    assert env["PATH"] == "/envs/a/bin:/usr/bin" and env["VIRTUAL_ENV"] == "/envs/a"
    assert env["SEED"] == "1" and env["HOME"] == "/h"
    appended = env["DOCKYARD_APPEND_PATH"].split(":")
    assert appended[0] == str(BOOT.parents[2])  # the directory that holds the dockyard package
    assert BOOT.is_file()
