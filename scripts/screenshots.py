"""Regenerate the README's two dashboard screenshots, docs/images/dashboard-*.png.

Starts the service as the Procfile does (``tests/servers.py``'s ``GunicornServer``) on a new,
temporary store; trains a quick pipeline on the sample data (GunPoint); starts a short TPOT
search with ``engine: auto``; takes the leaderboard while the search runs (its live progress
shows), waits for the search to end, then takes that pipeline's page (its charts). Nothing is
invented: both pictures show what the service reports for real trainings.

Needs Debian's ``chromium`` (``make test`` installs it) and ``playwright`` (requirements-dev.txt);
about three minutes on 2 cores:

    .venv/bin/python scripts/screenshots.py               # writes docs/images/
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --search-minutes 1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout, and the tests' server helpers
DATA = ROOT / "data"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
QUICK = ("pipeline_id: gunpoint-rf\nextract_features: {default_fc_parameters: minimal}\n"
         "model_training: {model: random_forest, model_args: {n_estimators: 30}, cv: 3}\n")
SEARCH = ("pipeline_id: gunpoint-search\nextract_features: {{engine: auto}}\n"
          "model_training: {{model: tpot, cv: 5, model_args: {{generations: 100, "
          "population_size: 12, max_time_mins: {minutes}, n_jobs: 1, random_state: 0}}}}\n")
WIDTH = 1440


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images",
                        help="where the PNGs go (default: docs/images)")
    parser.add_argument("--search-minutes", type=float, default=1.5,
                        help="the search's budget (default 1.5)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from servers import GunicornServer

    with tempfile.TemporaryDirectory(prefix="automl-screenshots-") as work:
        work = Path(work)
        server = GunicornServer(work / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(work / "models"), "AUTOML_SECRET_KEY": "screenshots",
            "AUTOML_RATE_LIMIT": "off"})
        with server:
            print(f"service at {server.url}; training gunpoint-rf", flush=True)
            trained = requests.post(f"{server.url}/train_model", files=_files(QUICK), timeout=300)
            trained.raise_for_status()
            search = requests.post(
                f"{server.url}/train_model", headers={"Prefer": "respond-async"},
                files=_files(SEARCH.format(minutes=args.search_minutes)), timeout=60)
            search.raise_for_status()
            job_id = search.json()["jobId"]
            print(f"search job {job_id} ({args.search_minutes} min)", flush=True)
            _wait(server.url, job_id, lambda job: (job.get("progress") or {}).get("stage")
                  == "search", 300)
            time.sleep(5)  # a first few pipelines scored
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 800})
                page.goto(f"{server.url}/?sort=auc")
                _shoot(page, args.out / "dashboard-leaderboard.png")
                job = _wait(server.url, job_id, lambda job: job["state"] not in
                            ("queued", "running"), args.search_minutes * 60 + 120)
                print(f"search ended: {job['state']}", flush=True)
                page.goto(f"{server.url}/ui/pipelines/gunpoint-search")
                page.wait_for_selector('svg[data-chart="engines"]')
                _shoot(page, args.out / "dashboard-pipeline.png", height=1900)
                browser.close()


def _files(params: str) -> dict:
    return {"raw_data": (DATA / "data_train.json").read_bytes(),
            "labels": (DATA / "label_train.json").read_bytes(), "params": params.encode()}


def _wait(url: str, job_id: str, done, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", timeout=10).json()
        if done(job) or job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise SystemExit(f"job {job_id} did not get there within {seconds:.0f} s")


def _shoot(page, path: Path, height: int | None = None) -> None:
    page.wait_for_load_state("load")
    full = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": 0, "width": WIDTH, "height": min(full, height or full)})
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)


if __name__ == "__main__":
    main()
