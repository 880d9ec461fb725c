"""Workloads in real Podman containers: images, mounts, limits, security, services, recovery.

These run where Podman works (CI installs it); elsewhere they are skipped unless
DOCKYARD_REQUIRE_PODMAN=1 says they must run. The base image is built once with debootstrap
(deploy/podman/base-image.sh) because no registry can be reached here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import DockyardError
from dockyard.runtimes.oci import volume_name
from tests import factories as f
from tests.conftest import BASE, CONF, ServerProcess, podman, wait_until

pytestmark = pytest.mark.containers


@pytest.fixture
def pod_server(server_factory: Any, base_image: str) -> Iterator[ServerProcess]:
    srv: ServerProcess = server_factory(
        DOCKYARD_RUNTIME="podman",
        DOCKYARD_CONTAINERS_CONF=str(CONF),
        DOCKYARD_BASE_IMAGE=base_image,
        DOCKYARD_STOP_GRACE_SECONDS="3",
    )
    srv.start()
    yield srv
    # deleting the resources removes their containers
    for item in srv.client.list("Job") + srv.client.list("Service"):
        srv.client.delete(item["kind"], item["metadata"]["name"])
    wait_until(lambda: not srv.client.list("Job") and not srv.client.list("Service"), 120)
    # and the named volumes bound to this home's directories (a Volume's outlive its jobs)
    listed = podman("volume", "ls", "--filter", "label=dev.dockyard.managed=true", "-q").stdout
    for name in listed.split():
        found = podman("volume", "inspect", name, check=False).stdout
        device = (json.loads(found or "[{}]")[0].get("Options") or {}).get("device", "")
        if device.startswith(str(srv.home)):
            podman("volume", "rm", "--force", name, check=False)


def test_images_are_built_once_and_rendered(pod_server: ServerProcess) -> None:
    c = pod_server.client
    c.apply([f.environment("plain", [], env={"GREETING": "hi"})])
    first = c.build_image("plain")
    lines: list[str] = []
    again = c.build_image("plain", progress=lines.append)
    assert first["image"] == again["image"] and lines == ["cached"]  # a cache hit
    listed = c.images()["items"]
    entry = next(i for i in listed if i["image"].endswith(first["image"].split("/")[-1]))
    assert entry["environment"] == "plain" and entry["hash"] == first["hash"][:12]
    text = c.containerfile("plain")
    assert f"FROM {BASE} AS builder" in text and "USER 1000:1000" in text
    assert "COPY --from=builder /opt/venv /opt/venv" in text
    labels = json.loads(podman("image", "inspect", first["image"]).stdout)[0]["Labels"]
    assert labels["dev.dockyard.environment-hash"] == first["hash"]


def test_a_failing_build_names_the_step(pod_server: ServerProcess) -> None:
    c = pod_server.client
    c.apply([f.environment("broken", ["dockyard-no-such-package-xyz==9.9.9"])])
    with pytest.raises(DockyardError, match="building the image failed at STEP"):
        c.build_image("broken")


def test_a_job_writes_to_its_volume_with_safe_defaults(pod_server: ServerProcess) -> None:
    c = pod_server.client
    code = (
        "import os, pathlib, socket\n"
        "out = pathlib.Path(os.environ['DOCKYARD_VOLUME_DATA']) / 'from-container.txt'\n"
        "out.write_text(f'uid={os.getuid()}')\n"
        "try:\n    open('/etc/dockyard-test', 'w')\n    print('root fs writable')\n"
        "except OSError:\n    print('root fs read-only')\n"
        "open('/tmp/scratch', 'w').write('tmp ok')\n"
        "print('cwd', os.getcwd(), 'data', os.environ['DOCKYARD_VOLUME_DATA'])\n"
        "print('token', os.environ['TOKEN'], len(os.environ['TOKEN']))"
    )
    c.set_secret("api", {"token": "s3cr3t-in-a-container"})
    c.apply(
        [
            f.volume("data"),
            f.job(
                "writer",
                f.python(code),
                env={"TOKEN": {"secretRef": "api/token"}},
                volumes=[{"name": "data"}],
                resources={"cpu": 0.5, "memory": "256Mi"},
            ),
        ]
    )
    job = c.wait("Job", "writer", until={"Succeeded", "Failed"}, timeout=300)
    log = b"".join(c.logs("Job", "writer")).decode()
    assert job["status"]["phase"] == "Succeeded", (job["status"], log)
    host_file = pod_server.home / "volumes" / "default" / "data" / "from-container.txt"
    assert host_file.read_text() == "uid=1000"
    assert "root fs read-only" in log and "cwd /workspace data /volumes/data" in log
    assert "token [secret] 21" in log  # given to the container, masked in its log
    # the volume is the engine's named volume, bound to its tier's directory
    named = volume_name("default", "data", host_file.parent)
    inspected = json.loads(podman("volume", "inspect", named).stdout)[0]
    assert inspected["Options"]["device"] == str(host_file.parent)
    assert inspected["Labels"]["dev.dockyard.tier"] == "standard"


def test_security_defaults_of_a_running_container(
    pod_server: ServerProcess, tmp_path: Path
) -> None:
    c = pod_server.client
    c.apply(
        [
            f.job(
                "sleeper",
                f.python("import time; time.sleep(120)"),
                resources={"cpu": 0.5, "cpuLimit": 0.5, "memory": "128Mi"},
            )
        ]
    )
    wait_until(lambda: c.get("Job", "sleeper")["status"].get("phase") == "Running", 300)
    wid = c.workloads("Job", "sleeper")[0]["id"]
    info = json.loads(podman("container", "inspect", wid).stdout)[0]
    host = info["HostConfig"]
    assert info["Config"]["User"] == "1000:1000"
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in " ".join(host.get("SecurityOpt") or [])
    assert info["EffectiveCaps"] in (None, [])
    assert host["NetworkMode"] != "host"
    assert host["Memory"] == 128 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert info["Config"]["Labels"]["dev.dockyard.workload"] == wid
    c.apply(
        [
            f.job(
                "loose",
                f.python("open('/etc/dockyard-test', 'w').write('ok')"),
                resources={"cpu": 0.2},
                security={"readOnlyRootFilesystem": False, "runAsRoot": True},
            )
        ]
    )
    loose = c.wait("Job", "loose", until={"Succeeded", "Failed"}, timeout=300)
    assert loose["status"]["phase"] == "Succeeded", loose["status"]  # loosened explicitly
    loose_id = c.workloads("Job", "loose")[0]["id"]
    loose_info = json.loads(podman("container", "inspect", loose_id).stdout)[0]
    assert loose_info["HostConfig"]["ReadonlyRootfs"] is False
    c.cancel("sleeper")
    assert c.wait("Job", "sleeper", until={"Cancelled"}, timeout=120)
    wait_until(
        lambda: (
            json.loads(podman("container", "inspect", wid).stdout)[0]["State"]["Status"] == "exited"
        ),
        60,
    )


def test_a_job_over_its_memory_limit_is_oom_killed(pod_server: ServerProcess) -> None:
    c = pod_server.client
    before = set(Path.cwd().iterdir())  # the server's working directory (conmon writes 'oom')
    c.apply(
        [
            f.job(
                "hog",
                f.python("x = bytearray(400 * 1024 * 1024); print(len(x))"),
                resources={"cpu": 0.5, "memory": "64Mi"},
            )
        ]
    )
    st = c.wait("Job", "hog", until={"Succeeded", "Failed"}, timeout=300)["status"]
    assert st["phase"] == "Failed" and st["reason"] == "OOMKilled", st
    assert set(Path.cwd().iterdir()) <= before, "the engine left files where the server started"


def test_kill_9_while_a_container_job_runs(pod_server: ServerProcess, tmp_path: Path) -> None:
    c = pod_server.client
    code = (
        "import os, time, pathlib\n"
        "d = pathlib.Path(os.environ['DOCKYARD_VOLUME_DATA'])\n"
        "with open(d / 'starts', 'a') as fh: fh.write('x')\n"
        "while not (d / 'gate').exists(): time.sleep(0.1)\nprint('done')"
    )
    c.apply(
        [
            f.volume("data"),
            f.job("survivor", f.python(code), volumes=[{"name": "data"}], resources={"cpu": 0.5}),
        ]
    )
    volume = pod_server.home / "volumes" / "default" / "data"
    wait_until((volume / "starts").exists, 300, message="container started")
    pod_server.kill()
    (volume / "gate").write_text("")
    c = pod_server.start()
    job = c.wait("Job", "survivor", until={"Succeeded", "Failed"}, timeout=120)
    assert job["status"]["phase"] == "Succeeded"
    assert (volume / "starts").read_text() == "x"  # started once
    assert b"done" in b"".join(c.logs("Job", "survivor"))


def test_a_missing_engine_is_named(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(PATH=os.path.dirname(sys.executable))
    c = srv.start()
    c.apply([f.job("boxed", ["true"], runtime="podman")])
    st = c.wait("Job", "boxed", until={"Failed", "Succeeded"}, timeout=60)["status"]
    assert st["phase"] == "Failed"
    assert "Podman not found: install it or choose runtime: local" in st["message"]


def test_one_ps_observes_every_running_container(
    tmp_path: Path, env_cache: Path, base_image: str
) -> None:
    """A pass over many running containers costs one `ps`, not an `inspect` each."""
    from dockyard.runtimes.base import RunState, WorkloadRequest
    from dockyard.runtimes.oci import OciRuntime
    from dockyard.settings import Settings

    settings = Settings(
        home=tmp_path / "home",
        env_cache=env_cache,
        runtime="podman",
        containers_conf=CONF,
        base_image=base_image,
        stop_grace_seconds=1,
    )
    runtime = OciRuntime(settings, "podman")
    ids = [f"observe-{os.getpid()}-{i}" for i in range(3)]
    calls: list[tuple[str, ...]] = []
    real_run = runtime.engine.run

    def counting(*args: str, **kwargs: Any) -> Any:
        calls.append(args)
        return real_run(*args, **kwargs)

    try:
        for i, wid in enumerate(ids):
            code = "import time; time.sleep(120)" if i else "print('quick')"
            state = runtime.start(WorkloadRequest(wid, ["python", "-c", code]))
            assert state.phase in (RunState.RUNNING, RunState.SUCCEEDED), state
        wait_until(lambda: runtime.observe(ids[0]).phase == RunState.SUCCEEDED, 60)
        runtime.engine.run = counting  # type: ignore[method-assign]
        time.sleep(0.2)  # let the last snapshot age
        states = [runtime.observe(wid) for wid in ids]
        assert [s.phase for s in states] == [RunState.SUCCEEDED, RunState.RUNNING, RunState.RUNNING]
        assert states[0].exit_code == 0 and states[0].reason == "Completed"
        assert all(s.details["container"] for s in states[1:])
        verbs = [c[0] for c in calls]
        assert verbs.count("ps") == 1 and verbs.count("container") == 1, calls  # 1 inspect
        runtime.stop(ids[1], 1)
        assert runtime.observe(ids[1]).phase == RunState.FAILED  # not a stale "running"
        assert runtime.observe(ids[1]).reason == "Stopped"
    finally:
        runtime.engine.run = real_run  # type: ignore[method-assign]
        for wid in ids:
            runtime.remove(wid)
