"""Checkpoints that resume, on a real server: an attempt killed mid-way goes on where it was.

The digits example's training script (examples/digits/code/train.py) runs as two jobs side by
side: one uninterrupted, one whose first attempt is killed (SIGKILL) while it writes the
checkpoint of epoch 6. The second attempt finds only complete checkpoints, resumes at epoch
6, trains the 5 epochs left, and ends with exactly the uninterrupted model.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

from dockyard.client import Client
from dockyard.data.code import pack
from tests import factories as f
from tests.conftest import ROOT, ServerProcess

EPOCHS, FAIL_AT = 10, 6


@pytest.fixture
def digits_source(tmp_path: Path) -> str:
    """The digits images as examples/digits/code/prepare.py writes them, as a file:// source."""
    source = tmp_path / "digits"
    source.mkdir()
    digits = load_digits()
    with open(source / "digits.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"pixel{i}" for i in range(64)] + ["label"])
        for row, label in zip(digits.data, digits.target, strict=True):
            writer.writerow([int(v) for v in row] + [int(label)])
    return source.as_uri()


def log(c: Client, name: str, attempt: int) -> str:
    return b"".join(c.logs("Job", name, attempt=attempt)).decode()


def train(name: str, code: str, **spec: Any) -> dict[str, Any]:
    return f.job(
        name,
        ["python", "train.py", "--epochs", str(EPOCHS)],
        code=code,
        datasets=[{"name": "digits"}],
        checkpoint={"volume": "ckpt"},
        retry={"limit": 1, "backoffSeconds": 0},
        **spec,
    )


def test_a_killed_training_job_resumes_from_its_last_epoch_with_the_same_result(
    server: ServerProcess, digits_source: str
) -> None:
    c = server.client
    code = c.upload_code(pack(ROOT / "examples" / "digits" / "code"))
    c.apply(
        [
            f.volume("data"),
            f.volume("ckpt"),
            f.dataset("digits", "data", source=digits_source),
            train("whole", code),
        ]
    )
    # the second job once the first one runs: the two never unpack the same code at once
    c.wait("Job", "whole", until={"Running", "Succeeded", "Failed"}, timeout=60)
    c.apply([train("cut", code, env={"DOCKYARD_EXAMPLE_FAIL_AT": str(FAIL_AT)})])
    for name in ("whole", "cut"):
        job = c.wait("Job", name, timeout=120)
        assert job["status"]["phase"] == "Succeeded", (name, job["status"])
    assert c.get("Job", "whole")["status"]["attempts"] == 1, (
        c.workloads("Job", "whole"),
        log(c, "whole", 1),
    )
    first, second = c.workloads("Job", "cut")
    assert (first["phase"], first["reason"]) == ("Failed", "Signaled")
    assert second["phase"] == "Succeeded"

    killed = log(c, "cut", 1)
    assert f"epoch {FAIL_AT - 1}: checkpoint epoch-{FAIL_AT - 1:04d}" in killed
    assert f"epoch {FAIL_AT}: killed while writing its checkpoint" in killed
    resumed = log(c, "cut", 2)
    # the half-written epoch-0006 is gone before attempt 2 starts; the newest 2 are kept
    assert "checkpoint directory holds: epoch-0004, epoch-0005\n" in resumed, resumed
    assert f"resuming from checkpoint epoch-0005: continuing at epoch {FAIL_AT}" in resumed
    trained = [line for line in resumed.splitlines() if ": checkpoint epoch-" in line]
    assert len(trained) == EPOCHS - FAIL_AT + 1 < EPOCHS  # fewer epochs than from scratch
    assert trained[0].startswith(f"epoch {FAIL_AT}:")
    assert "resuming" not in log(c, "whole", 1)

    whole_out = server.home / "outputs" / c.workloads("Job", "whole")[0]["id"]
    cut_out = server.home / "outputs" / second["id"]
    whole = json.loads((whole_out / "metrics.json").read_text())
    cut = json.loads((cut_out / "metrics.json").read_text())
    assert cut["accuracy"] == whole["accuracy"] > 0.9
    assert cut["f1_macro"] == whole["f1_macro"]
    assert (whole["resumed_from"], cut["resumed_from"]) == (None, FAIL_AT - 1)
    assert cut["epochs"] == whole["epochs"] == EPOCHS
    a, b = joblib.load(whole_out / "model.joblib"), joblib.load(cut_out / "model.joblib")
    assert np.array_equal(a[-1].coef_, b[-1].coef_)  # the very same model, bit for bit
    assert np.array_equal(a[-1].intercept_, b[-1].intercept_)


# attempt 1 leaves complete checkpoints, a half-written one, a temporary directory and a link
# to a complete checkpoint outside; attempt 2 reports what it was offered
PLANT = """
import os, sys
d = os.environ['DOCKYARD_CHECKPOINT_DIR']
if os.environ['DOCKYARD_ATTEMPT'] == '1':
    for name in ('a-0001', 'a-0002', 'a-0003', 'a-0004', '.tmp-a-0005-x'):
        os.mkdir(os.path.join(d, name))
        open(os.path.join(d, name, 'w.bin'), 'w').write(name)
        if name < 'a-0004':
            open(os.path.join(d, name, '.complete'), 'w').close()
    os.symlink(sys.argv[1], os.path.join(d, 'a-0009'))
    open(os.path.join(d, 'notes.txt'), 'w').write('mine')
    sys.exit(3)
print('holds', ','.join(sorted(os.listdir(d))))
for key in ('LATEST', 'EVERY', 'KEEP'):
    print(key, os.environ.get('DOCKYARD_CHECKPOINT_' + key))
"""


def test_only_complete_checkpoints_are_offered_to_the_next_attempt(
    server: ServerProcess, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "a-0009"
    outside.mkdir(parents=True)
    (outside / ".complete").write_bytes(b"")
    c = server.client
    c.apply(
        [
            f.volume("ckpt"),
            f.job(
                "planted",
                ["python", "-c", PLANT, str(outside)],
                checkpoint={"volume": "ckpt", "every": 3, "keep": 2},
                retry={"limit": 1, "backoffSeconds": 0},
            ),
        ]
    )
    job = c.wait("Job", "planted", timeout=60)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert log(c, "planted", 2).splitlines() == [
        "holds a-0002,a-0003,notes.txt",  # half-written, temporary, linked and old: gone
        "LATEST a-0003",
        "EVERY 3",
        "KEEP 2",
    ]
    assert sorted(os.listdir(outside)) == [".complete"]  # the link's target is untouched
