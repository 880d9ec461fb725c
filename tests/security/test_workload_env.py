"""A workload gets a clean, documented environment and private run files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import factories as f
from tests.conftest import ServerProcess

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def environ_of(c: Any, name: str) -> dict[str, str]:
    job = c.wait("Job", name, timeout=60)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    out: dict[str, str] = json.loads(b"".join(c.logs("Job", name)))
    return out


def test_the_servers_environment_does_not_leak_into_workloads(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(
        SERVER_ONLY_SECRET="shh", CORP_PROXY="http://proxy:3128", DOCKYARD_PASS_ENV="CORP_PROXY"
    )
    c = srv.start()
    c.apply([f.job("env", f.python(PRINT_ENV), env={"MINE": "1"})])
    env = environ_of(c, "env")
    assert "SERVER_ONLY_SECRET" not in env
    assert not [k for k in env if k.startswith("DOCKYARD_") and k not in DOCUMENTED]
    assert env["CORP_PROXY"] == "http://proxy:3128"  # passed on because the operator said so
    assert env["MINE"] == "1" and env["LANG"]
    assert env["PATH"].split(":")[-1] == "/bin"  # a system PATH after Dockyard's own


DOCUMENTED = {
    "DOCKYARD_JOB_NAME",
    "DOCKYARD_ATTEMPT",
    "DOCKYARD_PROJECT",
    "DOCKYARD_WORKLOAD_ID",
    "DOCKYARD_OUTPUT_DIR",
}


def test_run_files_are_private(server: ServerProcess) -> None:
    c = server.client
    c.apply([f.job("quiet", f.python("print('x')"))])
    assert c.wait("Job", "quiet", timeout=60)["status"]["phase"] == "Succeeded"
    runs = server.home / "runs"
    (run,) = [p for p in runs.iterdir() if p.name.startswith("job-quiet-")]
    assert runs.stat().st_mode & 0o777 == 0o700 and run.stat().st_mode & 0o777 == 0o700
    for name in ("spec.json", "log", "status.json", "shim.json"):
        assert (run / name).stat().st_mode & 0o777 == 0o600, name
    assert (server.home / "dockyard.db").parent.stat().st_mode & 0o777 == 0o700


def test_a_working_directory_that_is_not_there_says_so(
    server: ServerProcess, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    (code / "src").mkdir(parents=True)
    (code / "src" / "main.py").write_text("print('hi')")
    c = server.client
    from dockyard.data.code import pack

    ref = c.upload_code(pack(code))
    c.apply([f.job("lost", ["python", "main.py"], code=ref, workingDir="scr")])
    job = c.wait("Job", "lost", timeout=60)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "StartFailed")
    assert "workingDir 'scr' is not a directory of the job's code" in job["status"]["message"]
