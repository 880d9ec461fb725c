"""Train a digits classifier epoch by epoch; a retried attempt resumes from its last checkpoint.

Inputs and outputs come from Dockyard:
  $DOCKYARD_DATA_DIGITS        the dataset (read-only in containers)
  $DOCKYARD_CHECKPOINT_DIR     kept across attempts: a checkpoint per epoch (or per
                               $DOCKYARD_CHECKPOINT_EVERY epochs), the newest
                               $DOCKYARD_CHECKPOINT_KEEP kept; the next attempt goes on from
                               the newest complete one
  $DOCKYARD_OUTPUT_DIR         model.joblib and metrics.json, registered after success

Checkpoints follow Dockyard's protocol without importing Dockyard (this runs in a plain
scikit-learn environment): a checkpoint is a directory <name>/ (epoch-0007), complete once the
file <name>/.complete exists. The marker is written last, after the files are on disk, so a
checkpoint cut short by a crash is never loaded. Training is deterministic (fixed seeds; the
random generator's state is saved with the model), so an interrupted and resumed run ends
with exactly the model of an uninterrupted one.

--fail-at-epoch N (or $DOCKYARD_EXAMPLE_FAIL_AT) kills the first attempt while it writes the
checkpoint of epoch N, to see it resume.
"""

import argparse
import json
import os
import shutil
import signal
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MARKER = ".complete"


def complete_checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints, oldest first (names sort: epoch-0009 < epoch-0010)."""
    found = root.glob("epoch-*") if root.is_dir() else []
    return sorted(p for p in found if (p / MARKER).is_file())


def mark_complete(path: Path) -> None:
    """Its files reach the disk first; then the marker appears in one step (os.replace)."""
    for file in [*path.iterdir(), path]:
        fd = os.open(file, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    (path / f"{MARKER}.tmp").write_bytes(b"")
    os.replace(path / f"{MARKER}.tmp", path / MARKER)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument(
    "--fail-at-epoch", type=int, default=int(os.environ.get("DOCKYARD_EXAMPLE_FAIL_AT", "0"))
)
args = parser.parse_args()

data_dir = Path(os.environ["DOCKYARD_DATA_DIGITS"])
out_dir = Path(os.environ["DOCKYARD_OUTPUT_DIR"])
ckpt_dir = Path(os.environ.get("DOCKYARD_CHECKPOINT_DIR", out_dir / "checkpoints"))
every = int(os.environ.get("DOCKYARD_CHECKPOINT_EVERY", "1"))
keep = int(os.environ.get("DOCKYARD_CHECKPOINT_KEEP", "2"))
attempt = int(os.environ.get("DOCKYARD_ATTEMPT", "1"))

table = np.loadtxt(data_dir / "digits.csv", delimiter=",", skiprows=1)
x, y = table[:, :-1], table[:, -1].astype(int)
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.25, random_state=0, stratify=y
)
print(f"attempt {attempt}: {len(y_train)} training images, {args.epochs} epochs")
listed = sorted(p.name for p in ckpt_dir.iterdir()) if ckpt_dir.is_dir() else []
print(f"checkpoint directory holds: {', '.join(listed) or 'nothing'}")

started = time.perf_counter()
done = complete_checkpoints(ckpt_dir)
if done:
    model = joblib.load(done[-1] / "model.joblib")
    state = json.loads((done[-1] / "state.json").read_text())
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    resumed_from = first = state["epoch"]
    print(f"resuming from checkpoint {done[-1].name}: continuing at epoch {first + 1}")
else:
    # The model takes raw pixels (0-16); scaling lives inside the pipeline
    model = make_pipeline(StandardScaler(), SGDClassifier(random_state=args.seed, shuffle=False))
    model[0].fit(x_train)
    rng = np.random.default_rng(args.seed)
    resumed_from, first = None, 0
scaled, classes = model[0].transform(x_train), np.unique(y)

for epoch in range(first + 1, args.epochs + 1):
    order = rng.permutation(len(y_train))  # the same shuffles as an uninterrupted run
    for start in range(0, len(order), args.batch_size):
        batch = order[start : start + args.batch_size]
        model[-1].partial_fit(scaled[batch], y_train[batch], classes=classes)
    if epoch % every and epoch not in (args.epochs, args.fail_at_epoch):
        continue
    path = ckpt_dir / f"epoch-{epoch:04d}"
    path.mkdir(parents=True, exist_ok=True)  # a half-written one of a crash: overwritten
    joblib.dump(model, path / "model.joblib")
    (path / "state.json").write_text(json.dumps({"epoch": epoch, "rng": rng.bit_generator.state}))
    if epoch == args.fail_at_epoch and attempt == 1:
        print(f"epoch {epoch}: killed while writing its checkpoint", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # as an OOM kill or a lost node would
    mark_complete(path)
    for old in complete_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old)
    print(f"epoch {epoch}: checkpoint {path.name}", flush=True)

predicted = model.predict(x_test)
metrics = {
    "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
    "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 4),
    "train_seconds": round(time.perf_counter() - started, 3),
    "train_size": len(y_train),
    "test_size": len(y_test),
    "epochs": args.epochs,
    "resumed_from": resumed_from,
}
joblib.dump(model, out_dir / "model.joblib")
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"accuracy {metrics['accuracy']:.4f}, f1 {metrics['f1_macro']:.4f}")
