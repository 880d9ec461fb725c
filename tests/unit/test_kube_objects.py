"""The Kubernetes objects of a workload: names, safe defaults, mapping, official schemas."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import Mount, PreparedEnvironment, VolumeRef, WorkloadRequest

RELEASE = "1.34.4"  # the test cluster's (deploy/testbed/kube/go.mod)
OPTIONS = ko.ClusterOptions(storage_classes={"fast": "px-fast"}, registry="reg.local:5000/ml")


def job_request(**changes: object) -> WorkloadRequest:
    fields: dict[str, object] = {
        "id": "job-train-0123abcd-g2-a1",
        "command": ["python", "train.py"],
        "env": {"EPOCHS": "3"},
        "environment": PreparedEnvironment("h", "localhost/dockyard/env:abc123", "python"),
        "code_dir": Path("/unused"),
        "mounts": (
            Mount(
                Path("/v"),
                "/volumes/data",
                False,
                "DOCKYARD_VOLUME_DATA",
                VolumeRef("data", "raw", "fast", 5 * 1024**3),
            ),
        ),
        "output_dir": Path("/o"),
        "cpu": 1.5,
        "cpu_limit": 2,
        "memory": 2 * 1024**3,
        "timeout": 90.5,
        "labels": {"dockyard.dev/job": "train"},
        "secrets": {"API_KEY": "creds/key"},
        "secret_env": {"API_KEY": "s3cr3t-value"},
        "gpus": (0,),
        "gpu_type": "NVIDIA-T4",
        "priority": 10,
        "project": "vision",
    }
    fields.update(changes)
    return WorkloadRequest(**fields)  # type: ignore[arg-type]


def by_kind(objects: list[ko.Obj], kind: str) -> list[ko.Obj]:
    return [o for o in objects if o["kind"] == kind]


def test_every_object_validates_against_the_pinned_release_in_strict_mode() -> None:
    service = WorkloadRequest(
        id="svc-web-0123abcd-g1-v3-r0-0",
        command=["python", "-m", "dockyard.serving"],
        labels={"dockyard.dev/service": "web"},
    )
    objects = [
        *ko.namespace_objects(OPTIONS, "vision"),
        *ko.workload_objects(job_request(), OPTIONS, b"tgz").all(),
        *ko.workload_objects(service, OPTIONS).all(),
    ]
    assert {o["kind"] for o in objects} >= {"Job", "Deployment", "Service", "ConfigMap"}
    for obj in objects:
        kubernetes_validate.validate(obj, RELEASE, strict=True)


def test_names_are_dns_labels_short_enough_for_pod_names_and_unique() -> None:
    long_id = "job-" + "a" * 80 + "-g1-a1"
    other = "job-" + "a" * 80 + "-g1-a2"
    assert len(ko.dns_name(long_id)) <= ko.MAX_NAME
    assert ko.dns_name(long_id) != ko.dns_name(other)
    assert ko.dns_name("job-ok-g1-a1") == "job-ok-g1-a1"
    assert ko.dns_name("Job_X") != "job-x"  # changed names carry a hash: no collisions


def test_a_job_attempt_is_a_batch_job_that_kubernetes_never_retries() -> None:
    objects = ko.workload_objects(job_request(), OPTIONS, b"tgz")
    job = objects.main
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "dockyard-vision"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 91
    labels = job["metadata"]["labels"]
    assert labels[ko.MANAGED_BY] == "dockyard"
    assert (labels[ko.PROJECT], labels[ko.KIND], labels[ko.NAME]) == ("vision", "job", "train")
    assert labels[ko.GENERATION] == "2"
    assert job["metadata"]["annotations"][ko.WORKLOAD_ID] == "job-train-0123abcd-g2-a1"
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["image"] == "reg.local:5000/ml/env:abc123"
    assert main["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "2000m", "memory": "2Gi", "nvidia.com/gpu": "1"},
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-T4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["priorityClassName"] == "dockyard-priority-10"
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["EPOCHS"] == "3" and env["DOCKYARD_VOLUME_DATA"] == "/volumes/data"
    assert "s3cr3t-value" not in env.values()
    assert env["DOCKYARD_OUTPUT_DIR"] == "/dockyard/output"
    claim = next(m for m in main["volumeMounts"] if m["mountPath"] == "/volumes/data")
    assert claim["subPath"] == "raw"
    pvcs = {p["metadata"]["name"]: p for p in by_kind(objects.shared, "PersistentVolumeClaim")}
    assert pvcs["data"]["spec"]["storageClassName"] == "px-fast"
    assert pvcs["data"]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert (ko.quantity(512 * 1024**2), ko.quantity(1000)) == ("512Mi", "1000")
    # outputs: a claim of the attempt's own (a helper reads it back): never the log
    assert main["command"] == ["python", "train.py"]
    [out] = by_kind(objects.owned, "PersistentVolumeClaim")
    assert out["metadata"]["name"] == ko.outputs_claim_name("job-train-0123abcd-g2-a1")
    assert {"name": "outputs", "persistentVolumeClaim": {"claimName": out["metadata"]["name"]}} in (
        pod["volumes"]
    )
    kubernetes_validate.validate(out, RELEASE, strict=True)


def test_a_preparation_writes_its_outputs_into_the_datasets_volume() -> None:
    into = VolumeRef("datasets", "digits", "standard", None)
    objects = ko.workload_objects(
        job_request(labels={"dockyard.dev/dataset": "digits"}, output_volume=into), OPTIONS
    )
    main = objects.main["spec"]["template"]["spec"]["containers"][0]
    [out] = [m for m in main["volumeMounts"] if m["mountPath"] == "/dockyard/output"]
    assert out["subPath"] == "digits"
    names = {p["metadata"]["name"] for p in by_kind(objects.shared, "PersistentVolumeClaim")}
    assert "datasets" in names


def test_secret_values_live_in_a_secret_never_in_the_pod_spec() -> None:
    objects = ko.workload_objects(job_request(), OPTIONS, b"tgz")
    assert "s3cr3t-value" not in json.dumps(objects.main)
    [secret] = by_kind(objects.owned, "Secret")
    assert secret["stringData"] == {"API_KEY": "s3cr3t-value"}
    main = objects.main["spec"]["template"]["spec"]["containers"][0]
    assert main["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_safe_by_default_and_loosened_only_by_spec_security() -> None:
    pod = ko.workload_objects(job_request(), OPTIONS).main["spec"]["template"]["spec"]
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and "hostNetwork" not in pod
    loose = job_request(
        security={"runAsRoot": True, "capabilities": ["NET_ADMIN"], "hostNetwork": True}
    )
    pod = ko.workload_objects(loose, OPTIONS).main["spec"]["template"]["spec"]
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is False and sc["runAsUser"] == 0
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert pod["hostNetwork"] is True


def test_code_travels_in_a_configmap_unpacked_by_an_init_container() -> None:
    objects = ko.workload_objects(job_request(), OPTIONS, b"\x1f\x8bcode")
    [config] = by_kind(objects.owned, "ConfigMap")
    assert config["immutable"] is True and "code.tar.gz" in config["binaryData"]
    pod = objects.main["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"][:2] == ["tar", "-xzf"]
    without = ko.workload_objects(job_request(code_dir=None), OPTIONS)
    assert not by_kind(without.owned, "ConfigMap")
    assert "initContainers" not in without.main["spec"]["template"]["spec"]


def test_a_service_revision_is_a_deployment_of_its_replicas_behind_the_services_service() -> None:
    request = WorkloadRequest(
        id="svc-web-0123abcd-v3-1a2b3c4d-0",
        command=["python", "-m", "dockyard.serving"],
        labels={"dockyard.dev/service": "web"},
        project="vision",
        replicas=3,
    )
    objects = ko.workload_objects(request, OPTIONS)
    deployment = objects.main
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert main["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    [service] = by_kind(objects.shared, "Service")
    assert service["spec"]["selector"][ko.NAME] == "web"
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(template_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert ko.service_url(OPTIONS, "vision", "web") == "http://web.dockyard-vision.svc:8080"


def test_the_namespace_admits_only_the_model_servers_port() -> None:
    namespace, policy = ko.namespace_objects(OPTIONS, "vision")
    assert namespace["metadata"]["name"] == "dockyard-vision"
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


def test_a_mount_that_is_not_a_volume_cannot_go_to_a_cluster() -> None:
    request = job_request(mounts=(Mount(Path("/host/dir"), "/x"),))
    with pytest.raises(ValueError, match="not on a Volume"):
        ko.workload_objects(request, OPTIONS)


def test_storage_classes_parse_from_the_setting() -> None:
    parsed = ko.ClusterOptions.parse_classes("fast=px-fast, standard = px-std,bad,=x")
    assert parsed == {"fast": "px-fast", "standard": "px-std"}


def test_a_tier_with_replicas_picks_its_own_class_else_the_tiers() -> None:
    options = ko.ClusterOptions(
        storage_classes=ko.ClusterOptions.parse_classes("fast=px-fast,fast/3=px-fast-r3")
    )
    three = ko.claim_object(options, "p", "ckpt", "fast", 1024, replicas=3)
    assert three["spec"]["storageClassName"] == "px-fast-r3"
    assert three["metadata"]["annotations"]["dockyard.dev/replicas"] == "3"
    two = ko.claim_object(options, "p", "ckpt", "fast", 1024, replicas=2)
    assert two["spec"]["storageClassName"] == "px-fast"
    archive = ko.claim_object(options, "p", "old", "archive", 1024)
    assert "storageClassName" not in archive["spec"]  # the cluster's default class


def test_a_pod_says_which_volumes_it_reads_for_the_scheduler_extender() -> None:
    from dockyard.placement.labels import NEEDS, needs_of

    pod = ko.workload_objects(job_request(), OPTIONS).main["spec"]["template"]
    needs = needs_of(pod["metadata"]["annotations"])
    assert [(n.kind, n.project, n.name) for n in needs] == [("Volume", "vision", "data")]
    bare = ko.workload_objects(job_request(mounts=()), OPTIONS).main["spec"]["template"]
    assert NEEDS not in bare["metadata"]["annotations"]


def test_what_a_real_api_server_would_refuse_is_not_built() -> None:
    # a Service's name starts with a letter; Dockyard's may start with a digit
    assert ko.service_name("3d-model")[0].isalpha()
    assert ko.service_name("web") == "web"
    # a CPU request above its limit is refused: the request is capped
    resources = ko.resources_of(job_request(cpu=1.0, cpu_limit=0.5))
    assert resources["requests"]["cpu"] == "500m" and resources["limits"]["cpu"] == "500m"
    kubernetes_validate.validate(
        ko.workload_objects(job_request(cpu=1.0, cpu_limit=0.5), OPTIONS).main, RELEASE, True
    )


def test_the_rendered_control_plane_carries_no_secret_value_only_a_reference() -> None:
    from dockyard.runtimes.kube_control_plane import NAME, control_plane_objects, render_header

    objects = control_plane_objects()
    assert "Secret" not in {o["kind"] for o in objects}
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": NAME}}]
    assert f"create secret generic {NAME}" in render_header()


def test_code_for_a_pod_leaves_version_control_and_caches_out(tmp_path: Path) -> None:
    import io
    import tarfile

    from dockyard.runtimes.kube_objects import code_archive

    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[credential] token=secret")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"x")
    (tmp_path / "train.py").write_text("print(1)")
    data = code_archive(tmp_path, 900 * 1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["train.py"]
    assert code_archive(tmp_path, 900 * 1024) == data  # reproducible


def test_a_claim_carries_the_uid_of_the_volume_it_was_made_for() -> None:
    claim = ko.claim_object(OPTIONS, "p", "ckpt", "fast", 1024, uid="0123abcd" * 4)
    assert claim["metadata"]["annotations"][ko.VOLUME_UID] == "0123abcd" * 4
    ref = VolumeRef("ckpt", "", "fast", 1024, uid="feed" * 8)
    mounted = job_request(mounts=(Mount(Path("/v"), "/ckpt", False, None, ref),))
    [made] = by_kind(ko.workload_objects(mounted, OPTIONS).shared, "PersistentVolumeClaim")
    assert made["metadata"]["annotations"][ko.VOLUME_UID] == "feed" * 8
