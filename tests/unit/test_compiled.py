"""Compiled scikit-learn models: same answers as scikit-learn, and a cache that needs no sklearn."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeRegressor

from dockyard.serving import compile as compile_cli
from dockyard.serving.runtimes import compiled
from dockyard.serving.runtimes.sklearn import SklearnRuntime
from dockyard.serving.settings import ModelSettings

X, Y = load_digits(return_X_y=True)
IRIS_X, IRIS_Y = load_iris(return_X_y=True)
TEST = X[::7]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "compiled"
    monkeypatch.setenv("DOCKYARD_COMPILE_CACHE", str(directory))
    return directory


def fitted(make: Callable[[], Any], x: Any = X, y: Any = Y) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of small fits
        return make().fit(x, y)


MODELS: dict[str, Callable[[], Any]] = {
    "logistic, 10 classes": lambda: fitted(lambda: LogisticRegression(max_iter=200)),
    "logistic, 2 classes": lambda: fitted(LogisticRegression, X, Y % 2),
    "logistic, string labels": lambda: fitted(
        LogisticRegression, IRIS_X, np.array(["setosa", "versicolor", "virginica"])[IRIS_Y]
    ),
    "ridge classifier": lambda: fitted(RidgeClassifier),
    "linear svc, 2 classes": lambda: fitted(LinearSVC, X, Y % 2),
    "linear regression": lambda: fitted(LinearRegression, X, Y.astype(float)),
    "ridge, two targets": lambda: fitted(Ridge, X, np.column_stack([Y, Y * 2.0])),
    "random forest": lambda: fitted(lambda: RandomForestClassifier(20, random_state=0)),
    "extra trees regressor": lambda: fitted(
        lambda: ExtraTreesRegressor(10, random_state=0), X, Y.astype(float)
    ),
    "decision tree regressor": lambda: fitted(DecisionTreeRegressor, X, Y.astype(float)),
    "standard scaler + logistic": lambda: fitted(
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    ),
    "min-max scaler + forest": lambda: fitted(
        lambda: make_pipeline(MinMaxScaler(), RandomForestClassifier(10, random_state=0))
    ),
}


def same(ours: dict[str, Any], model: Any, x: Any) -> None:
    for name, value in ours.items():
        expected = np.asarray(getattr(model, name)(x))
        assert value.dtype == expected.dtype, name
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(value, expected, err_msg=name)


@pytest.mark.parametrize("kind", list(MODELS))
def test_compiled_models_answer_like_scikit_learn_also_from_the_cache(
    kind: str, cache: Path
) -> None:
    model = MODELS[kind]()
    x = IRIS_X if model.n_features_in_ == 4 else TEST
    result = compiled.compile_model(model)
    assert result is not None and result.prefix is None, kind
    outputs = list(result.outputs)
    same(result.run(x, outputs), model, x)
    assert compiled.store("k", result, {"class": kind}) is not None
    restored, info = compiled.load("k") or (None, None)
    assert restored is not None and info == {"class": kind}
    same(restored.run(x, outputs), model, x)


def test_preprocessing_without_a_compiled_form_keeps_scikit_learn_and_is_not_cached() -> None:
    model = fitted(lambda: make_pipeline(PCA(8), RandomForestClassifier(10, random_state=0)))
    result = compiled.compile_model(model)
    assert result is not None and result.prefix is not None
    same(result.run(TEST, ["predict", "predict_proba"]), model, TEST)
    assert compiled.store("k", result, {}) is None


def test_models_without_a_compiled_form_and_forests_when_trees_are_off() -> None:
    assert compiled.compile_model(fitted(KNeighborsClassifier)) is None
    forest = MODELS["random forest"]()
    assert compiled.compile_model(forest, trees=False) is None


def save(model: Any, directory: Path, settings: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    if settings is not None:
        (directory / "model-settings.json").write_text(json.dumps(settings))
    return directory


def test_a_cached_model_is_served_without_importing_scikit_learn(
    tmp_path: Path, cache: Path
) -> None:
    model = MODELS["standard scaler + logistic"]()
    path = save(model, tmp_path / "m")
    first = SklearnRuntime(path, ModelSettings())
    assert not first.from_cache and first.cache_file is not None
    assert first.signature.extra["class"] == "Pipeline (compiled)"
    np.save(tmp_path / "x.npy", TEST)
    script = f"""
