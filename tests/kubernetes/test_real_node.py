"""The digits example on a real node of the test cluster: containerd and a kubelet run the
pods (`make cluster CLUSTER_ARGS="--real-node --nodes 0"`, as `.ci/run` does after the kwok
tests). Train on a pod, register the model, serve it from a Deployment, predict.

Skipped where the cluster has no real node (say how to start one); DOCKYARD_REQUIRE_REAL_NODE=1
fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kubernetes.conftest import KUBECONFIG, ROOT, eventually
from tests.lanes import missing

DOCKYARD = [sys.executable, "-c", "from dockyard.cli.main import main; main()"]
HOW = 'no real node: `make cluster CLUSTER_ARGS="--real-node --nodes 0"` starts one'


def real_nodes(kube: httpx.Client) -> list[str]:
    nodes = kube.get("/api/v1/nodes", params={"labelSelector": "type=real"}).json()
    return [
        n["metadata"]["name"]
        for n in nodes.get("items", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]


def others(kube: httpx.Client) -> list[str]:
    nodes = kube.get("/api/v1/nodes", params={"labelSelector": "type!=real"}).json()
    return [n["metadata"]["name"] for n in nodes.get("items", [])]


@pytest.fixture
def real_node(kube: httpx.Client) -> str:
    found = real_nodes(kube)
    if not found or others(kube):  # kwok nodes would take pods whose images they never need
        why = f"{HOW} (nodes besides it: {others(kube)})" if found else HOW
        missing("real_node", why)
    return found[0]


@pytest.fixture
def dockyard(tmp_path: Path, env_cache: Path, base_image: str) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(tmp_path / "home"),
        DOCKYARD_ENV_CACHE=str(env_cache),
        DOCKYARD_RESYNC_SECONDS="0.5",
        DOCKYARD_RUNTIME="kubernetes",
        DOCKYARD_KUBECONFIG=str(KUBECONFIG),
        DOCKYARD_KUBE_NAMESPACE_PREFIX="dyn-",
        DOCKYARD_KUBE_STORAGE_CLASSES="fast=dockyard-fast",
        DOCKYARD_KUBE_IMAGE_LOADER=f"{sys.executable} {ROOT}/deploy/testbed/cluster.py load-image",
        DOCKYARD_BASE_IMAGE=base_image,
        DOCKYARD_CONTAINERS_CONF=str(ROOT / "deploy" / "podman" / "containers.conf"),
        COLUMNS="200",
    )
    yield env
    log = tmp_path / "home" / "server.log"  # shown when the test failed
    print("".join(log.read_text(errors="replace").splitlines(True)[-60:]) if log.exists() else "")
    run(env, "delete", "-f", str(ROOT / "examples" / "digits"), "--purge", check=False)
    run(env, "server", "stop", check=False)


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*DOCKYARD, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def test_the_digits_example_trains_and_serves_on_a_real_node(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client
) -> None:
    run(dockyard, "apply", "-f", str(ROOT / "examples" / "digits"), "--wait", "--timeout", "1100")
    job = json.loads(run(dockyard, "get", "job", "train-digits", "-o", "json").stdout)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    # it ran on the real node, as a Kubernetes Job, and its log comes from the pod log API
    pods = kube.get(
        "/api/v1/namespaces/dyn-default/pods",
        params={"labelSelector": "dockyard.dev/name=train-digits"},
    ).json()["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {real_node}
    assert "accuracy" in run(dockyard, "logs", "train-digits").stdout
    # its outputs came back to the registry: a model version with its metrics
    versions = json.loads(run(dockyard, "models", "show", "digits", "1", "-o", "json").stdout)
    assert versions["metrics"]["accuracy"] > 0.9
    # the model server runs in a pod of a Deployment and answers
    answer = run(
        dockyard,
        "predict",
        "digits",
        "--file",
        str(ROOT / "examples" / "digits" / "sample-request.json"),
    )
    assert "[8]" in answer.stdout, answer.stdout


def pods_of(
    kube: httpx.Client, kind: str, name: str, namespace: str = "dyn-default"
) -> list[dict[str, Any]]:
    selector = f"dockyard.dev/kind={kind},dockyard.dev/name={name}"
    answer = kube.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector})
    items: list[dict[str, Any]] = answer.json().get("items", [])
    return items


def deployments(kube: httpx.Client, name: str) -> list[dict[str, Any]]:
    answer = kube.get(
        "/apis/apps/v1/namespaces/dyn-default/deployments",
        params={"labelSelector": f"dockyard.dev/kind=service,dockyard.dev/name={name}"},
    )
    items: list[dict[str, Any]] = answer.json().get("items", [])
    return items


def service_doc(**spec: Any) -> str:
    doc = {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Service",
        "metadata": {"name": "digits"},
        "spec": {"model": "digits@latest", "resources": {"cpu": 0.5, "memory": "512Mi"}, **spec},
    }
    return json.dumps(doc)


def predict_through_the_cluster(kube: httpx.Client, namespace: str = "dyn-default") -> str:
    """A prediction through the API server's proxy to the Service: no Dockyard involved."""
    body = json.loads((ROOT / "examples" / "digits" / "sample-request.json").read_text())
    answer = kube.post(
        f"/api/v1/namespaces/{namespace}/services/digits:8080/proxy/v2/models/digits/infer",
        json=body,
        timeout=30,
    )
    return answer.text


