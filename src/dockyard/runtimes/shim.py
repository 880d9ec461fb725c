"""The workload shim: runs one command, survives the server, records how it ended.

Started by the local runtime as ``python shim.py RUN_DIR`` in its own session. It is a plain
script using only the standard library, so it starts fast and does not import Dockyard.

Contract with the runtime (all files in RUN_DIR):
- ``spec.json``  (read)  argv, env, cwd, log path, limits, timeout, stop grace
- ``lock``       (flock) held for the shim's whole life: locked ⇔ the workload is alive
- ``shim.json``  (write) pids, start time and which limits are enforced
- ``status.json``(write, atomically, once) exit code, reason, message, finish time

A second shim started on the same RUN_DIR exits at once: a workload never runs twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """A descriptor of a file only this user may read (mode 0600)."""
    return os.open(path, flags, 0o600)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(private(tmp), "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def now() -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        + f".{int(time.time() * 1e6) % 10**6:06d}Z"
    )


class Cgroup:
    """A cgroup (v1 or v2) for the workload's memory and CPU limits, when the OS allows."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dirs: dict[str, Path] = {}
        self.version = 0

    @staticmethod
    def _own(controller: str) -> str | None:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(",") or (controller == "" and controllers == ""):
                return path
        return None

    def setup(
        self, memory: int | None, cpu: float | None, cpu_limit: float | None
    ) -> dict[str, str]:
        enforced: dict[str, str] = {}
        try:
            if (CGROUP_ROOT / "cgroup.controllers").exists():
                self._setup_v2(memory, cpu, cpu_limit, enforced)
            else:
                self._setup_v1(memory, cpu, cpu_limit, enforced)
        except OSError:
            pass
        return enforced

    def _setup_v1(
        self,
        memory: int | None,
        cpu: float | None,
        cpu_limit: float | None,
        enforced: dict[str, str],
    ) -> None:
        self.version = 1
        for controller, wanted in (("memory", memory), ("cpu", cpu or cpu_limit)):
            own = self._own(controller)
            base = CGROUP_ROOT / controller
            if not wanted or own is None or not base.is_dir():
                continue
            path = base / own.lstrip("/") / "dockyard" / self.name
            try:
                path.mkdir(parents=True, exist_ok=True)
                if controller == "memory":
                    (path / "memory.limit_in_bytes").write_text(str(memory))
                    with contextlib.suppress(OSError):
                        (path / "memory.memsw.limit_in_bytes").write_text(str(memory))
                    enforced["memory"] = "cgroup-v1"
                else:
                    if cpu:
                        (path / "cpu.shares").write_text(str(max(2, int(cpu * 1024))))
                        enforced["cpu"] = "cgroup-v1 shares"
                    if cpu_limit:
                        (path / "cpu.cfs_period_us").write_text("100000")
                        quota = max(1000, int(cpu_limit * 100_000))
                        (path / "cpu.cfs_quota_us").write_text(str(quota))
                        enforced["cpuLimit"] = "cgroup-v1 quota"
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            self.dirs[controller] = path

    def _setup_v2(
        self,
        memory: int | None,
        cpu: float | None,
        cpu_limit: float | None,
        enforced: dict[str, str],
    ) -> None:
        self.version = 2
        own = self._own("")
        if own is None or not (memory or cpu or cpu_limit):
            return
        parent = CGROUP_ROOT / own.lstrip("/") / "dockyard"
        parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text("+memory +cpu")
        path = parent / self.name
        path.mkdir(exist_ok=True)
        if memory and (path / "memory.max").exists():
            (path / "memory.max").write_text(str(memory))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
            enforced["memory"] = "cgroup-v2"
        if cpu and (path / "cpu.weight").exists():
            (path / "cpu.weight").write_text(str(min(10000, max(1, int(cpu * 100)))))
            enforced["cpu"] = "cgroup-v2 weight"
        if cpu_limit and (path / "cpu.max").exists():
            (path / "cpu.max").write_text(f"{max(1000, int(cpu_limit * 100_000))} 100000")
            enforced["cpuLimit"] = "cgroup-v2 max"
        if enforced:
            self.dirs["unified"] = path
        else:
            path.rmdir()

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        for name in ("memory.events", "memory.oom_control"):
            for d in self.dirs.values():
                f = d / name
                if f.exists():
                    for line in f.read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and value.strip() not in ("", "0"):
                            return True
        return False

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def make_preexec(procs: list[Path], rlimit_as: int | None):  # type: ignore[no-untyped-def]
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if libc is not None:
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the shim
        for f in procs:
            with open(f, "w") as fh:
                fh.write(str(os.getpid()))
        if rlimit_as:
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))

    return preexec


