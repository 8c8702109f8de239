"""Generate the GunPoint sample data in data/ from the copy bundled with aeon.

Writes data/{data,label}_{train,test}.json in the long format of the
"Deploying AutoML to the Cloud" post (pandas ``DataFrame.to_json()``, default
orient "columns"). Label 1 = Gun-Draw (GunPoint class "1"), 0 = Point ("2").
No network access: aeon reads the files shipped inside its own package.

Usage (from the repo root): .venv/bin/python scripts/make_sample_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
from aeon.datasets import load_classification

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPLITS = {"train": 1000, "test": 2000}  # split -> first example_id
LABEL_MAP = {"1": 1, "2": 0}  # Gun-Draw -> 1, Point -> 0
DECIMALS = 4


def build(split, first_id):
    """Return (long-format data frame, label frame) for one GunPoint split."""
    X, y = load_classification("GunPoint", split=split)
    n_cases, n_channels, length = X.shape
    assert n_channels == 1, X.shape
    ids = np.arange(first_id, first_id + n_cases, dtype=np.int64)
    data = pd.DataFrame({
        "example_id": np.repeat(ids, length),
        "measurement": np.round(X[:, 0, :].astype(np.float64), DECIMALS).ravel(),
    })
    labels = pd.DataFrame({
        "example_id": ids,
        "label": np.array([LABEL_MAP[str(v)] for v in y], dtype=np.int64),
    })
    return data, labels


def main():
    DATA_DIR.mkdir(exist_ok=True)
    for split, first_id in SPLITS.items():
        data, labels = build(split, first_id)
        counts = labels["label"].value_counts().sort_index()
        print(f"{split}: {len(labels)} series x {len(data) // len(labels)} points; "
              + ", ".join(f"label {k}: {v}" for k, v in counts.items()))
        for name, frame in (("data", data), ("label", labels)):
            path = DATA_DIR / f"{name}_{split}.json"
            path.write_text(frame.to_json(), encoding="utf-8")
            print(f"  {path.relative_to(DATA_DIR.parent)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
