"""Train a digits classifier on the mounted dataset; write the model and its metrics.

Inputs and outputs come from Dockyard:
  $DOCKYARD_DATA_DIGITS     the dataset (read-only in containers)
  $DOCKYARD_CHECKPOINT_DIR  survives retries: a finished fit is reused by the next attempt
  $DOCKYARD_OUTPUT_DIR      model.joblib and metrics.json, registered after success
"""

import argparse
import json
import os
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--max-iter", type=int, default=1000)
args = parser.parse_args()

data_dir = Path(os.environ["DOCKYARD_DATA_DIGITS"])
out_dir = Path(os.environ["DOCKYARD_OUTPUT_DIR"])
ckpt_dir = Path(os.environ.get("DOCKYARD_CHECKPOINT_DIR", out_dir))

table = np.loadtxt(data_dir / "digits.csv", delimiter=",", skiprows=1)
x, y = table[:, :-1], table[:, -1].astype(int)
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.25, random_state=0, stratify=y
)
print(f"attempt {os.environ.get('DOCKYARD_ATTEMPT')}: {len(y_train)} training images")

checkpoint = ckpt_dir / "model.joblib"
started = time.perf_counter()
if checkpoint.exists():
    print(f"resuming from checkpoint {checkpoint}")
    model = joblib.load(checkpoint)
else:
    # The model takes raw pixels (0-16); scaling lives inside the pipeline
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=args.max_iter))
    model.fit(x_train, y_train)
    joblib.dump(model, checkpoint)
predicted = model.predict(x_test)
metrics = {
    "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
    "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 4),
    "train_seconds": round(time.perf_counter() - started, 3),
    "train_size": len(y_train),
    "test_size": len(y_test),
}
joblib.dump(model, out_dir / "model.joblib")
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"accuracy {metrics['accuracy']:.4f}, f1 {metrics['f1_macro']:.4f}")
