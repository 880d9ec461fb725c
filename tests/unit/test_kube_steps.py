"""The preconditions a pod carries out itself (init containers): their real scripts, run here
with a real Python on a real directory, decide as the control plane's own steps do."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.data import checkpoints, datasets
from dockyard.errors import ChecksumMismatch
from dockyard.paths import Inside
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes import kube_steps as ks
from dockyard.runtimes.base import Mount, VolumeRef, WorkloadRequest
from dockyard.runtimes.steps import MakeDirs, PruneCheckpoints, UnpackCode, VerifyDatasets


def checkpoint_dir(root: Path) -> Path:
    ckpt = root / "ckpt"
    for name, complete in (("epoch-0001", True), ("epoch-0002", True), ("epoch-0003", True),
                           ("epoch-0004", False), (".tmp-x", False)):  # fmt: skip
        (ckpt / name).mkdir(parents=True)
        (ckpt / name / "weights").write_text(name)
        if complete:
            (ckpt / name / ".complete").write_text("")
    (ckpt / "notes.txt").write_text("the workload's own file")
    os.symlink("/etc", ckpt / "planted")
    return ckpt


def test_the_prune_script_keeps_what_the_control_planes_prune_keeps(tmp_path: Path) -> None:
    here, there = checkpoint_dir(tmp_path / "a"), checkpoint_dir(tmp_path / "b")
    expected = checkpoints.prune(Inside(here.parent), "ckpt", 2)
    done = subprocess.run(
        [sys.executable, "-c", ks.PRUNE, str(there), "2"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert sorted(p.name for p in there.iterdir()) == sorted(p.name for p in here.iterdir())
    assert sorted(p.name for p in there.iterdir()) == ["epoch-0002", "epoch-0003", "notes.txt"]
    assert f"latest: {expected.latest}" in done.stdout
    assert Path("/etc").is_dir()  # the link went, never what it points at


def run_verify(
    tmp_path: Path, data: Path, manifest: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """The verify script with its mounts (/dockyard/…) and termination log moved here."""
    (tmp_path / "manifests").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "digits").write_bytes(gzip.compress(json.dumps(manifest).encode()))
    (tmp_path / "manifests" / "..data").mkdir(exist_ok=True)  # as a ConfigMap volume has
    script = (
        ks.VERIFY.replace("/dockyard/manifests", str(tmp_path / "manifests"))
        .replace("/dockyard/steps/data", str(data.parent))
        .replace("/dev/termination-log", str(tmp_path / "termination-log"))
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )


def test_the_verify_script_fails_on_what_the_control_planes_verify_refuses(tmp_path: Path) -> None:
    data = tmp_path / "volume" / "digits"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("a,b\n1,2\n")
    (data / "more.csv").write_text("c\n3\n")
    files = datasets.manifest(Inside(data.parent), "digits")
    assert run_verify(tmp_path, data, files).returncode == 0
    (data / "rows.csv").write_text("a,b\n1,3\n")  # the same size, another content
    os.utime(data / "more.csv", ns=(1, 1))  # only the time moved: its sha256 still matches
    with pytest.raises(ChecksumMismatch, match=r"rows\.csv changed content") as host:
        datasets.verify(Inside(data.parent), "digits", files, "dataset 'digits'")
    done = run_verify(tmp_path, data, files)
    assert done.returncode == 1
    message = (tmp_path / "termination-log").read_text()
    assert "dataset 'digits' changed on its volume" in message
    assert "rows.csv changed content" in message and "more.csv" not in message
    assert "rows.csv changed content" in str(host.value)
    (data / "extra.bin").write_bytes(b"x")
    (data / "more.csv").unlink()
    run_verify(tmp_path, data, files)
    message = (tmp_path / "termination-log").read_text()
    assert "extra.bin added" in message and "more.csv removed" in message


def test_a_pod_carries_its_preconditions_as_init_containers_with_limits() -> None:
    ckpt = VolumeRef("ckpt", "checkpoints/train/g1", "fast")
    data = VolumeRef("datasets", "digits", "standard")
    request = WorkloadRequest(
        id="job-train-0123abcd-g1-a1",
        command=["python", "train.py"],
        mounts=(
            Mount(Path("/v/ckpt/checkpoints/train/g1"), "/checkpoints", False, None, ckpt),
            Mount(Path("/v/datasets/digits"), "/data/digits", True, None, data),
        ),
        labels={"dockyard.dev/job": "train"},
        steps=(
            MakeDirs(((Path("/v/ckpt"), "checkpoints/train/g1"),)),
            PruneCheckpoints((Path("/v/ckpt"), "checkpoints/train/g1"), 2),
            VerifyDatasets((("digits", (Path("/v/datasets"), "digits"), Path("/m.json")),)),
        ),
        manifests={"digits": b'{"rows.csv": {"size": 8, "sha256": "00"}}'},
    )
    assert ks.takes(PruneCheckpoints((Path("/"), ""), 1)) and not ks.takes(UnpackCode("sha256:x"))
    objects = ko.workload_objects(request, ko.ClusterOptions())
    pod = objects.main["spec"]["template"]["spec"]
    inits = {c["name"]: c for c in pod["initContainers"]}
    assert set(inits) == {"prune-checkpoints", "verify-datasets"}
    prune = inits["prune-checkpoints"]
    [mount] = prune["volumeMounts"]
    assert mount["subPath"] == "checkpoints/train/g1" and mount["readOnly"] is False
    verify = inits["verify-datasets"]
    assert {m["mountPath"] for m in verify["volumeMounts"]} == {
        "/dockyard/manifests",
        "/dockyard/steps/data/digits",
    }
    assert all(m.get("readOnly") for m in verify["volumeMounts"])
    for init in inits.values():
        assert init["resources"] == ko.SMALL and init["securityContext"]["runAsNonRoot"]
    [manifests] = [o for o in objects.owned if o["metadata"]["name"].endswith("-manifests")]
    assert gzip.decompress(base64.b64decode(manifests["binaryData"]["digits"])).startswith(b"{")
