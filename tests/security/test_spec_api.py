"""The issue's cases against a real server: refused at apply (422, file-less but exact), and
nothing stored that could break the answers to everyone else afterwards."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ServerProcess

JOB = {"apiVersion": "dockyard.dev/v1", "kind": "Job", "metadata": {"name": "j"}}


def apply_raw(server: ServerProcess, body: str) -> httpx.Response:
    """POST the JSON text as is: escapes such as ``\\ud800`` reach the server unchanged."""
    return httpx.post(
        server.client.url + "/api/v1/apply",
        content=body.encode("ascii"),
        headers={"content-type": "application/json", **server.auth},
        timeout=30,
    )


def job_with(spec: dict[str, Any]) -> str:
    return json.dumps({"documents": [{**JOB, "spec": {"command": ["x"], **spec}}]})


def test_bad_specs_are_refused_and_lists_keep_answering(server: ServerProcess) -> None:
    annotation = json.dumps(
        {
            "documents": [
                {
                    **JOB,
                    "metadata": {"name": "j", "annotations": {"n": "x"}},
                    "spec": {"command": ["y"]},
                }
            ]
        }
    ).replace('"x"', '"caf\\ud800"')
    cases = {
        annotation: ("metadata.annotations.n", "a lone surrogate '\\ud800' at position 3"),
        job_with({"env": {"A": "a\u0000b"}}): ("spec.env.A", "a NUL character (\\x00)"),
        job_with({"retry": {"backoffSeconds": 1e15}}): (
            "spec.retry.backoffSeconds",
            "expected a number ≤ 86400, got 1000000000000000.0",
        ),
        job_with({"priority": 10**30}): ("spec.priority", "expected a number ≤ 1000000"),
        job_with({"resources": {"memory": "9" * 400 + "Gi"}}): (
            "spec.resources.memory",
            "expected a size of at most 1 PiB (1024Ti)",
        ),
        job_with({"workingDir": "../../../../tmp/x"}): (
            "spec.workingDir",
            "expected a relative path inside the code",
        ),
    }
    for body, (path, message) in cases.items():
        response = apply_raw(server, body)
        assert response.status_code == 422, response.text
        [error] = response.json()["details"]["errors"]
        assert error["path"] == path
        assert error["message"].startswith(message), error["message"]
    listed = httpx.get(server.client.url + "/api/v1/jobs", timeout=30, headers=server.auth)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
