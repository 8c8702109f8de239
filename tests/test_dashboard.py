"""The dashboard and the API docs through Flask's test client: pages, charts, forms, sign-in
with API keys, sessions and CSRF. (``test_browser.py`` drives the same pages in Chromium.)"""
from __future__ import annotations

import base64
import html
import io
import json
import re
import xml.etree.ElementTree as ElementTree
import zlib

import pytest

import ui_reports
from automl import auth, create_app, dashboard
from automl.jobs import JobState
from conftest import stored_uploads

SECRETS = {"reader": "reader-secret-0123456789", "trainer": "trainer-secret-0123456789",
           "other": "other-trainer-secret-0123", "root": "root-secret-0123456789ab"}
KEYS = {"reader": {"key": SECRETS["reader"], "scopes": ["predict"]},
        "trainer": {"key": SECRETS["trainer"], "scopes": ["train"]},
        "other": {"key": SECRETS["other"], "scopes": ["train", "predict"]},
        "root": {"key": SECRETS["root"], "scopes": ["admin"]}}
QUICK = ("extract_features: {default_fc_parameters: minimal}\n"
         "model_training: {model: random_forest, model_args: {n_estimators: 30}, cv: 3}\n")


def make_app(tmp_path, keys=None, **settings):
    """An app whose jobs stay queued (no runner): the forms' effects are records to read."""
    return create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "models"),
                       "SECRET_KEY": "test-secret", "RUN_JOBS": False, "RATE_LIMIT": "off",
                       "API_KEYS": json.dumps(keys) if keys else None, **settings})


@pytest.fixture
def open_app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def keys_app(tmp_path):
    return make_app(tmp_path, KEYS)


def store(app, pipeline_id, report, created_by="anonymous"):
    """A pipeline record with ``report`` (its artifact is a stand-in: pages read only reports)."""
    return app.extensions["state"].models.save({"stand-in": True}, report, pipeline_id,
                                               created_by=created_by)


def csrf(client, path="/ui/train") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def upload(name: str, body: bytes | str):
    return io.BytesIO(body.encode() if isinstance(body, str) else body), name


def train_form(sample, token, params_text=QUICK, **extra):
    return {"csrf_token": token, "raw_data": upload("data_train.json", sample["data_train"]),
            "labels": upload("label_train.json", sample["label_train"]),
            "params_text": params_text, **extra}


def sign_in(client, name):
    token = csrf(client, "/ui/signin")
    return client.post("/ui/signin", data={"csrf_token": token, "key": SECRETS[name]})


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def points(svg_text: str, group: str = "evaluated-points") -> int:
    """How many markers the chart's group of points draws."""
    root = ElementTree.fromstring(svg_text)
    found = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
             if g.get("id", "").endswith(f"-{group}")]
    assert len(found) == 1, group
    return len(list(found[0].iter("{http://www.w3.org/2000/svg}use")))


def svg(page: str, chart: str) -> str:
    match = re.search(rf'<svg class="chart" data-chart="{chart}".*?</svg>', page, re.S)
    return match.group(0) if match else ""


# -- the pages, open mode ---------------------------------------------------------------------------

def test_every_page_renders_in_open_mode_with_its_security_headers(open_app):
    store(open_app, "full", ui_reports.full())
    store(open_app, "plain", ui_reports.PLAIN)
    job = open_app.extensions["state"].jobs.create({}, "plain", 60.0, submitted_by="anonymous")
    client = open_app.test_client()
    for path in ("/", "/?sort=accuracy&order=asc", "/ui/pipelines/full", "/ui/pipelines/plain",
                 "/ui/pipelines/full?version=1", "/ui/jobs", f"/ui/jobs/{job.job_id}",
                 "/ui/train", "/ui/predict", "/ui/predict?pipeline_id=plain", "/docs"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html", path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/ui/signin").status_code == 302  # nothing to sign in to


