"""Services: keep model server replicas running for the resolved model version.

A new version (or a new spec) is rolled out by starting its replicas first and stopping the
old ones only once every new one is ready. A replica that dies is restarted with backoff.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dockyard.control import workloads as wl
from dockyard.control.context import Context, World, write_status
from dockyard.control.scheduler import Decision, Demand
from dockyard.errors import DockyardError
from dockyard.registry import models as registry
from dockyard.runtimes.base import PreparedEnvironment, ServingImages, WorkloadRequest
from dockyard.spec import EnvironmentSpec, ServiceSpec
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import ResourceRow, WorkloadRow

PACKAGE = Path(__file__).resolve().parent.parent
BOOT = PACKAGE / "serving" / "boot.py"
MAX_BACKOFF = 60.0
NOT_CRASHES = ("Stopped", "Interrupted")  # ended by Dockyard itself, not by a fault


@dataclass(frozen=True)
class Replica:
    id: str
    number: int
    generation: int
    version: int
    phase: str
    ready: bool = False
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Observed:
    generation: int
    version: int | None
    replicas: tuple[Replica, ...]
    blocked: str = ""
    deleting: bool = False
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())


@dataclass
class Plan:
    phase: str
    reason: str = ""
    message: str = ""
    start: list[tuple[int, int]] = field(default_factory=list)  # (replica number, restart)
    stop: list[str] = field(default_factory=list)
    recheck_at: datetime | None = None


def backoff(restarts: int) -> float:
    return 0.0 if restarts <= 0 else min(MAX_BACKOFF, 2.0 ** (restarts - 1))


def plan(spec: ServiceSpec, obs: Observed) -> Plan:
    active = [r for r in obs.replicas if r.phase in wl.ACTIVE]
    if obs.deleting:
        return Plan("Terminating", "Deleting", stop=[r.id for r in active])
    if obs.version is None:
        return Plan("Pending", "Waiting", obs.blocked)
    target = [r for r in obs.replicas if (r.generation, r.version) == (obs.generation, obs.version)]
    result = Plan("Pending")
    ready = 0
    crash = ""
    for number in range(spec.replicas):
        mine = [r for r in target if r.number == number]
        running = [r for r in mine if r.phase in wl.ACTIVE]
        if running:
            ready += any(r.ready for r in running)
            result.stop += [r.id for r in running[1:]]
            continue
        crashes = [r for r in mine if r.reason not in NOT_CRASHES]
        restarts = len(mine)
        if mine and mine[-1].reason not in NOT_CRASHES:
            last = mine[-1]
            crash = f"replica {number} exited: {last.reason} {last.message}".strip()
            due = (last.finished_at or obs.now) + timedelta(seconds=backoff(len(crashes)))
            if due > obs.now:
                result.recheck_at = min(filter(None, [result.recheck_at, due]))
                continue
        result.start.append((number, restarts))
    extra = [r.id for r in target if r.phase in wl.ACTIVE and r.number >= spec.replicas]
    old = [r.id for r in active if (r.generation, r.version) != (obs.generation, obs.version)]
    result.stop += extra
    if ready == spec.replicas:
        result.stop += old
        result.phase, result.reason = "Ready", "Ready"
        result.message = f"{ready}/{spec.replicas} replica(s) ready, version {obs.version}"
    elif crash:
        result.phase, result.reason, result.message = "Starting", "CrashLoopBackOff", crash
    else:
        result.phase, result.reason = "Starting", "Starting"
        result.message = f"{ready}/{spec.replicas} replica(s) ready, version {obs.version}"
    return result


def serving_paths() -> tuple[str, ...]:
    """Where Dockyard and its dependencies live, appended after the environment's own."""
    own = str(PACKAGE.parent)
    return (own, *[p for p in sys.path if p.endswith(("site-packages", "dist-packages"))])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class ServiceReconciler:
    kind = "Service"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _replicas(self, owned: list[WorkloadRow]) -> list[Replica]:
        out = []
        for w in owned:
            ready = bool(w.details.get("ready"))
            url = w.details.get("url")
            if w.phase in wl.ACTIVE and not ready and url and probe(url):
                ready = True
                with self.ctx.store.session() as session:
                    live = session.get(WorkloadRow, w.id)
                    if live is not None:
                        live.details = {**live.details, "ready": True}
                w.details = {**w.details, "ready": True}
            out.append(
                Replica(
                    w.id,
                    w.number,
                    w.generation,
                    int(w.details.get("version", 0)),
                    w.phase,
                    ready,
                    w.finished_at,
                    w.reason,
                    w.message,
                )
            )
        return out

    def reconcile(self, world: World, row: ResourceRow) -> tuple[Demand | None, Any]:
        spec = ServiceSpec.model_validate(row.spec)
        owned = [wl.refresh(self.ctx, w) for w in world.owned(row.uid)]
        replicas = self._replicas(owned)
        version, blocked, model_row = None, "", None
        if row.deleted_at is None:
            try:
                with self.ctx.store.session() as session:
                    model_row = registry.resolve(session, row.project, spec.model_ref())
                    version = model_row.version
            except DockyardError as exc:
                blocked = str(exc)
        obs = Observed(
            row.generation, version, tuple(replicas), blocked, row.deleted_at is not None, world.at
        )
        p = plan(spec, obs)
        for w in owned:
            if w.id in p.stop:
                wl.stop(self.ctx, w)
        if row.deleted_at is not None and not p.stop:
            return None, ("delete", row)
        serving = [
            w
            for w in owned
            if w.phase in wl.ACTIVE and w.details.get("ready") and w.id not in p.stop
        ]
        urls = [w.details["url"] for w in serving]
        served = sorted({int(w.details.get("version", 0)) for w in serving})
        status = {
            "phase": p.phase,
            "reason": p.reason,
            "message": p.message,
            "observedGeneration": row.generation,
            "replicas": spec.replicas,
            "readyReplicas": len(urls),
            "url": urls[0] if urls else None,
            "endpoints": urls,
            # what the ready replicas really serve (during a rollout, old and new)
            "modelVersion": ", ".join(f"{spec.model_ref().name}@{v}" for v in served) or None,
            "targetVersion": f"{spec.model_ref().name}@{version}" if version else None,
            "restarts": sum(
                1
                for w in owned
                if w.phase not in wl.ACTIVE and w.reason not in ("Stopped", "Interrupted")
            ),
        }
        if not p.start or model_row is None:
            write_status(self.ctx, row, status)
            return None, None
        runtime = self.ctx.runtime_for(spec.runtime)
        environment, env_blocked = wl.resolve_environment(
            world,
            row.project,
            spec.environment or model_row.lineage.get("environment"),
            runtime.name,
        )
        if not env_blocked and isinstance(runtime, ServingImages):
            environment, env_blocked = self._serving_image(row, runtime, environment, model_row)
        if env_blocked:
            write_status(
                self.ctx,
                row,
                {**status, "phase": "Pending", "reason": "Waiting", "message": env_blocked},
            )
            return None, None
        if row.status.get("reason") in wl.WAITING_REASONS:  # keep why it could not start
            status.update({k: row.status[k] for k in ("phase", "reason", "message")})
        write_status(self.ctx, row, status)
        number, restart = p.start[0]
        demand = wl.need_of(row.spec["resources"]).demand(f"{row.uid}:{number}", 0, row.created_at)
        return demand, (row, spec, model_row, environment, number, restart)

    def _serving_image(
        self,
        row: ResourceRow,
        runtime: ServingImages,
        environment: PreparedEnvironment | None,
        model_row: Any,
    ) -> tuple[PreparedEnvironment | None, str]:
        """Containers serve from an image of the model's environment + server + model files,
        built once per model version in the background."""
        if environment is None:
            base = self.ctx.runtime_for(row.spec.get("runtime"))
            environment = base.prepare_environment("default", EnvironmentSpec(), lambda _m: None)
        key = f"{row.uid}:serving:{model_row.version}:{environment.hash[:16]}"
        task = self.ctx.tasks.get(key)
        if task is None:
            model_dir = registry.materialize(self.ctx.artifacts, self.ctx.settings.home, model_row)
            env = environment

            def work(state: Any) -> PreparedEnvironment:
                def progress(message: str) -> None:
                    state.progress = message
                    self.ctx.wake()

                return runtime.prepare_serving(
                    env, model_row.model, model_row.version, model_dir, progress
                )

            self.ctx.tasks.submit(key, row.uid, work)
            return None, f"building the serving image of {model_row.model}@{model_row.version}"
        if not task.done:
            return None, f"building the serving image: {task.progress or 'starting'}"
        error = task.future.exception()
        if error is not None:
            self.ctx.tasks.take(key)
            return None, f"the serving image failed to build: {error}"
        result: PreparedEnvironment = task.future.result()  # kept: the task caches it
        return result, ""

    def _release_port(self, row: ResourceRow, port: int) -> None:
        """A fixed port moves to the new replica: stop this service's old one holding it
        (serving pauses for that moment; without a fixed port, rollouts have no gap)."""
        with self.ctx.store.session() as session:
            holders = [
                w
                for w in workloads_repo.for_owner(session, row.uid)
                if w.phase in wl.ACTIVE and w.details.get("port") == port
            ]
        for w in holders:
            wl.stop(self.ctx, w)

    def start(self, pending: tuple[Any, ...], decision: Decision) -> None:
        row, spec, model_row, environment, number, restart = pending
        if wl.unschedulable(self.ctx, row, decision):
            return
        port = (spec.port + number) if spec.port else free_port()
        if spec.port and not port_free(port):
            self._release_port(row, port)  # an older replica of this service may hold it
        if spec.port and not port_free(port):
            write_status(
                self.ctx,
                row,
                {
                    **row.status,
                    "phase": "Pending",
                    "reason": "PortInUse",
                    "message": f"port {port} is already in use on this "
                    "machine: free it or choose another "
                    "spec.port",
                },
            )
            return
        try:
            model_dir = registry.materialize(self.ctx.artifacts, self.ctx.settings.home, model_row)
        except DockyardError as exc:
            write_status(
                self.ctx,
                row,
                {
                    **row.status,
                    "phase": "Failed",
                    "reason": "ModelUnavailable",
                    "message": str(exc),
                },
            )
            return
        name, version = model_row.model, model_row.version
        wid = wl.workload_id(
            "svc", row, f"g{row.generation}", f"v{version}", f"r{number}", str(restart)
        )
        runtime = self.ctx.runtime_for(spec.runtime)
        in_container = isinstance(runtime, ServingImages)
        if in_container:  # the serving image holds the model at /model and Dockyard itself
            main = "/model" if model_row.path == "." else f"/model/{model_row.path}"
            command = [
                "python",
                "-m",
                "dockyard.serving",
                "--model",
                f"{name}:{version}={main}",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
            ]
        else:
            path = model_dir / model_row.path if model_row.path != "." else model_dir
            command = [
                "python",
                str(BOOT),
                "--model",
                f"{name}:{version}={path}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        batching = spec.batching
        command += (
            [
                "--max-batch-size",
                str(batching.max_batch_size),
                "--max-latency-ms",
                f"{batching.max_latency_ms:g}",
            ]
            if batching.enabled
            else ["--no-batching"]
        )
        env = dict(spec.env)
        if not in_container:  # compiled models outlive a replica: restarts skip scikit-learn
            cache = self.ctx.settings.home / "cache" / "compiled"
            env.setdefault("DOCKYARD_COMPILE_CACHE", str(cache))
        need = wl.need_of(row.spec["resources"])
        request = WorkloadRequest(
            id=wid,
            command=command,
            env=env,
            environment=environment,
            cpu=need.cpu,
            cpu_limit=need.cpu_limit,
            memory=need.memory or None,
            gpu=need.gpu,
            extra_pythonpath=() if in_container else serving_paths(),
            ports=(port,) if in_container else (),
            labels={"dockyard.dev/service": row.name},
        )
        url = f"http://127.0.0.1:{port}"
        wl.start(
            self.ctx,
            row,
            wid,
            "replica",
            row.generation,
            number,
            request,
            details={"port": port, "url": url, "version": version},
            runtime=runtime.name,
        )
