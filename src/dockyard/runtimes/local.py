"""The local runtime: workloads are processes on this machine, supervised by a shim.

Each workload gets ``runs/<id>/`` with its spec, log, working directory and the shim's
records (see ``shim.py``). Processes outlive the server: after a restart, ``observe`` finds
them again through the shim's lock file, so nothing is lost or started twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard import filelock
from dockyard.errors import DockyardError
from dockyard.paths import write_private
from dockyard.runtimes.base import (
    NodeCapacity,
    PreparedEnvironment,
    RunState,
    WorkloadRequest,
    WorkloadState,
)
from dockyard.runtimes.host import host_capacity, placement_env
from dockyard.runtimes.venvs import VenvBuilder
from dockyard.settings import Settings
from dockyard.spec import EnvironmentSpec

SHIM = Path(__file__).with_name("shim.py")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# what a local workload gets of the server's environment (more: DOCKYARD_PASS_ENV)
PASSED = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def working_dir(work: Path, relative: str | None) -> Path:
    """The workload's working directory inside its copy of the code (it must be there)."""
    if not relative:
        return work
    cwd = work / relative
    if not cwd.is_dir() or not cwd.resolve().is_relative_to(work.resolve()):
        have = sorted(p.name for p in work.iterdir() if p.is_dir())[:20]
        raise DockyardError(
            f"workingDir '{relative}' is not a directory of the job's code",
            hint=f"its directories: {', '.join(have) or 'none'}",
        )
    return cwd


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class LocalRuntime:
    """Processes on this machine (the embedded default)."""

    name = "local"
    detached = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runs = settings.runs_dir
        self.venvs = VenvBuilder(settings.envs_dir)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._listener: Callable[[str], None] | None = None
        self._node: NodeCapacity | None = None

    # -- node ---------------------------------------------------------------------------
    def node(self) -> NodeCapacity:
        if self._node is None:
            self._node = host_capacity(self.settings)
        return self._node

    # -- environments -------------------------------------------------------------------
    def prepare_environment(
        self, name: str, spec: EnvironmentSpec, progress: Callable[[str], None]
    ) -> PreparedEnvironment:
        return self.venvs.build(spec, progress)

    def environment_key(self, spec: EnvironmentSpec) -> str:
        return self.venvs.location(spec)[0]

    def environment_ready(self, prepared: PreparedEnvironment) -> bool:
        return self.venvs.ready(Path(prepared.location))

    # -- workloads ----------------------------------------------------------------------
    def set_listener(self, callback: Callable[[str], None]) -> None:
        self._listener = callback

    def _dir(self, workload_id: str) -> Path:
        return self.runs / workload_id

    def log_path(self, workload_id: str) -> Path | None:
        return self._dir(workload_id) / "log"

    def start(self, request: WorkloadRequest) -> WorkloadState:
        run_dir = self._dir(request.id)
        if (run_dir / "spec.json").exists():
            return self.observe(request.id)  # already started once: never twice
        self.runs.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_dir.mkdir(mode=0o700, exist_ok=True)  # its files are this user's only
        work = run_dir / "work"
        if request.code_dir is not None:
            shutil.copytree(request.code_dir, work, symlinks=True, dirs_exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        cwd = working_dir(work, request.working_dir)
        env = self._environment(request)
        for mount in request.mounts:
            link = work / mount.target.lstrip("/")
            if not link.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(mount.source, target_is_directory=True)
        spec = {
            "argv": request.command,
            "env": env,
            "cwd": str(cwd),
            "log": str(run_dir / "log"),
            "timeout": request.timeout,
            "stopGrace": self.settings.stop_grace_seconds,
            "limits": {"memory": request.memory, "cpu": request.cpu, "cpuLimit": request.cpu_limit},
        }
        if request.secret_env:  # read and deleted by the shim before the command starts
            write_private(run_dir / "secrets.json", json.dumps(request.secret_env).encode())
            spec["secrets"] = str(run_dir / "secrets.json")
        write_private(run_dir / "spec.json", json.dumps(spec).encode())
        with open(run_dir / "shim.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SHIM), str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        self._procs[request.id] = proc
        threading.Thread(
            target=self._watch, args=(request.id, proc), daemon=True, name=f"watch-{request.id}"
        ).start()
        return WorkloadState(request.id, RunState.RUNNING, started_at=datetime.now().astimezone())

    def _environment(self, request: WorkloadRequest) -> dict[str, str]:
        """A clean environment: nothing of the server's but ``PASSED`` and
        ``DOCKYARD_PASS_ENV``, then what Dockyard and the spec set."""
        names = (*PASSED, *self.settings.pass_env_names)
        env = {k: os.environ[k] for k in names if k in os.environ}
        env.setdefault("PATH", SYSTEM_PATH)
        env.setdefault("LANG", "C.UTF-8")
        if request.environment is not None:
            bin_dir = str(Path(request.environment.location) / "bin")
            env["VIRTUAL_ENV"] = request.environment.location
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", os.defpath)
            env.update(request.environment.env)
        else:
            env["PATH"] = (
                str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", os.defpath)
            )
        env["PYTHONUNBUFFERED"] = "1"
        env["DOCKYARD_WORKLOAD_ID"] = request.id
        threads = request.cpu_limit or request.cpu
        if threads:
            for var in THREAD_VARS:
                env[var] = str(max(1, math.ceil(threads)))
        if request.output_dir is not None:
            request.output_dir.mkdir(parents=True, exist_ok=True)
            env["DOCKYARD_OUTPUT_DIR"] = str(request.output_dir)
        for mount in request.mounts:
            if mount.env_var:
                env[mount.env_var] = str(mount.source)
        if request.extra_pythonpath:
            env["DOCKYARD_APPEND_PATH"] = os.pathsep.join(request.extra_pythonpath)
        env.update(placement_env(request))
        env.update(request.env)
        return env

    def _watch(self, workload_id: str, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        if self._listener is not None:
            self._listener(workload_id)

    @staticmethod
    def _locked(run_dir: Path) -> bool:
        """True while a shim holds the workload's lock (it is alive)."""
        return filelock.held(run_dir / "lock")

    def observe(self, workload_id: str) -> WorkloadState:
        run_dir = self._dir(workload_id)
        if not (run_dir / "spec.json").exists():
            return WorkloadState(workload_id, RunState.NOT_FOUND)
        shim = _read_json(run_dir / "shim.json") or {}
        started = _parse_time(shim.get("startedAt"))
        details = {
            "pid": shim.get("childPid"),
            "limits": shim.get("limits", {}),
            "log": str(run_dir / "log"),
        }
        status = _read_json(run_dir / "status.json")
        if status is None:
            proc = self._procs.get(workload_id)
            if self._locked(run_dir) or (proc is not None and proc.poll() is None):
                return WorkloadState(
                    workload_id, RunState.RUNNING, started_at=started, details=details
                )
            status = _read_json(run_dir / "status.json")  # it may have just finished
        if status is None:
            err = (
                (run_dir / "shim.err").read_text(errors="replace")[-500:].strip()
                if (run_dir / "shim.err").exists()
                else ""
            )
            return WorkloadState(
                workload_id,
                RunState.LOST,
                reason="Lost",
                message="the process supervisor ended without recording an exit status "
                f"(killed, or the machine restarted){': ' + err if err else ''}",
                started_at=started,
                details=details,
            )
        if status.get("usage"):
            details["usage"] = status["usage"]
        code = status.get("exitCode")
        ok = code == 0 and status.get("reason") == "Completed"
        return WorkloadState(
            workload_id,
            RunState.SUCCEEDED if ok else RunState.FAILED,
            exit_code=code,
            reason=status.get("reason", ""),
            message=status.get("message", ""),
            started_at=started,
            finished_at=_parse_time(status.get("finishedAt")),
            details=details,
        )

    def exec(self, workload_id: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` beside a running workload: its environment, its working directory
        (a snapshot hook: ``sync``, a database's checkpoint command)."""
        spec = _read_json(self._dir(workload_id) / "spec.json")
        if spec is None or (self._dir(workload_id) / "status.json").exists():
            return 1, f"workload {workload_id} is not running"
        try:
            done = subprocess.run(
                argv,
                env=spec["env"],
                cwd=spec["cwd"],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, str(exc)
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")

    def list_workloads(self) -> list[str]:
        if not self.runs.exists():
            return []
        return sorted(p.name for p in self.runs.iterdir() if (p / "spec.json").exists())

    def stop(self, workload_id: str, grace: float) -> None:
        run_dir = self._dir(workload_id)
        if not (run_dir / "spec.json").exists():
            return
        (run_dir / "stop").write_text("")  # a shim that has not started its child yet sees it
        deadline = time.monotonic() + 2
        while (
            self._locked(run_dir)
            and not (run_dir / "shim.json").exists()
            and (time.monotonic() < deadline)
        ):
            time.sleep(0.01)  # the shim holds the lock but has not written its pids yet
        shim = _read_json(run_dir / "shim.json") or {}
        if self._locked(run_dir) and shim.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(shim["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + grace + 3
            while self._locked(run_dir) and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._locked(run_dir):
                for pid, kill in ((shim.get("childPid"), os.killpg), (shim["pid"], os.kill)):
                    if pid:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            kill(int(pid), signal.SIGKILL)
                deadline = time.monotonic() + 3
                while self._locked(run_dir) and time.monotonic() < deadline:
                    time.sleep(0.02)
        if not (run_dir / "status.json").exists():
            tmp = run_dir / "status.json.tmp"
            tmp.write_text(
                json.dumps(
                    {
                        "exitCode": None,
                        "reason": "Stopped",
                        "message": "stopped before it finished",
                        "finishedAt": datetime.now().astimezone().isoformat(),
                    }
                )
            )
            os.replace(tmp, run_dir / "status.json")

    def remove(self, workload_id: str) -> None:
        self.stop(workload_id, grace=1.0)
        self._procs.pop(workload_id, None)
        shim = _read_json(self._dir(workload_id) / "shim.json") or {}
        for cgroup in shim.get("cgroups", []):  # left behind if the shim itself was killed
            with contextlib.suppress(OSError):
                Path(cgroup).rmdir()
        shutil.rmtree(self._dir(workload_id), ignore_errors=True)

    def logs(self, workload_id: str, *, offset: int = 0) -> Iterator[bytes]:
        try:  # a link the workload put in place of its log is not followed
            fd = os.open(self._dir(workload_id) / "log", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return
        with os.fdopen(fd, "rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(65536):
                yield chunk