def test_the_leaderboard_lists_every_pipeline_and_sorts_on_the_server(open_app):
    for pid, accuracy, auc in (("a", 0.8, 0.9), ("b", 0.95, 0.7), ("c", None, 0.8)):
        store(open_app, pid, {**ui_reports.PLAIN, "mean_cv_accuracy": accuracy,
                              "mean_cv_roc_auc": auc})
    store(open_app, "full", ui_reports.full())
    client = open_app.test_client()

    def order(query):
        page = client.get(f"/{query}").get_data(as_text=True)
        return re.findall(r'<tr data-pipeline="([^"]+)"', page)

    assert order("") == ["full", "a", "c", "b"]                     # ROC AUC, best first
    assert order("?sort=accuracy") == ["b", "full", "a", "c"]        # missing values last
    assert order("?sort=accuracy&order=asc") == ["a", "full", "b", "c"]
    assert order("?sort=id") == ["a", "b", "c", "full"]
    assert order("?sort=nonsense&order=sideways") == order("")
    page = client.get("/").get_data(as_text=True)
    row = page[page.index('<tr data-pipeline="full"'):].split("</tr>")[0]
    for shown in ("ExtraTreesClassifier", "minirocket", "0.9000", "0.9700", ">60<", ">1<",
                  "120–150", ">3<", "9,996", "final"):
        assert shown in row, shown
    plain = page[page.index('<tr data-pipeline="a"'):].split("</tr>")[0]
    assert plain.count("not recorded") == 2  # channels and length: older reports lack them
    assert 'aria-sort="descending"' in page


def test_a_pipeline_page_draws_the_search_engines_confusion_roc_and_features(open_app):
    report = ui_reports.full(evaluated=120)
    store(open_app, "full", report)
    page = open_app.test_client().get("/ui/pipelines/full").get_data(as_text=True)
    search = svg(page, "search")
    assert points(search) == 117  # every scored pipeline (3 had no score)
    assert 'id="search' in search and "baseline" in search
    engines = svg(page, "engines")
    assert all(f'id="engines' in engines and f"engine-{i}" in engines for i in range(3))
    assert svg(page, "confusion") and svg(page, "roc") and svg(page, "features")
    # Several charts share the page: their ids are unique, and their references stay inside.
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for chart in ("search", "engines", "confusion", "roc", "features"):
        drawn = svg(page, chart)
        for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', drawn):
            assert f'id="{ref}"' in drawn, (chart, ref)
    # Text a client sent (class and feature names) is never markup: drawn as paths, escaped in
    # the JSON report.
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert "not recorded" not in page.split("<h2>Versions")[0].split("Time per stage")[0]
    assert "55.2 s" in page  # stageSeconds
    assert "0.42 ms per series" in page
    # The ensemble served: its members with their weights, temperatures, scores.
    members = page.split("<h3>Ensemble served</h3>")[1].split("</table>")[0]
    assert members.count("<tr>") == 3 and "0.61" in members and "1.4" in members
    assert "ExtraTreesClassifier&lt;i&gt;" in members and "0.974" in members


def test_a_large_uploads_first_model_says_it_was_scored_on_held_out_series(open_app):
    store(open_app, "first", {**ui_reports.full(), "provisional": True,
                              "enginesNarrowed": {"minirocket": 0.89},
                              "heldOut": {"fittedOn": 2000, "scoredOn": 1900},
                              "cvSeries": {"series": 2000, "of": 10000, "sampled": True}})
    store(open_app, "later", {**ui_reports.full(),
                              "cvSeries": {"series": 2000, "of": 10000, "sampled": True}})
    client = open_app.test_client()
    first = client.get("/ui/pipelines/first").get_data(as_text=True).split("<h2>")[0]
    assert "Hold-out score" in first and "on 1900 series outside the 2000" in first
    assert "CV score" not in first and "hold-out accuracy" in first
    page = client.get("/ui/pipelines/first").get_data(as_text=True)
    assert "Given fewer kernels to fit the memory a training may use: minirocket (0.89" in page
    later = client.get("/ui/pipelines/later").get_data(as_text=True).split("<h2>")[0]
    assert "CV score" in later and "sample of 2000 of the 10000 series" in later
    assert "Hold-out" not in later


