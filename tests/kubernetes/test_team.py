"""The Kubernetes home for a team, on kwok nodes (no program must run): settings kept with the
home across a kill -9, claims that carry their volume's uid, usage that is never "empty" when
it is unknown. (What needs running pods is in test_real_node.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.runtimes import kube_objects as ko
from tests.conftest import ServerProcess
from tests.kubernetes.conftest import eventually
from tests.kubernetes.test_control_plane import PREFIX, job_doc, k8s_server, volume_doc

DOCKYARD = [sys.executable, "-c", "from dockyard.cli.main import main; main()"]


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with only ``env``."""
    done = subprocess.run(
        [*DOCKYARD, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_killed_control_plane_restarted_by_a_plain_command_keeps_its_runtime(
    server_factory: Any, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first: ServerProcess = k8s_server(server_factory, home=home, DOCKYARD_RUNTIME="kubernetes")
    c = first.start()
    try:
        doc = job_doc("hello", project)
        del doc["spec"]["runtime"]  # the home's runtime, not the document's
        c.apply([doc])
        assert c.wait("Job", "hello", project, timeout=120)["status"]["phase"] == "Succeeded"
        first.kill()
        # the next ordinary command, from a shell that knows only DOCKYARD_HOME
        plain = {k: v for k, v in first.env.items() if not k.startswith("DOCKYARD_")}
        plain["DOCKYARD_HOME"] = str(home)
        shown = cli(plain, "server", "status", "-o", "json", check=False)
        assert '"running": false' in shown.stdout, shown.stdout + shown.stderr
        cli(plain, "get", "jobs", "-p", project)  # starts the server, as any command does
        shown = cli(plain, "server", "status", "-o", "json")
        assert json.loads(shown.stdout)["runtime"] == "kubernetes", shown.stdout
        # and a job applied now runs on the cluster, never on this host
        second = job_doc("again", project)
        del second["spec"]["runtime"]
        (tmp_path / "again.yaml").write_text(json.dumps(second))
        cli(plain, "apply", "-f", str(tmp_path / "again.yaml"), "--wait")
        jobs = kube.get(f"/apis/batch/v1/namespaces/{PREFIX}{project}/jobs").json()["items"]
        assert {j["metadata"]["labels"][ko.NAME] for j in jobs} == {"hello", "again"}
    finally:
        cli(first.env, "server", "stop", check=False)
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")


def test_a_claim_of_another_volume_is_never_adopted_and_unknown_usage_is_never_empty(
    server_factory: Any, kube: httpx.Client, project: str
) -> None:
    srv = k8s_server(server_factory, DOCKYARD_RUNTIME="kubernetes")
    c = srv.start()
    try:
        c.apply([volume_doc("data", project), job_doc("use", project, volumes=[{"name": "data"}])])
        assert c.wait("Job", "use", project, timeout=120)["status"]["phase"] == "Succeeded"
        claim_path = f"/api/v1/namespaces/{PREFIX}{project}/persistentvolumeclaims/data"
        uid = c.get("Volume", "data", project)["metadata"]["uid"]
        claim = kube.get(claim_path).json()
        assert claim["metadata"]["annotations"][ko.VOLUME_UID] == uid
        # kwok runs no usage helper: what the claim holds is unknown, so never taken as empty
        volume = eventually(
            lambda: (v := c.get("Volume", "data", project))["status"].get("claim") and v,
            timeout=120,
        )
        assert volume["status"].get("files") is None, volume["status"]
        c.delete("Job", "use", project)
        with pytest.raises(Exception, match="whose contents were not measured"):
            c.delete("Volume", "data", project)
        # --keep-data keeps the claim and says so; a new volume of the name does not take it
        [deleted] = c.delete_many([("Volume", "data", project)], keep_data=True)
        assert "kept claim" in deleted["note"], deleted
        eventually(lambda: not c.list("Volume", project), timeout=60)
        assert kube.get(claim_path).status_code == 200
        c.apply(
            [volume_doc("data", project), job_doc("again", project, volumes=[{"name": "data"}])]
        )
        failed = c.wait("Job", "again", project, timeout=120)["status"]
        assert failed["phase"] == "Failed" and "does not take over its data" in failed["message"]
        # --purge deletes the claim (its own: the new volume's uid is not the claim's)
        kube.delete(claim_path)
        c.delete("Job", "again", project)
        c.apply([job_doc("third", project, volumes=[{"name": "data"}])])
        assert c.wait("Job", "third", project, timeout=120)["status"]["phase"] == "Succeeded"
        c.delete("Job", "third", project)
        [purged] = c.delete_many([("Volume", "data", project)], purge=True)
        assert "deleting claim" in purged["note"], purged
        eventually(lambda: kube.get(claim_path).status_code == 404, timeout=60)
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")