@pytest.mark.timeout(900)  # the digits example twice, on one real node
def test_a_team_on_the_cluster_keeps_serving_logs_and_settings_and_purge_deletes_the_data(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client, tmp_path: Path
) -> None:
    """The faults a team meets in its first week, on a real node: outputs never travel through
    a log, logs outlive their pods, stopping the control plane never stops serving, a plain
    command restarts it with its own settings, and a purge really deletes the data."""
    digits = str(ROOT / "examples" / "digits")
    run(dockyard, "apply", "-f", digits, "--wait", "--timeout", "1100")
    # outputs came back through a helper on the claim: the pod's log holds no model
    [train_pod] = pods_of(kube, "job", "train-digits")
    raw = kube.get(
        f"/api/v1/namespaces/dyn-default/pods/{train_pod['metadata']['name']}/log",
        params={"container": "main"},
    ).text
    assert "accuracy" in raw and "outputs follow" not in raw
    assert max(len(line) for line in raw.splitlines()) < 400  # no base64 blob
    claims = kube.get("/api/v1/namespaces/dyn-default/persistentvolumeclaims").json()["items"]
    outputs = [c["metadata"] for c in claims if c["metadata"]["name"].endswith("-out")]
    assert all(m.get("deletionTimestamp") for m in outputs), outputs  # read, then deleted
    # the log is Dockyard's: the pod deleted, `dockyard logs` still shows it
    kube.delete(f"/api/v1/namespaces/dyn-default/pods/{train_pod['metadata']['name']}")
    eventually(lambda: not pods_of(kube, "job", "train-digits"), timeout=60)
    assert "accuracy" in run(dockyard, "logs", "train-digits").stdout
    # one Deployment per version, the Service its stable address
    service = json.loads(run(dockyard, "get", "service", "digits", "-o", "json").stdout)
    assert service["status"]["url"] == "http://digits.dyn-default.svc:8080"
    [serving_pod] = pods_of(kube, "service", "digits")
    [first] = deployments(kube, "digits")
    # 1 → 2 replicas: the same Deployment scaled, the first pod stays and serves meanwhile
    two = tmp_path / "two.yaml"
    two.write_text(service_doc(replicas=2))
    run(dockyard, "apply", "-f", str(two), "--wait", "--timeout", "300")
    [same] = deployments(kube, "digits")
    assert same["metadata"]["uid"] == first["metadata"]["uid"] and same["spec"]["replicas"] == 2
    serving = [p["metadata"]["uid"] for p in pods_of(kube, "service", "digits")]
    assert serving_pod["metadata"]["uid"] in serving and len(serving) == 2
    # what the pods run changed: a new Deployment, the old one gone once it is ready
    two.write_text(service_doc(replicas=2, batching={"enabled": False}))
    run(dockyard, "apply", "-f", str(two), "--wait", "--timeout", "300")
    eventually(lambda: len(deployments(kube, "digits")) == 1, timeout=60)
    [new] = deployments(kube, "digits")
    assert new["metadata"]["uid"] != first["metadata"]["uid"]
    assert "--no-batching" in new["spec"]["template"]["spec"]["containers"][0]["command"]
    serving_pod = pods_of(kube, "service", "digits")[0]
    # stopping the control plane leaves the model server answering
    run(dockyard, "server", "stop")
    assert "[8]" in predict_through_the_cluster(kube)
    assert serving_pod["metadata"]["uid"] in [
        p["metadata"]["uid"] for p in pods_of(kube, "service", "digits")
    ]
    # a plain command (only DOCKYARD_HOME in its environment) starts it again, on Kubernetes
    plain = {k: v for k, v in dockyard.items() if not k.startswith("DOCKYARD_")}
    plain["DOCKYARD_HOME"] = dockyard["DOCKYARD_HOME"]
    status = json.loads(run(plain, "server", "status", "-o", "json", check=False).stdout or "{}")
    assert not status.get("running")
    assert (
        "[8]" in run(plain, "predict", "digits", "--file", f"{digits}/sample-request.json").stdout
    )
    status = json.loads(run(plain, "server", "status", "-o", "json").stdout)
    assert status["runtime"] == "kubernetes", status
    # an explicit other runtime for this home is refused, in one line
    run(plain, "server", "stop")
    refused = run({**plain, "DOCKYARD_RUNTIME": "local"}, "server", "start", check=False)
    assert refused.returncode != 0 and "unset DOCKYARD_RUNTIME" in refused.stderr, refused
    # delete --purge deletes the claims; applying again trains from scratch
    run(plain, "delete", "-f", digits, "--purge")
    claims = kube.get("/api/v1/namespaces/dyn-default/persistentvolumeclaims").json()["items"]
    assert not {c["metadata"]["name"] for c in claims} & {"digits-data", "digits-checkpoints"}
    run(plain, "apply", "-f", digits, "--wait", "--timeout", "1100")
    log = run(plain, "logs", "train-digits").stdout
    assert "checkpoint directory holds: nothing" in log and "resuming" not in log, log[:2000]
    trained = json.loads(run(plain, "get", "job", "train-digits", "-o", "json").stdout)
    assert trained["status"]["modelVersion"].startswith("digits@"), trained["status"]