def test_a_report_without_the_new_fields_says_not_recorded(open_app):
    store(open_app, "plain", ui_reports.PLAIN)
    page = open_app.test_client().get("/ui/pipelines/plain").get_data(as_text=True)
    assert svg(page, "engines")  # candidates are recorded today
    for chart in ("search", "confusion", "roc", "features"):
        assert not svg(page, chart), chart
    assert "No search ran for this pipeline" in page
    for missing in ("The confusion matrix: not recorded", "The ROC curves: not recorded",
                    "Feature importances: not recorded", "The time of each stage: not recorded"):
        assert missing in page, missing
    assert "measurement__" not in page.split("The full report")[0] or "<details>" in page


def test_a_search_without_its_evaluated_pipelines_shows_the_best_per_family(open_app):
    report = ui_reports.full()
    del report["search"]["evaluated"], report["search"]["baselineScore"]
    report["baseline"] = {"cvScore": 0.9}
    store(open_app, "older", report)
    page = open_app.test_client().get("/ui/pipelines/older").get_data(as_text=True)
    assert points(svg(page, "search")) == 2  # ExtraTrees and LogisticRegression: their best
    assert "baseline" in svg(page, "search")


def test_the_versions_table_marks_the_current_version(open_app):
    store(open_app, "p", ui_reports.PLAIN)
    store(open_app, "p", {**ui_reports.PLAIN, "mean_cv_accuracy": 0.99})
    open_app.extensions["state"].models.rollback("p", 1)
    client = open_app.test_client()
    page = client.get("/ui/pipelines/p").get_data(as_text=True)
    table = page[page.index('<table id="versions"'):].split("</table>")[0]
    rows = table.split("<tr")[2:]
    assert "<strong>current</strong>" in rows[0] and "(shown)" in rows[0]
    assert "<strong>current</strong>" not in rows[1]
    assert "version 1 <" in page or "version 1" in page
    assert "(shown)" in client.get("/ui/pipelines/p?version=2").get_data(as_text=True).split(
        '<table id="versions"')[1].split("<tr")[3]
    assert client.get("/ui/pipelines/p?version=7").status_code == 404
    assert client.get("/ui/pipelines/p?version=x").status_code == 400
    missing = client.get("/ui/pipelines/nope")
    assert missing.status_code == 404 and "No pipeline with id" in missing.get_data(as_text=True)
    assert missing.mimetype == "text/html"


# -- forms ------------------------------------------------------------------------------------------

def test_the_train_form_queues_a_job_as_the_api_would(open_app, sample):
    client = open_app.test_client()
    response = client.post("/ui/train", data=train_form(sample, csrf(client),
                                                       "pipeline_id: gp\n" + QUICK),
                           content_type="multipart/form-data")
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job = open_app.extensions["state"].jobs.get(job_id)
    assert (job.state, job.pipeline_id, job.submitted_by) == (JobState.QUEUED, "gp", "anonymous")
    uploads = stored_uploads(open_app.extensions["state"].jobs, job_id)
    assert uploads["params"].payload.decode() == "pipeline_id: gp\n" + QUICK
    assert uploads["raw_data"].payload == sample["data_train"]
    page = client.get(f"/ui/jobs/{job_id}").get_data(as_text=True)
    assert "queued" in page and 'http-equiv="refresh"' in page and "Cancel" in page
    assert "data-live" in page
    # A parameter file instead of the text box.
    response = client.post("/ui/train", data=train_form(
        sample, csrf(client), dashboard.DEFAULT_PARAMS, params=upload("p.yml", QUICK)),
        content_type="multipart/form-data")
    assert response.status_code == 303