import sys, json, numpy as np
from pathlib import Path
from dockyard.serving.runtimes.sklearn import SklearnRuntime
from dockyard.serving.settings import ModelSettings
runtime = SklearnRuntime(Path({str(path)!r}), ModelSettings())
x = np.load({str(tmp_path / "x.npy")!r})
out = runtime.predict({{"input-0": x}}, ["predict", "predict_proba"])
print(json.dumps({{"sklearn": any(m.startswith("sklearn") for m in sys.modules),
                  "cached": runtime.from_cache, "class": runtime.signature.extra["class"],
                  "outputs": [o.name for o in runtime.signature.outputs],
                  "predict": out["predict"].tolist(), "proba": out["predict_proba"].tolist()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    answer = json.loads(done.stdout)
    assert answer["sklearn"] is False and answer["cached"] is True
    assert answer["class"] == "Pipeline (compiled, from cache)"
    assert answer["outputs"] == ["predict", "predict_proba", "decision_function"]
    np.testing.assert_array_equal(answer["predict"], model.predict(TEST))
    np.testing.assert_allclose(answer["proba"], model.predict_proba(TEST), rtol=0, atol=1e-9)


def test_outputs_that_are_not_compiled_load_the_model_on_demand(tmp_path: Path) -> None:
    model = fitted(lambda: SGDClassifier(loss="log_loss", random_state=0))
    path = save(model, tmp_path / "m")
    SklearnRuntime(path, ModelSettings())
    runtime = SklearnRuntime(path, ModelSettings(method="predict_proba"))
    assert runtime.from_cache and runtime._model is None
    assert runtime.compiled is not None and "predict_proba" not in runtime.compiled.outputs
    out = runtime.predict({"input-0": TEST}, ["predict"])
    assert runtime._model is None  # compiled
    np.testing.assert_array_equal(out["predict"], model.predict(TEST))
    out = runtime.predict({"input-0": TEST}, ["predict_proba"])
    assert runtime._model is not None  # loaded for the output that has no compiled form
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(TEST), atol=1e-12)


def test_a_damaged_cache_entry_is_a_miss_and_is_rewritten(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(MODELS["logistic, 10 classes"](), tmp_path / "m")
    SklearnRuntime(path, ModelSettings())
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not a numpy archive")
    runtime = SklearnRuntime(path, ModelSettings())
    assert not runtime.from_cache and runtime.compiled is not None
    assert "unreadable compiled-model cache entry" in caplog.text
    assert SklearnRuntime(path, ModelSettings()).from_cache


def test_the_cache_follows_the_file_and_can_be_turned_off(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(MODELS["logistic, 2 classes"](), tmp_path / "m")
    SklearnRuntime(path, ModelSettings())
    save(MODELS["logistic, 10 classes"](), tmp_path / "m")  # retrained in place
    runtime = SklearnRuntime(path, ModelSettings())
    assert not runtime.from_cache and len(list(cache.glob("*.npz"))) == 2
    assert runtime.signature.outputs[1].shape == (-1, 10)
    off = SklearnRuntime(path, ModelSettings(parameters={"compile": False}))
    assert off.compiled is None
    assert off.describe() == {"class": "LogisticRegression", "compiled": False}
    monkeypatch.setenv("DOCKYARD_COMPILE_CACHE", "off")
    assert compiled.cache_dir() is None
    assert not SklearnRuntime(path, ModelSettings()).from_cache


def test_compile_command_fills_the_cache_and_names_what_it_cannot_read(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(MODELS["random forest"](), tmp_path / "model" / "sub")
    save(fitted(KNeighborsClassifier), tmp_path / "knn")
    assert compile_cli.main([str(tmp_path / "model"), str(tmp_path / "knn")]) == 0
    out = capsys.readouterr().out
    assert "RandomForestClassifier compiled into" in out
    assert "KNeighborsClassifier has no compiled form" in out
    assert compile_cli.main([str(tmp_path / "model")]) == 0
    assert "already compiled" in capsys.readouterr().out
    assert compile_cli.main([str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