def test_timeouts_and_cancels_say_so_and_their_logs_are_kept(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client, tmp_path: Path
) -> None:
    """A timeout is `Timeout`, a cancel `Cancelled`, and their logs outlive the pods; a log is
    masked before it is kept and cut at DOCKYARD_MAX_LOG_BYTES, saying so."""
    env = {**dockyard, "DOCKYARD_MAX_LOG_BYTES": "4096"}
    secret = "s3cr3t-value-only-the-job-knows"
    (tmp_path / "value").write_text(secret)
    run(env, "secrets", "set", "creds", f"key=@{tmp_path / 'value'}")
    sleeper = ["python3", "-c", "import time; print('started', flush=True); time.sleep(120)"]
    chatty = [
        "python3",
        "-c",
        "import os\nprint('the token is', os.environ['TOKEN'], flush=True)\n"
        "for i in range(2000): print('line', i)",
    ]
    small = {"cpu": 0.1, "memory": "64Mi"}
    specs = {
        "slow": {"command": sleeper, "timeoutSeconds": 8},
        "stopped": {"command": sleeper},
        "chatty": {"command": chatty, "env": {"TOKEN": {"secretRef": "creds/key"}}},
    }
    docs = [
        {"apiVersion": "dockyard.dev/v1", "kind": "Job", "metadata": {"name": name},
         "spec": {"resources": small, **spec}}
        for name, spec in specs.items()
    ]  # fmt: skip
    path = tmp_path / "jobs.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    run(env, "apply", "-f", str(path))
    eventually(lambda: "started" in run(env, "logs", "stopped").stdout, timeout=120)
    run(env, "cancel", "stopped")

    def phase(name: str) -> dict[str, Any] | None:
        job = json.loads(run(env, "get", "job", name, "-o", "json").stdout)
        return job if job["status"].get("phase") in ("Failed", "Succeeded") else None

    timed_out = eventually(lambda: phase("slow"), timeout=180)
    assert timed_out["status"]["reason"] == "Timeout", timed_out["status"]
    cancelled = json.loads(run(env, "get", "job", "stopped", "-o", "json").stdout)
    assert cancelled["status"]["phase"] == "Cancelled", cancelled["status"]
    for name in ("slow", "stopped"):  # the pods are gone or going: the logs stay
        assert "started" in run(env, "logs", name).stdout
    assert eventually(lambda: phase("chatty"), timeout=180)["status"]["phase"] == "Succeeded"
    log = eventually(lambda: (out := run(env, "logs", "chatty").stdout) and "cut" in out and out)
    assert "the token is [secret]" in log and secret not in log
    assert "the log was cut at 4096 bytes (DOCKYARD_MAX_LOG_BYTES)" in log
    kept = list((Path(env["DOCKYARD_HOME"]) / "logs").rglob("*.log"))
    assert kept and all(secret not in p.read_text(errors="replace") for p in kept)  # at rest too
    run(env, "delete", "-f", str(path))


