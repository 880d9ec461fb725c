"""OCI containers with Podman or Docker: the second home of every workload.

Each workload is one container named by its workload id and labelled with its Dockyard
resource, so a restarted server finds it again by name (``observe``) or by label
(``list_workloads``); ``start`` of an existing name never starts it twice. Containers run with
safe defaults — a non-root user, a read-only root file system with a writable ``/tmp``,
``no-new-privileges``, every capability dropped, the engine's own network (never the host's)
— and the limits of ``resources``. Timeouts and "stopped on request" are kept in the
workload's run directory, which also holds the copy of the code mounted at ``/workspace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.errors import EngineError
from dockyard.paths import Inside
from dockyard.runtimes.base import (
    Mount,
    NodeCapacity,
    PreparedEnvironment,
    RunState,
    WorkloadRequest,
    WorkloadState,
)
from dockyard.runtimes.containers import OUTPUT, WORKSPACE, container_env, working_dir
from dockyard.runtimes.engine import Engine
from dockyard.runtimes.host import host_capacity, placement_env
from dockyard.runtimes.images import (
    PACKAGE_DIR,
    USER_ID,
    base_image,
    build,
    env_tag,
    image_hash,
    list_images,
    package_digest,
    render,
    render_server,
    render_serving,
    server_tag,
)
from dockyard.settings import Settings
from dockyard.spec import EnvironmentSpec
from dockyard.version import __version__

LABEL = "dev.dockyard.workload"
SNAPSHOT_SECONDS = 0.1  # one `ps` answers for every running container observed within this


def _time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # nanoseconds and a zone: keep microseconds
        digits = "".join(c for c in rest if c.isdigit())[:6]
        zone = rest[len("".join(c for c in rest if c.isdigit())) :].strip()
        text = f"{head}.{digits}{zone.replace(' ', '')}"
    try:
        parsed = datetime.fromisoformat(text.split(" ")[0] if " " in text else text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class OciRuntime:
    """Workloads as containers of Podman or Docker on this machine."""

    detached = False

    def __init__(self, settings: Settings, engine: str) -> None:
        self.settings = settings
        self.name = engine
        self.engine = Engine(engine, settings.containers_conf, settings.home / "engine")
        self.runs = settings.runs_dir
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # container name -> id, from one `ps`
        self._running_at = float("-inf")

    # -- node and images --------------------------------------------------------------------
    def node(self) -> NodeCapacity:
        return host_capacity(self.settings)  # containers share the machine with the rest

    def base_for(self, spec: EnvironmentSpec) -> str:
        return base_image(spec, self.settings.base_image)

    def prepare_environment(
        self, name: str, spec: EnvironmentSpec, progress: Callable[[str], None]
    ) -> PreparedEnvironment:
        base = self.base_for(spec)
        digest = image_hash(spec, base)
        tag = env_tag(digest)
        context = {"requirements.txt": "\n".join(spec.packages) + "\n"}
        build(self.engine, tag, render(name, spec, base), context, progress)
        return PreparedEnvironment(digest, tag, "/opt/venv/bin/python", dict(spec.env))

    def environment_key(self, spec: EnvironmentSpec) -> str:
        return image_hash(spec, self.base_for(spec))

    def environment_ready(self, prepared: PreparedEnvironment) -> bool:
        return self.engine.image_exists(prepared.location)

    def prepare_serving(
        self,
        environment: PreparedEnvironment,
        model: str,
        version: int,
        model_dir: Path,
        progress: Callable[[str], None],
    ) -> PreparedEnvironment:
        """FROM the model's environment image + the model server + the model's files."""
        files = sorted(
            p.relative_to(model_dir).as_posix() + ":" + _digest(p)
            for p in model_dir.rglob("*")
            if p.is_file() and p.name != ".dockyard-complete"
        )
        model_digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
        key = hashlib.sha256(
            f"{environment.hash}|{__version__}|{model_digest}|{package_digest()}".encode()
        ).hexdigest()
        tag = f"localhost/dockyard/serve-{model}:{version}-{key[:12]}"
        build(
            self.engine,
            tag,
            render_serving(environment.location, model, version, model_digest),
            {"dockyard": PACKAGE_DIR, "model": model_dir},
            progress,
        )
        return PreparedEnvironment(key, tag, environment.python, dict(environment.env))

    def prepare_server(
        self, environment: PreparedEnvironment, progress: Callable[[str], None]
    ) -> PreparedEnvironment:
        """FROM the environment image + the model server, without a model: what ``dockyard
        render`` names for a Service that serves its model from a claim."""
        tag = server_tag(environment.hash)
        build(
            self.engine,
            tag,
            render_server(environment.location),
            {"dockyard": PACKAGE_DIR},
            progress,
        )
        return PreparedEnvironment(tag, tag, environment.python, dict(environment.env))

    def list_images(self) -> list[dict[str, Any]]:
        return list_images(self.engine)

    def push(self, image: str, registry: str, progress: Callable[[str], None]) -> str:
        """Push ``image`` to ``registry`` under its last name part; the pushed name."""
        target = f"{registry.rstrip('/')}/{image.rsplit('/', 1)[-1]}"
        progress(f"pushing {target}")
        self.engine.run("push", image, target, timeout=1800)
        return target

    # -- workloads ----------------------------------------------------------------------------
    def set_listener(self, callback: Callable[[str], None]) -> None:
        pass  # containers are observed by polling

    def _dir(self, workload_id: str) -> Path:
        return self.runs / workload_id

    def log_path(self, workload_id: str) -> Path | None:
        return None

    def start(self, request: WorkloadRequest) -> WorkloadState:
        run_dir = self._dir(request.id)
        if self.engine.inspect(request.id) is not None:
            return self.observe(request.id)  # it exists: never start twice
        environment = request.environment or self.prepare_environment(
            "default", EnvironmentSpec(), lambda _m: None
        )  # Dockyard's "no environment"
        work = run_dir / "work"
        if request.code_dir is not None and not work.exists():
            shutil.copytree(
                request.code_dir,
                work,
                symlinks=True,
                ignore=shutil.ignore_patterns(".dockyard-complete"),
            )
        work.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            _chown_tree(work)
        for mount in request.mounts:  # a mount source is never a link: the engine follows them
            Inside(mount.source).check()
        args = [
            "run",
            "--detach",
            "--name",
            request.id,
            "--label",
            f"{LABEL}={request.id}",
            "--label",
            "dev.dockyard.managed=true",
            *[a for k, v in request.labels.items() for a in ("--label", f"{k}={v}")],
            *security_args(request.security),
            "--tmpfs",
            "/tmp:rw,nosuid,nodev,size=512m",
            "--volume",
            f"{work}:{WORKSPACE}:rw",
            "--workdir",
            working_dir(request),
        ]
        env = container_env(request, environment)
        if request.output_dir is not None:
            request.output_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                _chown_tree(request.output_dir)
            args += ["--volume", f"{request.output_dir}:{OUTPUT}:rw"]
        for mount in request.mounts:
            with contextlib.suppress(OSError):
                if not mount.read_only:
                    _chown_tree(mount.source, deep=False)
            source = self._named_volume(request.project, mount) or str(mount.source)
            args += ["--volume", f"{source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
        env.update(placement_env(request))
        env.update(request.env)
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for key in request.secret_env:  # the value comes from the engine's own environment
            args += ["--env", key]
        if request.memory:
            args += ["--memory", str(request.memory), "--memory-swap", str(request.memory)]
        if request.cpu_limit:
            args += ["--cpus", f"{request.cpu_limit:g}"]
        if request.cpu:
            args += ["--cpu-shares", str(max(2, int(request.cpu * 1024)))]
        for index in request.gpus:  # the Container Device Interface name of each GPU
            args += ["--device", f"nvidia.com/gpu={index}"]
        if request.port is not None:
            args += ["--publish", f"127.0.0.1:{request.port}:{request.port}"]
        run_dir.mkdir(parents=True, exist_ok=True)
        meta = {"timeout": request.timeout, "startedAt": time.time()}
        (run_dir / "container.json").write_text(json.dumps(meta))
        try:
            self.engine.run(
                *args, environment.location, *request.command, timeout=300, env=request.secret_env
            )
        except EngineError:
            # a container that was created but could not start must not look alive later
            self.engine.run("rm", "--force", request.id, check=False, timeout=120)
            raise
        self._changed()
        return self.observe(request.id)

    def _running_now(self) -> dict[str, str]:
        """Running Dockyard containers by name: one `ps` for a whole pass of observations."""
        with self._lock:
            if time.monotonic() - self._running_at > SNAPSHOT_SECONDS:
                running = {
                    name: str(item.get("Id") or item.get("ID") or "")
                    for name, item in self._ps()
                    if str(item.get("State", "")).lower() == "running"
                }
                self._running, self._running_at = running, time.monotonic()
            return self._running

    def _changed(self) -> None:
        with self._lock:
            self._running_at = float("-inf")

    def _timed_out(self, workload_id: str) -> bool:
        """Stop a running container past its timeout (and say so in its run directory)."""
        run_dir = self._dir(workload_id)
        meta = _read(run_dir / "container.json")
        timeout = meta.get("timeout")
        if not timeout or time.time() - float(meta.get("startedAt", time.time())) <= timeout:
            return False
        (run_dir / "reason").write_text("Timeout")
        self.engine.run(
            "stop",
            "--time",
            str(int(self.settings.stop_grace_seconds)),
            workload_id,
            check=False,
            timeout=120,
        )
        self._changed()
        return True

    def observe(self, workload_id: str) -> WorkloadState:
        container = self._running_now().get(workload_id)
        if container is not None and not self._timed_out(workload_id):
            # still running: the `ps` of this pass says so, no `inspect` per container
            return WorkloadState(
                workload_id, RunState.RUNNING, details={"container": container[:12]}
            )
        info = self.engine.inspect(workload_id)
        if info is None:
            return WorkloadState(workload_id, RunState.NOT_FOUND)
        state = info.get("State", {})
        started, finished = _time(state.get("StartedAt")), _time(state.get("FinishedAt"))
        details = {
            "container": info.get("Id", "")[:12],
            "image": info.get("ImageName") or info.get("Config", {}).get("Image"),
            "pid": state.get("Pid") or None,
        }
        run_dir = self._dir(workload_id)
        status = state.get("Status", "")
        if status in ("running", "created", "configured", "initialized", "paused"):
            if self._timed_out(workload_id):
                return self.observe(workload_id)
            return WorkloadState(workload_id, RunState.RUNNING, started_at=started, details=details)
        code = int(state.get("ExitCode", -1))
        marked = (run_dir / "reason").read_text().strip() if (run_dir / "reason").exists() else ""
        limit = int((info.get("HostConfig") or {}).get("Memory") or 0)
        if state.get("OOMKilled") or (code == 137 and limit and not marked):
            # engines on cgroup v1 do not always set OOMKilled: a SIGKILL nobody sent to a
            # memory-limited container is the kernel's OOM killer
            reason, message = "OOMKilled", f"killed: memory limit of {limit} bytes exceeded"
        elif marked == "Timeout":
            reason, message = (
                "Timeout",
                f"exceeded timeoutSeconds={_read(run_dir / 'container.json').get('timeout')}",
            )
        elif marked == "Stopped":
            reason, message = "Stopped", "stopped on request"
        elif code == 0:
            reason, message = "Completed", ""
        elif code in (126, 127):
            reason = "CommandNotFound" if code == 127 else "StartFailed"
            message = (state.get("Error") or "").strip() or f"exit code {code}"
        else:
            reason, message = "Error", (state.get("Error") or "").strip() or f"exit code {code}"
        phase = RunState.SUCCEEDED if reason == "Completed" else RunState.FAILED
        return WorkloadState(
            workload_id,
            phase,
            exit_code=code,
            reason=reason,
            message=message,
            started_at=started,
            finished_at=finished,
            details=details,
        )

    def _ps(self, *flags: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, entry) of Dockyard's containers (running ones unless ``--all``)."""
        data = self.engine.json(
            "ps", *flags, "--filter", "label=dev.dockyard.managed=true", "--format", "json"
        )
        for item in data or []:
            raw = item.get("Names") or item.get("Name") or []
            for name in raw.split(",") if isinstance(raw, str) else raw:  # Docker: "a,b"
                yield name.lstrip("/"), item

    def _named_volume(self, project: str, mount: Mount) -> str | None:
        """A whole Volume mounts as the engine's named volume (``volume_name``), bound to its
        tier's directory and labelled with its tier (``podman volume ls``); a sub path, or a
        named volume bound elsewhere, mounts the directory itself."""
        ref = mount.volume
        if ref is None or ref.sub_path:
            return None
        name = volume_name(project, ref.name, mount.source)
        found = self.engine.run("volume", "inspect", name, check=False, timeout=60)
        if found.returncode == 0:
            try:
                options = json.loads(found.stdout)[0].get("Options") or {}
            except (ValueError, IndexError, AttributeError):
                return None
            return name if options.get("device") == str(mount.source) else None
        created = self.engine.run(
            "volume",
            "create",
            "--driver",
            "local",
            "--opt",
            "type=none",
            "--opt",
            "o=bind",
            "--opt",
            f"device={mount.source}",
            "--label",
            "dev.dockyard.managed=true",
            "--label",
            f"dev.dockyard.tier={ref.tier}",
            "--label",
            f"dev.dockyard.replicas={ref.replicas}",
            name,
            check=False,
            timeout=60,
        )
        return name if created.returncode == 0 else None

    def exec(self, workload_id: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` inside the workload's container (a snapshot hook)."""
        try:
            done = self.engine.run("exec", workload_id, *argv, check=False, timeout=timeout)
        except EngineError as exc:
            return 1, exc.message
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")

    def list_workloads(self) -> list[str]:
        return sorted(name for name, _ in self._ps("--all"))

    def stop(self, workload_id: str, grace: float) -> None:
        info = self.engine.inspect(workload_id)
        if info is None:
            return
        run_dir = self._dir(workload_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        if info.get("State", {}).get("Status") == "running":
            if not (run_dir / "reason").exists():
                (run_dir / "reason").write_text("Stopped")
            self.engine.run(
                "stop",
                "--time",
                str(max(1, int(grace))),
                workload_id,
                check=False,
                timeout=grace + 60,
            )
            self._changed()

    def remove(self, workload_id: str) -> None:
        self.engine.run("rm", "--force", "--volumes", workload_id, check=False, timeout=120)
        self._changed()
        shutil.rmtree(self._dir(workload_id), ignore_errors=True)

    def logs(self, workload_id: str, *, offset: int = 0) -> Iterator[bytes]:
        result = self.engine.run("logs", workload_id, check=False, timeout=60)
        data = result.stdout + result.stderr if result.returncode == 0 else b""
        if len(data) > offset:
            yield data[offset:]


def volume_name(project: str, name: str, source: Path) -> str:
    """``dockyard-PROJECT-NAME-HASH``: the hash of its directory keeps two Dockyard homes on
    one machine (or a test's) from sharing a named volume."""
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return f"dockyard-{project}-{name}-{digest}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _chown_tree(path: Path, deep: bool = True) -> None:
    """Let the container's non-root user write where it must (runs as root only); what a
    workload left there is changed itself, links are never followed."""
    import os

    if os.geteuid() == 0:
        Inside(path).chown(USER_ID, USER_ID, deep)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def security_args(security: dict[str, Any]) -> list[str]:
    """The safe defaults, each loosened only by an explicit ``spec.security`` field."""
    args = ["--cap-drop", "ALL"]
    for cap in security.get("capabilities") or []:
        args += ["--cap-add", cap]
    if not security.get("runAsRoot"):
        args += ["--user", f"{USER_ID}:{USER_ID}"]
    else:
        args += ["--user", "0:0"]
    if security.get("readOnlyRootFilesystem", True):
        args.append("--read-only")
    if not security.get("allowPrivilegeEscalation"):
        args += ["--security-opt", "no-new-privileges"]
    if security.get("hostNetwork"):
        args += ["--network", "host"]
    return args