def main(run_dir: Path) -> int:
    spec = json.loads((run_dir / "spec.json").read_text())
    lock = open(run_dir / "lock", "a+")  # noqa: SIM115 - held for the shim's life
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another shim owns this workload
    status_file = run_dir / "status.json"
    if status_file.exists():
        return 0  # it already ran
    stop_file = run_dir / "stop"

    def finish(exit_code: int | None, reason: str, message: str = "", **extra: Any) -> int:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        write_json(
            status_file,
            {
                "usage": {
                    "cpuSeconds": round(usage.ru_utime + usage.ru_stime, 3),
                    "maxRssBytes": usage.ru_maxrss * 1024,
                },
                "exitCode": exit_code,
                "reason": reason,
                "message": message,
                "finishedAt": now(),
                **extra,
            },
        )
        return 0

    env = dict(spec["env"])
    if spec.get("secrets"):  # secret values: into the command's environment, then gone
        with open(spec["secrets"]) as fh:
            env.update(json.load(fh))
        os.unlink(spec["secrets"])
    argv: list[str] = spec["argv"]
    cwd = spec.get("cwd") or str(run_dir)
    log = open(private(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab", buffering=0)  # noqa: SIM115
    resolved = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else argv[0]
    if resolved is None or not os.access(resolved, os.X_OK):
        message = (
            f"command '{argv[0]}' not found on PATH ({env.get('PATH', '')})"
            if resolved is None
            else f"'{argv[0]}' is not executable"
        )
        log.write(f"dockyard: {message}\n".encode())
        write_json(
            run_dir / "shim.json",
            {"pid": os.getpid(), "childPid": None, "startedAt": now(), "limits": {}},
        )
        return finish(127, "CommandNotFound", message)

    if stop_file.exists():  # stopped before it could start
        write_json(
            run_dir / "shim.json",
            {"pid": os.getpid(), "childPid": None, "startedAt": now(), "limits": {}},
        )
        return finish(None, "Stopped", "stopped before it started")
    limits = spec.get("limits", {})
    memory, cpu = limits.get("memory"), limits.get("cpu")
    cgroup = Cgroup(run_dir.name)
    enforced = cgroup.setup(memory, cpu, limits.get("cpuLimit"))
    rlimit_as = None
    if memory and "memory" not in enforced:
        rlimit_as = int(memory)
        enforced["memory"] = "rlimit-as"
    try:
        child = subprocess.Popen(
            [resolved, *argv[1:]],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=make_preexec(cgroup.procs_files(), rlimit_as),
        )
    except OSError as exc:
        log.write(f"dockyard: cannot start {argv[0]}: {exc}\n".encode())
        cgroup.remove()
        return finish(126, "StartFailed", f"cannot start '{argv[0]}': {exc.strerror}")
    started = now()
    write_json(
        run_dir / "shim.json",
        {
            "pid": os.getpid(),
            "childPid": child.pid,
            "startedAt": started,
            "limits": enforced,
            "cgroups": [str(d) for d in cgroup.dirs.values()],
        },
    )
    outcome: dict[str, str] = {}
    grace = float(spec.get("stopGrace", 10))

    def terminate(reason: str) -> None:
        if outcome:
            return
        outcome["reason"] = reason
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)

        def kill_later() -> None:
            time.sleep(grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: terminate("Stopped"))
    signal.signal(signal.SIGINT, lambda *_: terminate("Stopped"))
    if stop_file.exists():  # a stop that came while the child was starting
        terminate("Stopped")
    timeout = spec.get("timeout")
    if timeout:
        timer = threading.Timer(float(timeout), terminate, args=("Timeout",))
        timer.daemon = True
        timer.start()
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # leftovers of the process group
    oom = cgroup.oom_killed()
    cgroup.remove()
    if outcome.get("reason") == "Timeout":
        return finish(code, "Timeout", f"exceeded timeoutSeconds={timeout}")
    if outcome.get("reason") == "Stopped":
        return finish(code, "Stopped", "stopped on request")
    if oom:
        return finish(code, "OOMKilled", f"killed: memory limit of {memory} bytes exceeded")
    if code == 0:
        return finish(0, "Completed")
    if code < 0:
        name = signal.Signals(-code).name
        return finish(code, "Signaled", f"killed by {name}")
    if rlimit_as and code != 0:
        return finish(
            code,
            "Error",
            f"exit code {code} (memory limited to {memory} bytes by "
            "RLIMIT_AS; a MemoryError means the limit was hit)",
        )
    return finish(code, "Error", f"exit code {code}")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
