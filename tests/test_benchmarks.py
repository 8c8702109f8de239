"""Every benchmark runs end to end on tiny inputs (figures meaningless): CI catches a broken
script or a changed API, while the real figures come from ``make bench`` on an idle machine."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run_all import BENCHMARKS  # noqa: E402  (every benchmark run_all runs, from one list)


def test_every_benchmark_writes_its_table_plot_and_rows(tmp_path):
    out = tmp_path / "benchmarks"
    # Two at a time: the smoke runs' figures mean nothing, and the suite's other tests use one core.
    subprocess.run([sys.executable, "bench/run_all.py", "--smoke", "--jobs", "2",
                    "--out", str(out)], cwd=ROOT, check=True, timeout=900)
    rows = {}
    for name in BENCHMARKS:
        assert (out / f"{name}.png").stat().st_size > 5_000, name
        assert "|---|" in (out / f"{name}.md").read_text(), name
        rows[name] = json.loads((out / f"{name}.json").read_text())
        assert rows[name], name
    assert all(0 <= row["test acc."] <= 1 for row in rows["accuracy"])
    assert [row["resamples"] for row in rows["resamples"]] == [2]
    assert 0 <= rows["resamples"][0]["service mean"] <= 1
    assert all(0 <= row["CAWPE tempered"] <= 1 for row in rows["ensemble_rules"])
    assert all(row["ratio"] > 0 for row in rows["serving"] if row.get("ratio") is not None)
    assert all(row["resumed (s)"] > 0 and row["parts"] >= 2 for row in rows["resume"])
    assert all(row["same as local (1)"] and row["same as local (2)"] for row in rows["cluster"])
    page = (tmp_path / "benchmarks.md").read_text()
    assert "Machine:" in page and "(benchmarks/accuracy.png)" in page
