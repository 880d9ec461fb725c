"""Write scikit-learn's bundled digits images to $DOCKYARD_OUTPUT_DIR/digits.csv."""

import csv
import os
from pathlib import Path

from sklearn.datasets import load_digits

out = Path(os.environ["DOCKYARD_OUTPUT_DIR"])
digits = load_digits()
with open(out / "digits.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow([f"pixel{i}" for i in range(64)] + ["label"])
    for row, label in zip(digits.data, digits.target, strict=True):
        writer.writerow([int(v) for v in row] + [int(label)])
print(f"wrote {len(digits.target)} images to {out / 'digits.csv'}")
