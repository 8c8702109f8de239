"""How far past ``max_time_mins`` a training job runs, feature extraction included.

Goes through the service's own path (app, job runner, worker process, tsfresh, TPOT) on the
sample data, one job per budget, and prints wall time against budget. Not a test: the figures
depend on the machine. Usage:

    .venv/bin/python bench/budget_overrun.py [budget_minutes ...]     (default: 1 2)
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAMS = """
extract_features: {{default_fc_parameters: efficient}}
model_training:
  model: tpot
  model_args: {{generations: 1000, population_size: 20, max_time_mins: {budget}, random_state: 0}}
"""


def run(budget_mins: float, client) -> dict:
    files = {"raw_data": (ROOT / "data/data_train.json").read_bytes(),
             "labels": (ROOT / "data/label_train.json").read_bytes(),
             "params": PARAMS.format(budget=budget_mins).encode()}
    submitted = time.time()
    answer = client.post("/train_model", content_type="multipart/form-data",
                         headers={"Prefer": "respond-async"},
                         data={k: (io.BytesIO(v), k) for k, v in files.items()})
    job_id = answer.json["jobId"]
    first_servable = None
    while True:
        job = client.get(f"/jobs/{job_id}").json
        if first_servable is None and (job.get("progress") or {}).get("provisionalServed"):
            first_servable = time.time() - submitted
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    started = datetime.fromisoformat(job["startedAt"]).timestamp()
    finished = datetime.fromisoformat(job["finishedAt"]).timestamp()
    result = job["result"] or {}
    return {"budget_s": budget_mins * 60, "state": job["state"], "wall_s": finished - started,
            "first_servable_s": first_servable, "search": result.get("search"),
            "stopped": bool(result.get("stoppedAtBudget")), "model": result.get("modelType", "")}


def main(budgets: list[float]) -> None:
    from automl import create_app

    with tempfile.TemporaryDirectory() as state:
        app = create_app({"MODEL_DIR": state, "SECRET_KEY": "bench"})
        client = app.test_client()
        print(f"machine: {os.cpu_count()} CPUs; data: GunPoint train (50 series x 150), "
              "tsfresh efficient, TPOT linear space")
        print(f"{'budget s':>9} {'wall s':>8} {'overrun s':>10} {'overrun %':>10} "
              f"{'1st model s':>12} {'pipelines':>10}  state / final model")
        for budget in budgets:
            row = run(budget, client)
            overrun = row["wall_s"] - row["budget_s"]
            evaluated = (row["search"] or {}).get("pipelinesEvaluated", "-")
            note = " (stopped at hard deadline)" if row["stopped"] else ""
            print(f"{row['budget_s']:9.0f} {row['wall_s']:8.1f} {overrun:10.1f} "
                  f"{100 * overrun / row['budget_s']:9.1f}% {row['first_servable_s'] or 0:12.1f} "
                  f"{evaluated:>10}  {row['state']}{note} / {row['model'][:40]}", flush=True)
        app.extensions["job_runner"].stop()


if __name__ == "__main__":
    main([float(b) for b in sys.argv[1:]] or [1, 2])
