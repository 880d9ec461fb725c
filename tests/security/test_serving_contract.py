"""The model server's contract, checked by a schema-driven fuzzer against a live server.

Schemathesis reads serving_openapi.yaml (the Open Inference Protocol routes this server
answers) and sends generated requests, valid and invalid, to every operation, with the bearer
token (so that the repository extension is reached too): no answer may be a 5xx, and every
answer must be documented, of a documented content type, and match its schema. Its budget
(serving_schemathesis.toml: 20 examples per operation) keeps the run near 10 seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.serving_fixtures import TOKEN, model_repository, running

HERE = Path(__file__).resolve().parent


def test_the_model_server_answers_every_generated_request_as_documented(
    tmp_path: Path,
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.fail("schemathesis is part of the dev dependencies")
    root = model_repository(tmp_path / "models", "spare")
    with running("--model-repository", str(root), env={"DOCKYARD_SERVING_TOKEN": TOKEN}) as server:
        result = subprocess.run(
            [
                st,
                "--no-color",
                "--config-file",
                str(HERE / "serving_schemathesis.toml"),
                "run",
                str(HERE / "serving_openapi.yaml"),
                "--url",
                server.url,
                "--header",
                f"Authorization: Bearer {TOKEN}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,  # Schemathesis keeps a cache (.schemathesis/) where it runs
        )
        report = result.stdout + result.stderr
        assert result.returncode == 0, report[-8000:]
        assert "Fuzzing" in report and "❌" not in report, report[-8000:]
        # the fuzzer got answers, not only refusals: inference succeeded (the schema's
        # example), and load/unload ran with the token (each load logs a line)
        ok = 'dockyard_inference_requests_total{model="onnx",status="200",version="1"} '
        line = next(x for x in server.get("/metrics").text.splitlines() if x.startswith(ok))
        assert float(line.split()[-1]) > 0, line
        log = server.output()
    assert log.count("loaded spare version 1") >= 2, log[-4000:]
    assert "Traceback" not in log and "request failed" not in log, log[-4000:]
