"""The dashboard and the API docs in a real browser: headless Chromium (Debian's ``chromium``,
which ``make test`` installs if missing) driven by Playwright's Python package, against
gunicorn started from the Procfile with a trained pipeline and a TPOT search running.

Every page must load without a console error and without a request to any other host; the
leaderboard lists the pipeline, the search plot is drawn, progress is live, the train form
trains, the predict form predicts and downloads, Swagger UI's "try it out" uploads files, and
the cancel button stops the search. With API keys: the sign-in form, the session cookie's
flags and Swagger UI's Authorize button. Screenshots of every page go to the pytest tmp dir.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import requests

import ui_reports
from automl.state import open_state
from servers import GunicornServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As this machine's notes say Chromium runs here: no sandbox (root), no GPU, and nothing
# that reaches for the network by itself. Playwright adds --headless and a new, empty
# --user-data-dir of its own for every launch.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
QUICK = ("extract_features: {default_fc_parameters: minimal}\n"
         "model_training: {model: random_forest, model_args: {n_estimators: 30}, cv: 3}\n")
# Runs for a while (its budget), and is cancelled at the end.
SEARCH = ("pipeline_id: search\nmodel_training: {model: tpot, cv: 3, model_args: "
          "{generations: 100, population_size: 8, max_time_mins: 2, n_jobs: 1}}\n"
          "extract_features: {default_fc_parameters: minimal}\n")
SECRET = "browser-admin-secret-0123456789"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # requirements-dev.txt has it
        pytest.fail("playwright is not installed: pip install -r requirements-dev.txt")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make test` installs it (Debian: apt-get install "
                    "chromium)")
    return sync_playwright


def _store_demo(model_dir: Path, secret: str) -> None:
    """A pipeline record with every field the dashboard draws (a stand-in artifact)."""
    state = open_state({"MODEL_DIR": str(model_dir), "SECRET_KEY": secret})
    state.models.save({"stand-in": True}, ui_reports.full(), "demo", created_by="anonymous")


def _files(params: str, test: bool = False) -> dict:
    if test:
        return {"raw_data": (DATA / "data_test.json").read_bytes(), "params": params.encode()}
    return {"raw_data": (DATA / "data_train.json").read_bytes(),
            "labels": (DATA / "label_train.json").read_bytes(), "params": params.encode()}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """gunicorn with pipeline 'gp' trained, the 'demo' report stored and a search running."""
    root = tmp_path_factory.mktemp("browser")
    secret = "browser-secret"
    server = GunicornServer(root / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(root / "models"), "AUTOML_SECRET_KEY": secret,
        "AUTOML_RATE_LIMIT": "off", "AUTOML_MAX_CONCURRENT_TRAININGS": "2",
        "WEB_CONCURRENCY": "1"})  # one gevent worker serves a browser; quicker to start
    with server:
        trained = requests.post(f"{server.url}/train_model",
                                files=_files("pipeline_id: gp\n" + QUICK), timeout=180)
        assert trained.status_code == 200, trained.text
        _store_demo(root / "models", secret)
        search = requests.post(f"{server.url}/train_model", files=_files(SEARCH),
                               headers={"Prefer": "respond-async"}, timeout=60)
        assert search.status_code == 202, search.text
        server.search_job = search.json()["jobId"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the search reports progress
            job = requests.get(f"{server.url}/jobs/{server.search_job}", timeout=10).json()
            if job["state"] == "running" and job["progress"]:
                break
            time.sleep(0.5)
        yield server
        requests.delete(f"{server.url}/jobs/{server.search_job}", timeout=10)
        assert "Traceback" not in server.log_tail(500_000), server.log_tail()


@pytest.fixture(scope="module")
def browser():
    with _playwright()() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


class Watched:
    """A page with everything it logs and every host it asks, for the asserts."""

    def __init__(self, page, origin: str):
        self.page, self.origin = page, origin
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        page.on("console", lambda m: m.type in ("error", "assert") and
                self.errors.append(f"{m.type}: {m.text} ({page.url})"))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e} ({page.url})"))
        # Aborted: cancelled by the browser (a navigation that became a download, a favicon
        # left behind by the next page), not refused by the service.
        page.on("requestfailed", lambda r: "ERR_ABORTED" in (r.failure or "") or
                self.errors.append(f"failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status < 400 or
                self.errors.append(f"{r.status}: {r.url}"))
        page.on("request", lambda r: r.url.startswith((origin, "data:", "blob:")) or
                self.elsewhere.append(r.url))

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.elsewhere, self.elsewhere


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    watched = Watched(context.new_page(), service.url)
    yield watched
    context.close()
    watched.check()


def _job_state(service, job_id: str) -> str:
    return requests.get(f"{service.url}/jobs/{job_id}", timeout=10).json()["state"]


# -- every page -----------------------------------------------------------------------------------

def test_every_page_loads_without_console_errors(page, service, shots):
    p = page.page
    paths = ["/", "/?sort=accuracy&order=asc", "/ui/pipelines/gp", "/ui/pipelines/demo",
             "/ui/jobs", f"/ui/jobs/{service.search_job}", "/ui/train", "/ui/predict", "/docs"]
    for number, path in enumerate(paths):
        response = p.goto(service.url + path)
        assert response.status == 200, path
        if path == "/docs":
            p.wait_for_selector(".opblock", timeout=30_000)
        p.wait_for_load_state("load")
        name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "leaderboard"
        p.screenshot(path=str(shots / f"{number:02d}-{name}.png"), full_page=True)
    print(f"screenshots: {shots}")
    assert len(list(shots.glob("*.png"))) >= len(paths)


def test_the_leaderboard_lists_the_pipeline_and_sorts(page, service):
    p = page.page
    p.goto(service.url + "/")
    ids = p.locator("#leaderboard tbody tr[data-pipeline]").evaluate_all(
        "rows => rows.map(r => r.dataset.pipeline)")
    assert {"gp", "demo"} <= set(ids)
    gp = p.locator('tr[data-pipeline="gp"]')
    assert "RandomForestClassifier" in gp.inner_text() and "tsfresh" in gp.inner_text()
    p.get_by_role("link", name="CV accuracy").click()
    p.wait_for_url(re.compile(r"sort=accuracy"))
    cells = p.locator("#leaderboard tbody tr[data-pipeline] td:nth-child(4)").all_inner_texts()
    scores = [float(c) for c in cells if re.fullmatch(r"[0-9.]+", c.strip())]
    assert scores == sorted(scores, reverse=True) and len(scores) >= 2
    assert p.locator("#live-jobs").count() == 1  # the running search, on the leaderboard too


def test_the_search_plot_and_the_other_charts_are_drawn(page, service):
    p = page.page
    p.goto(service.url + "/ui/pipelines/demo")
    search = p.locator('svg[data-chart="search"]')
    assert search.bounding_box()["width"] > 400
    assert search.locator('g[id$="-evaluated-points"] use').count() == 117
    assert search.locator('[id$="-baseline"]').count() == 1
    for chart in ("engines", "confusion", "roc", "features"):
        assert p.locator(f'svg[data-chart="{chart}"]').bounding_box()["height"] > 100, chart
    p.goto(service.url + "/ui/pipelines/gp")  # really trained: candidates are recorded
    assert p.locator('svg[data-chart="engines"] [id$="-engine-0"]').count() == 1
    assert "tsfresh" in p.locator("#versions").inner_text()
    assert "current" in p.locator("#versions tr.current").inner_text()


def test_a_running_jobs_progress_is_live_and_readable_without_javascript(page, browser, service):
    p = page.page
    p.goto(f"{service.url}/ui/jobs/{service.search_job}")
    first = p.locator('#live-job [data-field="elapsed"]').inner_text()
    # The script replaces the live part with a fresh copy from the server: the old element
    # (marked here) goes, and the time shown moves on.
    p.evaluate("document.getElementById('live-job').dataset.seen = 'before'")
    p.wait_for_function("first => { const e = document.getElementById('live-job'); return e &&"
                        " !e.dataset.seen && e.querySelector('[data-field=\"elapsed\"]')"
                        ".innerText !== first; }", arg=first, timeout=20_000)
    assert "stage" in p.locator("#live-job").inner_text()
    assert "time left" in p.locator("#live-job").inner_text()
    no_js = browser.new_context(java_script_enabled=False)
    try:
        plain = no_js.new_page()
        plain.goto(f"{service.url}/ui/jobs/{service.search_job}")
        assert plain.locator('noscript').count() >= 1
        assert "running" in plain.locator("#live-job").inner_text()
        assert plain.locator('#live-job [data-field="stage"]').inner_text().strip()
        plain.goto(f"{service.url}/")
        assert plain.locator('tr[data-pipeline="gp"]').count() == 1
    finally:
        no_js.close()


def test_the_train_form_trains(page, service, tmp_path):
    p = page.page
    p.goto(service.url + "/ui/train")
    p.set_input_files("#raw_data", str(DATA / "data_train.json"))
    p.set_input_files("#labels", str(DATA / "label_train.json"))
    p.fill("#params_text", "pipeline_id: from-form\n" + QUICK)
    p.get_by_role("button", name="Train").click()
    p.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]+$"))
    job_id = p.url.rsplit("/", 1)[1]
    assert "queued" in p.locator(".flash").inner_text()
    # The page follows the job by itself until it ends, then shows the outcome.
    p.wait_for_selector("#live-job .state.succeeded", timeout=150_000)
    assert _job_state(service, job_id) == "succeeded"
    p.get_by_role("link", name="See pipeline from-form").click()
    p.wait_for_url(re.compile(r"/ui/pipelines/from-form"))
    p.goto(service.url + "/")
    assert p.locator('tr[data-pipeline="from-form"]').count() == 1


def test_the_predict_form_shows_and_downloads_predictions(page, service, tmp_path):
    p = page.page
    p.goto(service.url + "/ui/predict?pipeline_id=gp")
    p.set_input_files("#raw_data", str(DATA / "data_test.json"))
    p.get_by_role("button", name="Predict", exact=True).click()
    p.wait_for_selector("#predictions")
    assert p.locator("#predictions tbody tr").count() == 150
    p.go_back()
    p.set_input_files("#raw_data", str(DATA / "data_test.json"))
    with p.expect_download() as download:
        p.get_by_role("button", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "series,probability" and len(lines) == 151
    with p.expect_download() as download:
        p.get_by_role("button", name="Download JSON").click()
    scores = json.loads(Path(download.value.path()).read_text())
    expected = requests.post(f"{service.url}/serve_prediction",
                             files=_files("pipeline_id: gp", test=True), timeout=60).json()
    assert scores == expected


def test_swagger_ui_tries_out_a_multipart_upload(page, service, tmp_path):
    p = page.page
    params = tmp_path / "predict.yml"
    params.write_text("pipeline_id: gp\n")
    p.goto(service.url + "/docs#/default/servePrediction")
    block = p.locator("#operations-default-servePrediction")
    block.wait_for(timeout=30_000)
    if not block.locator(".try-out__btn").is_visible():
        block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    inputs = block.locator('input[type="file"]')
    assert inputs.count() == 2
    inputs.nth(0).set_input_files(str(DATA / "data_test.json"))
    inputs.nth(1).set_input_files(str(params))
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status")
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip() == "200"
    assert '"2000"' in block.locator(".live-responses-table .microlight").first.inner_text()


def test_the_cancel_button_stops_the_running_search(page, service):
    p = page.page
    assert _job_state(service, service.search_job) == "running"
    p.goto(f"{service.url}/ui/jobs/{service.search_job}")
    p.locator("#live-job").get_by_role("button", name="Cancel").click()
    assert re.search(r"stopping|cancelled", p.locator(".flash").inner_text())
    p.wait_for_selector("#live-job .state.cancelled", timeout=60_000)
    assert _job_state(service, service.search_job) == "cancelled"


# -- with API keys --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-keys")
    secret = "browser-keys-secret"
    _store_demo(root / "models", secret)
    server = GunicornServer(root / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(root / "models"), "AUTOML_SECRET_KEY": secret,
        "AUTOML_RATE_LIMIT": "off", "WEB_CONCURRENCY": "1", "AUTOML_RUN_JOBS": "false",
        "AUTOML_API_KEYS": json.dumps({"root": {"key": SECRET, "scopes": ["admin"]}})})
    with server:
        yield server


def test_signing_in_with_a_key_and_authorizing_swagger_ui(browser, keyed_service, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page(), keyed_service.url)
    p = watched.page
    try:
        p.goto(keyed_service.url + "/ui/pipelines/demo")
        p.wait_for_url(re.compile(r"/ui/signin\?next="))
        p.screenshot(path=str(shots / "keys-signin.png"))
        p.fill("#key", SECRET)
        p.get_by_role("button", name="Sign in").click()
        p.wait_for_url(re.compile(r"/ui/pipelines/demo$"))
        assert "key root" in p.locator("header .who").inner_text()
        cookie, = [c for c in context.cookies() if c["name"] == "automl_dashboard"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert SECRET not in cookie["value"]
        assert p.locator('svg[data-chart="search"]').count() == 1
        # Swagger UI: the Authorize button takes the key as a bearer token.
        p.goto(keyed_service.url + "/docs#/default/listModels")
        block = p.locator("#operations-default-listModels")
        block.wait_for(timeout=30_000)
        p.locator(".auth-wrapper .authorize").click()
        p.locator(".modal-ux input").fill(SECRET)
        p.locator(".modal-ux .auth-btn-wrapper .authorize").click()
        p.locator(".modal-ux .btn-done").click()
        if not block.locator(".try-out__btn").is_visible():
            block.locator(".opblock-summary").click()
        block.locator(".try-out__btn").click()
        block.locator(".execute").click()
        status = block.locator(".live-responses-table tbody .response-col_status")
        status.wait_for(timeout=30_000)
        assert status.inner_text().strip() == "200"
        assert "demo" in block.locator(".live-responses-table .microlight").first.inner_text()
        # Signing out: the pages ask for the key again.
        p.goto(keyed_service.url + "/")
        p.get_by_role("button", name="Sign out").click()
        p.wait_for_url(re.compile(r"/ui/signin"))
        p.goto(keyed_service.url + "/")
        assert "/ui/signin" in p.url
    finally:
        context.close()
    watched.check()
