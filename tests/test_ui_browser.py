"""`zoo ui` as a person sees it: headless Chromium renders the runs, their specs and a metric."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RUNS = {"lstm+mel:genre": 0.8125, "cnn+mel+chroma:genre": 0.6875}
METRIC = "test.genre.accuracy"


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip(f"no headless browser: none of {', '.join(BROWSERS)} is on PATH "
                    f"(Debian: apt-get install -y chromium; .ci/run installs it)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(browser: str, url: str, profile: Path, action: str) -> str:
    """Run headless Chromium on ``url`` for ``action`` (--dump-dom, --screenshot=PATH) once the
    page's JavaScript ran (up to 20 s of virtual time); its standard output."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=20000", action, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _render(browser: str, url: str, profile: Path) -> str:
    """The page's text as rendered, tags and scripts removed."""
    page = _chromium(browser, url, profile, "--dump-dom")
    page = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
def ui(tmp_path):
    """A store with two finished runs, served by `zoo ui --background`: (address, experiment id, run ids)."""
    home = tmp_path / "home"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    home.mkdir()
    client = MlflowClient(uri)
    experiment = client.create_experiment("ui-check")
    runs = {}
    for spec, value in RUNS.items():
        run = client.create_run(experiment, run_name=spec, tags={"zoo.spec": spec})
        client.log_metric(run.info.run_id, METRIC, value)
        client.set_terminated(run.info.run_id)
        runs[spec] = run.info.run_id
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "ZOO_HOME": str(home)}
    started = subprocess.run([sys.executable, "-m", "zoo", "ui", "--port", str(port), "--background"],
                             env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int(re.search(r"\(pid (\d+);", started.stdout).group(1))
    try:
        yield f"http://127.0.0.1:{port}", experiment, runs
    finally:
        os.killpg(pid, signal.SIGTERM)


def test_the_ui_shows_both_runs_their_specs_and_a_metric(ui, tmp_path):
    browser = _browser()
    url, experiment, runs = ui
    shot = tmp_path / "runs.png"
    listing = _render(browser, f"{url}/#/experiments/{experiment}/runs", tmp_path / "profile")
    for spec in RUNS:
        assert spec in listing, f"run '{spec}' not in the rendered runs page: {listing[:1500]}"
    assert "2 matching runs" in listing or listing.count("Pin run") >= 2, listing[:1500]
    _chromium(browser, f"{url}/#/experiments/{experiment}/runs", tmp_path / "profile", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot of the runs page"
    for spec, run_id in runs.items():
        page = _render(browser, f"{url}/#/experiments/{experiment}/runs/{run_id}", tmp_path / "profile")
        assert f"zoo.spec : {spec}" in page or ("zoo.spec" in page and spec in page), page[:1500]
        assert METRIC in page and f"{RUNS[spec]}" in page, f"metric {METRIC} not on the page of {spec}: {page[:1500]}"
