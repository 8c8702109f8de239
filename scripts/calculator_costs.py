"""Measure what each tsfresh calculator costs, for ``automl.feature_cost.CALCULATOR_MS``.

    .venv/bin/python scripts/calculator_costs.py [--series N] [--repeats R]

For every calculator of EfficientFCParameters, the ms per series-channel that the service's
in-process extraction (``TsfreshFeatures``, with this package's faster replacements) spends on
its first parameter alone and on all its parameters: the extraction of that calculator only,
less an extraction of ``length`` only (tsfresh's work per series-channel, also printed).
Averaged over the first N series-channels of GunPoint (150 points), ItalyPowerDemand (24) and
BasicMotions (6 channels x 100) from the aeon wheel; the best of R rounds. Prints a table and
what to paste into ``automl/feature_cost.py``.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions")


def series_channels(n: int) -> dict[str, list[np.ndarray]]:
    from aeon.datasets import load_classification

    found = {}
    for name in DATASETS:
        X, _ = load_classification(name, split="train")
        found[name] = [np.asarray(channel, dtype=np.float64)
                       for series in X for channel in series][:n]
    return found


def long_frame(values: list[np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"id": np.repeat(np.arange(len(values)), [x.size for x in values]),
                         "value": np.concatenate(values)})


def extraction_ms(fc_parameters: dict, frame: pd.DataFrame, repeats: int) -> float:
    """ms per series-channel of the service's in-process extraction of ``fc_parameters``."""
    from automl.features import TsfreshFeatures

    engine = TsfreshFeatures(column_id="id", column_value="value")
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        engine._extract(frame, None, 0, default_fc_parameters=fc_parameters)
        best = min(best, time.perf_counter() - began)
    return 1000 * best / frame["id"].nunique()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40, help="series-channels per data set")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # calculators warn on odd inputs
    from tsfresh.feature_extraction import feature_calculators
    from tsfresh.feature_extraction.settings import EfficientFCParameters

    data = series_channels(args.series)
    frames = {name: long_frame(values) for name, values in data.items()}
    baseline = {name: extraction_ms({"length": None}, frame, args.repeats)
                for name, frame in frames.items()}
    costs = {}
    for name, params in EfficientFCParameters().items():
        if getattr(getattr(feature_calculators, name), "index_type", None) is not None:
            continue  # needs a time index (tsfresh skips it for the service's uploads)
        one = params[:1] if params else params
        costs[name] = tuple(  # never below 0: a cheap calculator can time under the baseline
            max(0.0, float(np.mean([extraction_ms({name: chosen}, frame, args.repeats) - baseline[data_set]
                           for data_set, frame in frames.items()])))
            for chosen in (one, params))
    ranked = sorted(costs.items(), key=lambda item: -item[1][1])
    print(f"{'calculator':58s} {'one param ms':>12s} {'all params ms':>13s}")
    for name, (one, every) in ranked:
        print(f"{name:58s} {one:12.3f} {every:13.3f}")
    print(f"\nefficient, all calculators: {sum(every for _, every in costs.values()):.2f} ms "
          "per series-channel\n\nCALCULATOR_MS = {  # name: (one parameter, every efficient "
          "parameter)")
    for name, (one, every) in ranked:
        if every >= 0.005:
            print(f'    "{name}": ({one:.3f}, {every:.3f}),')
    print("}")
    print(f"TSFRESH_SERIES_MS = {np.mean(list(baseline.values())):.3f}")


if __name__ == "__main__":
    main()
