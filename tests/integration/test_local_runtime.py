"""The local runtime with real processes: start, observe, stop, limits, logs, adoption."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.runtimes.base import Mount, RunState, WorkloadRequest
from dockyard.runtimes.local import LocalRuntime
from dockyard.settings import Settings
from tests.conftest import wait_until


@pytest.fixture
def runtime(settings: Settings) -> LocalRuntime:
    return LocalRuntime(settings)


def run(runtime: LocalRuntime, request: WorkloadRequest, timeout: float = 30) -> RunState:
    runtime.start(request)
    wait_until(lambda: runtime.observe(request.id).done, timeout, message=f"{request.id} ends")
    return runtime.observe(request.id).phase


def py(code: str) -> list[str]:
    return ["python", "-c", code]


def test_success_writes_log_and_output(runtime: LocalRuntime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    request = WorkloadRequest(
        "ok",
        py(
            "import os; print('hello'); open(os.environ['DOCKYARD_OUTPUT_DIR'] + '/f', "
            "'w').write('x')"
        ),
        output_dir=out,
    )
    assert run(runtime, request) == RunState.SUCCEEDED
    state = runtime.observe("ok")
    assert state.exit_code == 0 and state.reason == "Completed"
    assert b"hello" in b"".join(runtime.logs("ok"))
    assert (out / "f").read_text() == "x"


def test_failure_reports_exit_code(runtime: LocalRuntime) -> None:
    assert run(runtime, WorkloadRequest("bad", py("import sys; sys.exit(3)"))) == RunState.FAILED
    state = runtime.observe("bad")
    assert state.exit_code == 3 and state.reason == "Error"


def test_missing_command_is_named(runtime: LocalRuntime) -> None:
    assert run(runtime, WorkloadRequest("nocmd", ["no-such-program-xyz", "--x"])) == RunState.FAILED
    state = runtime.observe("nocmd")
    assert state.reason == "CommandNotFound"
    assert "no-such-program-xyz" in state.message
    assert b"not found" in b"".join(runtime.logs("nocmd"))


def test_env_mounts_and_working_dir(runtime: LocalRuntime, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("42")
    code = tmp_path / "code"
    (code / "sub").mkdir(parents=True)
    (code / "sub" / "main.py").write_text(
        "import os; print(open('../data/in/x.txt').read(), os.environ['MY_VAR'], "
        "os.environ['DOCKYARD_DATA_IN'])"
    )
    request = WorkloadRequest(
        "mounts",
        ["python", "main.py"],
        env={"MY_VAR": "hi"},
        code_dir=code,
        working_dir="sub",
        mounts=(Mount(data, "/data/in", True, "DOCKYARD_DATA_IN"),),
    )
    assert run(runtime, request) == RunState.SUCCEEDED
    log = b"".join(runtime.logs("mounts")).decode()
    assert f"42 hi {data}" in log


def test_start_is_idempotent(runtime: LocalRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    request = WorkloadRequest("once", py(f"open({str(marker)!r}, 'a').write('x')"))
    runtime.start(request)
    runtime.start(request)  # a second start of the same id must not run it again
    wait_until(lambda: runtime.observe("once").done)
    LocalRuntime(runtime.settings).start(request)  # nor after a "restart"
    assert marker.read_text() == "x"


def test_stop_ends_the_process_group(runtime: LocalRuntime, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    runtime.start(WorkloadRequest("long", py(code)))
    wait_until(lambda: pidfile.exists() and pidfile.read_text() != "", message="child started")
    assert runtime.observe("long").phase == RunState.RUNNING
    runtime.stop("long", grace=2)
    state = runtime.observe("long")
    assert state.phase == RunState.FAILED and state.reason == "Stopped"
    child = int(pidfile.read_text())
    wait_until(lambda: not _alive(child), 10, message="grandchild gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_timeout(runtime: LocalRuntime) -> None:
    request = WorkloadRequest("slow", py("import time; time.sleep(30)"), timeout=0.5)
    assert run(runtime, request) == RunState.FAILED
    assert runtime.observe("slow").reason == "Timeout"


def test_memory_limit(runtime: LocalRuntime) -> None:
    hog = "x = bytearray(400 * 1024 * 1024); print('allocated', len(x))"
    request = WorkloadRequest("hog", py(hog), memory=100 * 1024 * 1024)
    assert run(runtime, request) == RunState.FAILED
    state = runtime.observe("hog")
    limits = state.details["limits"]
    assert limits["memory"] in ("cgroup-v1", "cgroup-v2", "rlimit-as")
    if limits["memory"].startswith("cgroup"):
        assert state.reason == "OOMKilled", state
    else:
        assert b"MemoryError" in b"".join(runtime.logs("hog"))
    assert b"allocated" not in b"".join(runtime.logs("hog"))


def test_a_new_runtime_adopts_running_workloads(runtime: LocalRuntime, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (
        f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)\nprint('done')"
    )
    runtime.start(WorkloadRequest("adopt", py(code)))
    fresh = LocalRuntime(runtime.settings)  # what a restarted server sees
    wait_until(lambda: fresh.observe("adopt").phase == RunState.RUNNING)
    assert "adopt" in fresh.list_workloads()
    go.write_text("")
    wait_until(lambda: fresh.observe("adopt").done)
    assert fresh.observe("adopt").phase == RunState.SUCCEEDED


def test_killed_supervisor_is_lost_not_running(runtime: LocalRuntime) -> None:
    import json
    import signal

    runtime.start(WorkloadRequest("victim", py("import time; time.sleep(60)")))
    shim_file = runtime.runs / "victim" / "shim.json"
    wait_until(shim_file.exists)
    info = json.loads(shim_file.read_text())
    os.kill(info["pid"], signal.SIGKILL)
    fresh = LocalRuntime(runtime.settings)
    wait_until(lambda: fresh.observe("victim").done, 10)
    state = fresh.observe("victim")
    assert state.phase == RunState.LOST and "supervisor" in state.message
    # the child dies with its supervisor (PR_SET_PDEATHSIG), nothing is orphaned
    wait_until(lambda: not _alive(int(info["childPid"])), 10, message="child gone")


def test_unknown_workload_is_not_found(runtime: LocalRuntime) -> None:
    assert runtime.observe("never-started").phase == RunState.NOT_FOUND


def test_cpu_share_and_limit_are_applied(runtime: LocalRuntime, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)"
    runtime.start(WorkloadRequest("capped", py(code), cpu=0.5, cpu_limit=0.25))
    shim_file = runtime.runs / "capped" / "shim.json"
    wait_until(shim_file.exists)
    limits = runtime.observe("capped").details["limits"]
    env = (runtime.runs / "capped" / "spec.json").read_text()
    assert '"OMP_NUM_THREADS": "1"' in env
    if "cpuLimit" in limits:  # cgroups are writable here: check what the kernel was told
        cgroup_dirs = list(Path("/sys/fs/cgroup").glob("**/dockyard/capped"))
        quota_files = [
            d / name
            for d in cgroup_dirs
            for name in ("cpu.cfs_quota_us", "cpu.max")
            if (d / name).exists()
        ]
        assert quota_files and quota_files[0].read_text().split()[0] == "25000"
    gate.write_text("")
    wait_until(lambda: runtime.observe("capped").done)
    assert runtime.observe("capped").phase == RunState.SUCCEEDED


def test_a_stop_right_after_start_leaves_nothing_running(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    for i in range(15):
        marker = tmp_path / f"ran-{i}"
        wid = f"quick-{i}"
        runtime.start(
            WorkloadRequest(
                wid, py(f"import time; open({str(marker)!r}, 'w').write('x'); time.sleep(30)")
            )
        )
        runtime.stop(wid, grace=1)
        state = runtime.observe(wid)
        assert state.phase == RunState.FAILED and state.reason == "Stopped", state
        pid = state.details.get("pid")
        if pid:
            wait_until(lambda p=pid: not _alive(p), 10, message="child gone")
