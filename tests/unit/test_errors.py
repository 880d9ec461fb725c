"""Every error class carries its own code and HTTP status, and the SDK can rebuild it."""

from __future__ import annotations

import pytest

import dockyard.serving.app  # noqa: F401  (defines the model server's errors)
from dockyard.errors import (
    DockyardError,
    StaleWrite,
    TemporaryError,
    _all_subclasses,
    error_class_for,
    from_problem,
)

ALL = [DockyardError, *_all_subclasses(DockyardError)]


def test_every_error_class_declares_a_unique_code_and_its_own_status() -> None:
    assert {c.__name__ for c in ALL} >= {
        "EngineError",
        "ModelArtifactMissing",
        "StaleWrite",
        "TensorError",
        "ModelNotFoundError",
        "ModelNotReadyError",
        "SettingsError",
        "UnsupportedMediaType",
    }
    codes = [c.code for c in ALL]
    assert len(codes) == len(set(codes)), sorted(codes)
    for cls in ALL:
        # declared on the class itself, never inherited silently from a parent
        assert "code" in cls.__dict__ and "status" in cls.__dict__, cls
        assert isinstance(cls.status, int) and 400 <= cls.status <= 599, cls
        module = cls.__module__
        assert module == "dockyard.errors" or module.startswith("dockyard.serving."), cls


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_the_code_rebuilds_the_same_class_through_its_constructor(
    cls: type[DockyardError],
) -> None:
    assert error_class_for(cls.code) is cls
    exc = from_problem(
        {"code": cls.code, "detail": "it broke", "hint": "fix it", "details": {"delay": 2.0}}
    )
    assert type(exc) is cls
    assert (exc.message, exc.hint, exc.details["delay"]) == ("it broke", "fix it", 2.0)
    assert str(exc) == "it broke (fix it)"


def test_statuses_the_api_and_the_model_server_answer() -> None:
    from dockyard.serving.codec import TensorError
    from dockyard.serving.repository import ModelNotFoundError, ModelNotReadyError

    assert error_class_for("engine-error").status == 503
    assert error_class_for("model-artifact-missing").status == 409
    assert StaleWrite.status == 409
    assert (TensorError.status, ModelNotFoundError.status, ModelNotReadyError.status) == (
        400,
        404,
        503,
    )
    # the builtin bases stay, for code that catches them
    assert issubclass(TensorError, ValueError) and issubclass(ModelNotFoundError, LookupError)


def test_unknown_codes_and_bodies_fall_back_to_the_root() -> None:
    exc = from_problem({"code": "from-a-newer-server", "detail": "new"})
    assert type(exc) is DockyardError and exc.message == "new" and exc.hint is None
    assert type(from_problem({})) is DockyardError


def test_temporary_error_keeps_its_delay() -> None:
    assert TemporaryError("busy").delay == 1.0
    assert TemporaryError("busy", delay=3).details == {"delay": 3}
    rebuilt = from_problem({"code": "temporary", "detail": "busy", "details": {"delay": 5}})
    assert isinstance(rebuilt, TemporaryError) and rebuilt.delay == 5.0