@pytest.mark.timeout(1200)  # two images built (cached after), a dataset, a training, a server
def test_a_render_of_the_digits_example_predicts_without_dockyard(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client, tmp_path: Path
) -> None:
    """`dockyard render` for GitOps: applied with no control plane running into a fresh
    namespace, it prepares the dataset, trains, serves the model from its claim, predicts."""
    import yaml

    from tests.kubernetes.test_render_rbac import server_apply

    # the images render names, built the way its header says (on a home of its own)
    builder = {**dockyard, "DOCKYARD_RUNTIME": "podman", "DOCKYARD_HOME": str(tmp_path / "img")}
    env_doc = next(
        d
        for d in yaml.safe_load_all((ROOT / "examples" / "digits" / "digits.yaml").read_text())
        if d["kind"] == "Environment"
    )
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(env_doc))
    run(builder, "apply", "-f", str(tmp_path / "env.yaml"))
    built = run(builder, "images", "build", "sklearn", "--serving").stdout
    run(builder, "server", "stop")
    images = [line.rsplit(" ", 1)[-1] for line in built.splitlines() if "→" in line]
    assert len(images) == 2, built
    for image in images:  # onto the node, as a registry would serve them
        subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "testbed" / "cluster.py"), "load-image", image],
            check=True,
            timeout=600,
            capture_output=True,
        )
    namespace = f"gitops-{os.urandom(3).hex()}"
    rendered = run(
        builder, "render", "-f", str(ROOT / "examples" / "digits"), "--namespace", namespace
    ).stdout
    assert rendered.startswith("# Rendered by Dockyard") and "kind: Secret" not in rendered
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    assert {o["metadata"].get("namespace", namespace) for o in objects} == {namespace}
    managed = {o["metadata"]["labels"]["app.kubernetes.io/managed-by"] for o in objects}
    assert managed == {"dockyard-render"}  # a live control plane never adopts them
    try:
        for obj in objects:  # kubectl apply, in the order (and sync waves) rendered
            answer = server_apply(kube, obj)
            assert answer.status_code in (200, 201), (obj["kind"], answer.text)
        deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/digits"
        eventually(
            lambda: kube.get(deployment).json().get("status", {}).get("readyReplicas"),
            timeout=900,
            every=2,
        )
        assert "[8]" in predict_through_the_cluster(kube, namespace)
    finally:
        kube.delete(f"/api/v1/namespaces/{namespace}")


def claim_dir(kube: httpx.Client, claim: str, namespace: str = "dyn-default") -> Path:
    """Where the test cluster's hostPath provisioner put a claim's volume (on this machine)."""
    pvc = kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}").json()
    pv = kube.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}").json()
    return Path(pv["spec"]["hostPath"]["path"])


@pytest.mark.timeout(900)
def test_a_jobs_preconditions_run_in_its_pod_on_the_claim(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client, tmp_path: Path
) -> None:
    """Checkpoint pruning and dataset verification happen in the pod (init containers) on the
    claim — a half-written checkpoint is removed before the attempt, a damaged dataset file
    fails it with the file named — and the control plane's disk is never touched for them."""
    digits = str(ROOT / "examples" / "digits")
    run(dockyard, "apply", "-f", digits, "--wait", "--timeout", "1100")
    home = Path(dockyard["DOCKYARD_HOME"])
    assert not (home / "volumes" / "default" / "digits-checkpoints").exists()
    # the next generation's checkpoint directory holds one cut short (no .complete)
    checkpoints = claim_dir(kube, "digits-checkpoints") / "checkpoints" / "train-digits" / "g2"
    half = checkpoints / "epoch-9999"
    half.mkdir(parents=True)
    (half / "weights").write_text("cut short")
    for path in (checkpoints, half, half / "weights"):
        os.chown(path, 1000, 1000)  # as the pod (uid 1000) would have left it
    data = claim_dir(kube, "digits-data") / "digits" / "digits.csv"
    size = data.stat().st_size
    with data.open("r+b") as fh:  # the same size, another content (and a new mtime)
        fh.seek(size // 2)
        fh.write(b"9")
    # a new generation of the job: its first attempt goes through the init containers
    job = next(
        d
        for d in __import__("yaml").safe_load_all(
            (ROOT / "examples/digits/digits.yaml").read_text()
        )
        if d["kind"] == "Job"
    )
    job["spec"]["env"] = {"GENERATION": "2"}
    job["spec"]["retry"] = {"limit": 0}
    job["spec"]["code"] = str(ROOT / "examples" / "digits" / "code")
    (tmp_path / "job.yaml").write_text(json.dumps(job))
    run(dockyard, "apply", "-f", str(tmp_path / "job.yaml"))
    failed = eventually(
        lambda: (
            (j := json.loads(run(dockyard, "get", "job", "train-digits", "-o", "json").stdout))[
                "status"
            ].get("phase")
            == "Failed"
            and j["status"].get("observedGeneration") == 2
            and j
        ),
        timeout=300,
    )
    assert failed["status"]["reason"] == "DatasetChanged", failed["status"]
    assert "digits.csv changed content" in failed["status"]["message"], failed["status"]
    assert not half.exists()  # pruned in the pod before the attempt
    assert not (home / "volumes" / "default" / "digits-checkpoints").exists()
