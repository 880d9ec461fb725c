"""The API contract, checked by a schema-driven fuzzer against the live control plane.

Schemathesis reads /openapi.json and sends generated requests (valid and invalid) to every
operation: no answer may be a 5xx, and every answer must be documented and match its schema.
Its budget (tests/contract/schemathesis.toml) keeps the run near 20 seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dockyard.tokens import client_token
from tests import factories as f
from tests.conftest import ROOT, ServerProcess

CONFIG = ROOT / "tests" / "contract" / "schemathesis.toml"


def test_the_api_answers_every_generated_request_as_documented(
    server: ServerProcess, tmp_path: Path
) -> None:
    c = server.client
    source = tmp_path / "data"
    source.mkdir()
    (source / "rows.csv").write_text("a,b\n1,2\n")
    c.apply(
        [
            f.volume("fuzz"),
            f.environment("fuzz"),
            f.dataset("fuzz", volume="fuzz", source=f"file://{source}"),
            f.doc("Model", "fuzz", {}),
            f.job("fuzz", f.python("print('hello')")),
            f.service("fuzz", "fuzz@latest"),
        ]
    )
    c.wait("Job", "fuzz", until={"Succeeded"}, timeout=60)
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is part of the dev dependencies"
    result = subprocess.run(
        [
            st,
            "--no-color",
            "--config-file",
            str(CONFIG),
            "run",
            f"{c.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {client_token(c.settings)}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    assert "Fuzzing" in report and "❌" not in report, report[-8000:]
    assert "Traceback" not in server.log_tail(200), server.log_tail(50)