def test_cancel_is_a_form_post_and_is_audited(open_app, sample):
    client = open_app.test_client()
    job = open_app.extensions["state"].jobs.create({}, None, 60.0, submitted_by="anonymous")
    token = csrf(client)
    response = client.post(f"/ui/jobs/{job.job_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    assert open_app.extensions["state"].jobs.get(job.job_id).state == JobState.CANCELLED
    events, _ = open_app.extensions["state"].audit.list(10, None)
    assert events[0]["action"] == "cancelled" and job.job_id in events[0]["target"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "cancelled" in page and "Cancel</button>" not in page
    again = client.post(f"/ui/jobs/{job.job_id}/cancel", data={"csrf_token": token})
    assert again.status_code == 409 and "already ended" in again.get_data(as_text=True)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_forms_without_the_sessions_csrf_token_change_nothing(open_app, sample, token):
    client = open_app.test_client()
    csrf(client)  # the session exists and has its token
    job = open_app.extensions["state"].jobs.create({}, None, 60.0, submitted_by="anonymous")
    form = train_form(sample, token)
    if token is None:
        del form["csrf_token"]
    response = client.post("/ui/train", data=form, content_type="multipart/form-data")
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    cancel = client.post(f"/ui/jobs/{job.job_id}/cancel",
                         data={} if token is None else {"csrf_token": token})
    assert cancel.status_code == 400
    jobs, _ = open_app.extensions["state"].jobs.list(10)
    assert [j.job_id for j in jobs] == [job.job_id]
    assert jobs[0].state == JobState.QUEUED
    # Another session's token is no good either.
    other = open_app.test_client()
    stolen = csrf(other)
    assert client.post(f"/ui/jobs/{job.job_id}/cancel",
                       data={"csrf_token": stolen}).status_code == 400


def test_the_train_form_shows_what_is_wrong_and_queues_nothing(open_app, sample):
    client = open_app.test_client()
    for params, message in (("model_training: {model: nonsense}", "model_training.model"),
                            ("a: [unclosed", "params"),
                            ("model_training: {cv: 1}", "model_training.cv")):
        response = client.post("/ui/train", data=train_form(sample, csrf(client), params),
                               content_type="multipart/form-data")
        page = response.get_data(as_text=True)
        assert response.status_code == 400, page
        assert 'class="error"' in page and "<form" in page
        if message:
            assert message in page
    missing = {"csrf_token": csrf(client), "params_text": QUICK,
               "raw_data": upload("d.json", sample["data_train"])}
    response = client.post("/ui/train", data=missing, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose the labels file" in response.get_data(as_text=True)
    both = train_form(sample, csrf(client), "pipeline_id: x\n", params=upload("p.yml", QUICK))
    response = client.post("/ui/train", data=both, content_type="multipart/form-data")
    assert "Give the parameters once" in response.get_data(as_text=True)
    assert open_app.extensions["state"].jobs.list(10)[0] == []


def test_predictions_as_a_table_csv_and_json():
    binary = {"2000": 0.9, "2001": 0.1}
    assert dashboard.predictions_csv(binary) == "series,probability\n2000,0.9\n2001,0.1\n"
    several = {"a": {"cat": 0.7, "dog": 0.3}, "b": {"cat": 0.2, "dog": 0.8}}
    assert dashboard.predictions_csv(several) == "series,cat,dog\na,0.7,0.3\nb,0.2,0.8\n"
    assert dashboard.predictions_table({}) == ([], ["series", "probability"])


def test_the_predict_form_refuses_what_it_cannot_use(open_app, sample):
    store(open_app, "p", ui_reports.PLAIN)
    client = open_app.test_client()
    token = csrf(client, "/ui/predict")
    for form, status, message in (
            ({"pipeline_id": "nope", "raw_data": upload("d.json", sample["data_test"])}, 404,
             "No pipeline with id"),
            ({"pipeline_id": "p", "version": "x"}, 400, "version number"),
            ({"pipeline_id": "p"}, 400, "Choose the series")):
        response = client.post("/ui/predict", data={"csrf_token": token, **form},
                               content_type="multipart/form-data")
        assert response.status_code == status
        assert message in response.get_data(as_text=True)


# -- API keys: signing in, scopes, sessions ------------------------------------------------------------

def test_with_keys_pages_ask_to_sign_in_and_forms_are_refused(keys_app):
    client = keys_app.test_client()
    response = client.get("/ui/pipelines/x?version=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/signin?next=/ui/pipelines/x?version%3D1"
    assert client.get("/docs").status_code == 200  # public, as /openapi.json is
    assert client.post("/ui/train", data={"csrf_token": csrf(client, "/ui/signin")}
                       ).status_code == 401
    page = client.get("/ui/signin").get_data(as_text=True)
    assert 'type="password"' in page


def test_signing_in_keeps_only_the_keys_name_in_a_strict_httponly_cookie(keys_app):
    client = keys_app.test_client()
    token = csrf(client, "/ui/signin")
    wrong = client.post("/ui/signin", data={"csrf_token": token, "key": SECRETS["reader"] + "x"})
    assert wrong.status_code == 401 and "not a valid API key" in wrong.get_data(as_text=True)
    response = client.post("/ui/signin", data={"csrf_token": token, "key": SECRETS["reader"],
                                               "next": "/?sort=id"})
    assert response.status_code == 303 and response.headers["Location"] == "/?sort=id"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{dashboard.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Expires" not in cookie  # a browser-session cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    payload = value.split(".")[1] if value.startswith(".") else value.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = json.loads(zlib.decompress(raw) if value.startswith(".") else raw)
    assert data["key"]["name"] == "reader" and set(data["key"]) == {"name", "tag"}
    assert all(secret not in cookie and secret not in json.dumps(data)
               for secret in SECRETS.values())
    assert "csrf" not in data  # a new session: the old CSRF token is gone
    assert csrf(client, "/") != token
    page = client.get("/").get_data(as_text=True)
    assert "key <strong>reader</strong>" in page and "Sign out" in page
    # The next page is only ever a path of this site.
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = client.post("/ui/signin", data={"csrf_token": csrf(client), "key":
                                                   SECRETS["reader"], "next": target})
        assert response.headers["Location"] == "/"


def test_each_key_acts_with_its_scopes(keys_app, sample):
    state = keys_app.extensions["state"]
    store(keys_app, "p", ui_reports.PLAIN, created_by="other")
    mine = state.jobs.create({}, None, 60.0, submitted_by="trainer")
    theirs = state.jobs.create({}, None, 60.0, submitted_by="other")

    reader = keys_app.test_client()
    sign_in(reader, "reader")
    assert reader.get("/").status_code == 200
    assert reader.get("/ui/pipelines/p").status_code == 200
    assert reader.get("/ui/predict").status_code == 200
    assert reader.get(f"/ui/jobs/{theirs.job_id}").status_code == 200
    refused = reader.get("/ui/train")
    assert refused.status_code == 403 and "lacks the 'train' scope" in text(refused)
    assert reader.post(f"/ui/jobs/{mine.job_id}/cancel",
                       data={"csrf_token": csrf(reader, "/")}).status_code == 403
    nav = reader.get("/").get_data(as_text=True).split("</nav>")[0]
    assert "Leaderboard" in nav and "Train</a>" not in nav

    trainer = keys_app.test_client()
    sign_in(trainer, "trainer")
    assert trainer.get("/").status_code == 403          # train does not imply predict
    jobs_page = trainer.get("/ui/jobs").get_data(as_text=True)
    assert mine.job_id in jobs_page and theirs.job_id not in jobs_page
    assert trainer.get(f"/ui/jobs/{theirs.job_id}").status_code == 403
    token = csrf(trainer)
    assert trainer.post(f"/ui/jobs/{theirs.job_id}/cancel",
                        data={"csrf_token": token}).status_code == 403
    assert state.jobs.get(theirs.job_id).state == JobState.QUEUED
    assert trainer.post(f"/ui/jobs/{mine.job_id}/cancel",
                        data={"csrf_token": token}).status_code == 303
    assert state.jobs.get(mine.job_id).state == JobState.CANCELLED
    # Training another key's pipeline id is refused, as in the API; a new id is the key's.
    refused = trainer.post("/ui/train", data=train_form(sample, token, "pipeline_id: p\n" + QUICK),
                           content_type="multipart/form-data")
    assert refused.status_code == 403 and "belongs to key 'other'" in text(refused)
    queued = trainer.post("/ui/train", data=train_form(sample, token),
                          content_type="multipart/form-data")
    assert queued.status_code == 303
    assert state.jobs.get(queued.headers["Location"].rsplit("/", 1)[1]).submitted_by == "trainer"

    root = keys_app.test_client()
    sign_in(root, "root")
    assert root.get("/ui/train").status_code == 200
    assert theirs.job_id in root.get("/ui/jobs").get_data(as_text=True)
    assert root.post(f"/ui/jobs/{theirs.job_id}/cancel",
                     data={"csrf_token": csrf(root)}).status_code == 303


def test_a_session_ends_when_its_key_changes_or_its_cookie_is_tampered_with(tmp_path, keys_app):
    client = keys_app.test_client()
    sign_in(client, "reader")
    assert client.get("/").status_code == 200
    cookie = client.get_cookie(dashboard.SESSION_COOKIE)
    # The same store, the key "reader" given a new secret: the old session no longer holds.
    rotated = make_app(tmp_path, {**KEYS, "reader": {"key": "reader-new-secret-98765",
                                                     "scopes": ["predict"]}})
    other = rotated.test_client()
    other.set_cookie(dashboard.SESSION_COOKIE, cookie.value)
    assert other.get("/").status_code == 302
    # The same keys on a second instance of the same store: the session holds there too.
    twin = make_app(tmp_path, KEYS).test_client()
    twin.set_cookie(dashboard.SESSION_COOKIE, cookie.value)
    assert twin.get("/").status_code == 200
    # A store with another secret cannot read the cookie at all.
    elsewhere = make_app(tmp_path / "elsewhere", KEYS, SECRET_KEY="another-secret").test_client()
    elsewhere.set_cookie(dashboard.SESSION_COOKIE, cookie.value)
    assert elsewhere.get("/").status_code == 302
    tampered = keys_app.test_client()
    tampered.set_cookie(dashboard.SESSION_COOKIE, cookie.value[:-2] + "xx")
    assert tampered.get("/").status_code == 302
    # A sign-in lasts at most SESSION_HOURS.
    late = keys_app.test_client()
    sign_in(late, "reader")
    with late.session_transaction() as session:
        session["signedInAt"] -= dashboard.SESSION_HOURS * 3600 + 1
    assert late.get("/").status_code == 302
    # Signing out ends it.
    client.post("/ui/signout", data={"csrf_token": csrf(client, "/")})
    assert client.get("/").status_code == 302


def test_the_api_still_wants_its_bearer_header_with_a_dashboard_session(keys_app):
    client = keys_app.test_client()
    sign_in(client, "root")
    assert client.get("/models").status_code == 401  # cookies never authenticate the API
    assert client.get("/models", headers={"Authorization": f"Bearer {SECRETS['root']}"}
                      ).status_code == 200


# -- the docs and the tables ----------------------------------------------------------------------

def test_the_docs_page_and_every_asset_are_served_by_the_app(keys_app):
    client = keys_app.test_client()
    page = client.get("/docs").get_data(as_text=True)
    assert "Authorize" in page  # the hint for keys mode
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert all(a.startswith("/") and not a.startswith("//") for a in links), links
    assets = [a for a in links if a.startswith("/static/")]
    assert len(assets) == 5, assets  # Swagger UI's CSS and bundle, ours, the icon
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js").get_data(as_text=True)
    assert "5.35.0" in client.get("/static/swagger-ui/VENDORED.md").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    js = client.get("/static/ui/docs.js").get_data(as_text=True)
    assert "validatorUrl: null" in js
    spec = client.get("/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert spec["security"] == [{}, {"bearerAuth": []}]
    for template in ("base.html", "docs.html"):
        text = (dashboard.bp.root_path + f"/templates/ui/{template}")
        assert "http://" not in open(text).read() and "https://" not in open(text).read()


def test_every_dashboard_endpoint_has_a_page_rule_and_an_auth_entry(open_app):
    endpoints = {rule.endpoint for rule in open_app.url_map.iter_rules()
                 if rule.endpoint.startswith("ui.")}
    assert endpoints == set(dashboard.PAGE_SCOPES)
    assert all(auth.ENDPOINT_SCOPES[e] == auth.PUBLIC for e in endpoints)


def test_data_shape_falls_back_to_older_fields():
    assert dashboard.data_shape(ui_reports.full()) == {"series": 60, "channels": 1,
                                                       "length": [120, 150], "classes": 3}
    assert dashboard.data_shape(ui_reports.PLAIN) == {"series": 50, "channels": None,
                                                      "length": None, "classes": 2}
    kernels = {**ui_reports.PLAIN, "features": {"engine": "minirocket+tsfresh", "parts": [
        {"engine": "minirocket", "channels": ["x", "y"], "seriesLength": 150}, {}]}}
    assert dashboard.data_shape(kernels)["channels"] == 2
    assert dashboard.data_shape(kernels)["length"] == 150
    assert dashboard.data_shape({}) == dict.fromkeys(("series", "channels", "length", "classes"))


def test_a_running_job_shows_its_progress_and_its_time_as_of_now(open_app):
    jobs = open_app.extensions["state"].jobs
    job = jobs.create({}, "p", 120.0, submitted_by="anonymous")
    jobs.claim("test-runner")
    jobs.report_progress(job.job_id, {"stage": "search", "generation": 2, "generations": 5,
                                      "pipelinesEvaluated": 31, "bestScore": 0.98,
                                      "elapsedSeconds": 0.0, "remainingSeconds": 120.0})
    client = open_app.test_client()
    for path in (f"/ui/jobs/{job.job_id}", "/ui/jobs", "/"):
        page = client.get(path).get_data(as_text=True)
        live = page[page.index('id="live-job'):]
        assert "search" in live and "2 of 5" in live and "0.9800" in live and ">31<" in live
        assert "<progress" in live and 'http-equiv="refresh"' in page
        remaining = re.search(r'data-field="remaining">([^<]+)<', live).group(1)
        assert remaining.startswith(("1 min 59 s", "2 min 00 s", "1 min 58 s")), remaining


def test_a_second_attempt_says_whether_it_took_up_the_first_ones_checkpoint(open_app):
    jobs = open_app.extensions["state"].jobs
    job = jobs.create({}, "p", 120.0, submitted_by="anonymous")
    jobs.claim("lost-runner")
    jobs.report_progress(job.job_id, {"stage": "search", "attempt": 1, "resumed": False})
    assert jobs.requeue(job.job_id, "its runner went away")
    jobs.claim("test-runner")
    client = open_app.test_client()

    def state_line() -> str:
        page = client.get(f"/ui/jobs/{job.job_id}").get_data(as_text=True)
        return re.search(r'class="state-line">(.*?)</div>', page, re.S).group(1)

    assert "(attempt 2)" in state_line()  # the first attempt's progress claims nothing
    jobs.report_progress(job.job_id, {"stage": "features", "attempt": 2, "resumed": False})
    assert "attempt 2, started over: the last one left no checkpoint" in state_line()
    jobs.report_progress(job.job_id, {"stage": "resuming", "attempt": 2, "resumed": True})
    assert "attempt 2, resumed from the last one&#39;s checkpoint)" in state_line()
