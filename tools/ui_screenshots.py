"""Screenshots of what a new user sees in `mlflow ui` after a sweep and the chapter's presets.

    python tools/ui_screenshots.py                       # runs everything in a fresh folder
    python tools/ui_screenshots.py --workdir DIR --reuse # only the browser part, on DIR's store

Needs Playwright (`pip install -e ".[ui]"`) and Debian's Chromium (`apt-get install chromium`);
Playwright's own browser download is not used. Not part of the test suite: it takes minutes.

It runs, in `--workdir`, the 15-job sweep `seed=range(5) x optimizer.learning_rate=0.1,0.5,2.0`
and the seven `+experiment=` presets, starts `mlflow ui` on that store and, in headless
Chromium, takes the screenshots a user's first steps would show (`--workdir`/screenshots/):

  01  a fresh browser, first click on experiment `gatelab` (MLflow 3.17 opens the view of its
      GenAI / Model training switch, GenAI until the user picks Model training once)
  02  after picking Model training: the first click on the experiment shows the runs table,
      with the Dataset column filled (`xor (digest)`, `and (...)`, ...)
  03  the sweep's parent row expanded: children named by their swept values (`seed=0 lr=0.1`)
  04  the link the sweep prints, opened in a fresh browser: this sweep's parent and jobs only
  05  Chart view, grouped by `optimizer.learning_rate`: `solved` per group (its mean is the
      success rate) and the parent's `success_rate/lr_*` metrics
  06  the parent's artifact `decision_boundaries.png`
  07  a child's artifacts `decision_boundary.png` and `boundary_epochs.png`
Each step checks the text it expects is on the page and exits 1 if not.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "src" / "train.py"
SWEEP = [
    "-m",
    "model=mlp",
    "dataset=xor",
    "seed=range(5)",
    "optimizer.learning_rate=0.1,0.5,2.0",
    "trainer.print_every=0",
]
PRESETS = ["neuron", "neuron_no_bias", "neuron_bias", "and", "or", "xor_perceptron", "xor_mlp"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}


def train(workdir: Path, *arguments: str) -> None:
    environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    environment["PYTHONPATH"] = str(REPO / "src")
    print("python src/train.py", " ".join(arguments), flush=True)
    subprocess.run(
        [sys.executable, str(TRAIN), *arguments],
        cwd=workdir,
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def start_ui(workdir: Path, port: int) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "mlflow", "ui"),
        *("--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"),
        *("--port", str(port), "--workers", "1"),
    ]
    server = subprocess.Popen(
        command,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return server
        except OSError:
            time.sleep(2)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit("mlflow ui did not answer within 300 s")


def expect(page: Page, *texts: str) -> None:
    """Wait until every text is on the page; exit 1 naming the first that never came."""
    for text in texts:
        try:
            page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
        except PlaywrightTimeout:
            shoot(page, "failed")
            raise SystemExit(f"not on the page {page.url}: {text!r}") from None


def shoot(page: Page, name: str) -> None:
    """Save the page as `<shots>/<name>.png`, the folder given to `browse`."""
    page.wait_for_timeout(1500)
    path = SCREENSHOTS[page.context] / f"{name}.png"
    page.screenshot(path=str(path))
    print("screenshot", path, flush=True)


# Where each browser context's screenshots go.
SCREENSHOTS: dict = {}


def close_assistant(page: Page) -> None:
    """The UI's assistant panel covers a third of the page; close it if it is open."""
    heading = page.get_by_text("MLflow Assistant")
    if heading.count():
        page.get_by_role("button", name="Close").last.click()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="use the runs already in --workdir")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="gatelab-ui-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    shots = workdir / "screenshots"
    shots.mkdir(exist_ok=True)
    if not args.reuse:
        train(workdir, *SWEEP)
        for preset in PRESETS:
            train(workdir, f"+experiment={preset}", "trainer.print_every=0")

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gatelab")
    (parent,) = client.search_runs(
        [experiment.experiment_id], "tags.`sweep.params` = 'seed, optimizer.learning_rate'"
    )
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    child = next(run for run in children if run.info.run_name == "seed=0 lr=0.5")
    base = f"http://127.0.0.1:{args.port}"
    experiment_page = f"{base}/#/experiments/{experiment.experiment_id}"
    # What the sweep printed: `tracking.runs_url` for the store's UI at this port.
    sweep_link = (
        f"{experiment_page}/runs?workflowType=machine_learning&searchFilter="
        + urllib.request.quote(f'tags.mlflow.parentRunId = "{parent.info.run_id}"', safe="")
    )

    server = start_ui(workdir, args.port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

            def fresh_page() -> Page:
                context = browser.new_context(viewport=VIEWPORT)
                SCREENSHOTS[context] = shots
                return context.new_page()

            page = fresh_page()
            page.goto(f"{base}/", timeout=120_000)
            page.get_by_role("link", name="gatelab").first.click()
            page.wait_for_url(re.compile(r".*/experiments/\d+/\w+.*workflowType=.*"))
            page.wait_for_timeout(3000)
            print("fresh browser, first click:", page.url)
            shoot(page, "01_fresh_browser_first_click")

            page.goto(f"{base}/", timeout=120_000)
            page.get_by_text("Model training", exact=True).first.click()
            page.get_by_role("link", name="gatelab").first.click()
            expect(page, "Run Name", "Dataset", "xor (", "and (", "custom (", "sweep seed x lr")
            close_assistant(page)
            shoot(page, "02_runs_table_first_click")

            expander = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'
            page.locator(expander).first.click()
            expect(page, "seed=0 lr=0.1", "seed=4 lr=2.0")
            shoot(page, "03_children_named_by_swept_values")

            page = fresh_page()
            page.goto(sweep_link, timeout=120_000)
            expect(page, "16 matching runs", "sweep seed x lr (15 jobs)")
            close_assistant(page)
            # The parent comes with its children, folded under it as in the full table.
            page.locator(expander).first.click()
            expect(page, "seed=2 lr=0.5")
            shoot(page, "04_sweep_link")

            page.get_by_role("button", name="Group by").click()
            page.get_by_placeholder("Search").last.fill("learning_rate")
            page.get_by_text("optimizer.learning_rate", exact=True).first.click()
            page.keyboard.press("Escape")
            page.locator("label").filter(has=page.locator('input[value="CHART"]')).first.click()
            expect(page, "Group: 0.1", "success_rate/lr_0.1")
            shoot(page, "05a_chart_success_rate_by_lr")
            page.get_by_placeholder("Search metric charts").fill("solved")
            expect(page, "solved_jobs")
            shoot(page, "05b_chart_solved_grouped_by_lr")

            artifacts = f"{experiment_page}/runs/{parent.info.run_id}/artifacts"
            view = "?workflowType=machine_learning"
            page.goto(f"{artifacts}/decision_boundaries.png{view}", timeout=120_000)
            expect(page, "decision_boundaries.png")
            page.wait_for_timeout(4000)
            shoot(page, "06_parent_decision_boundaries")

            artifacts = f"{experiment_page}/runs/{child.info.run_id}/artifacts"
            page.goto(f"{artifacts}/decision_boundary.png{view}", timeout=120_000)
            expect(page, "decision_boundary.png", "boundary_epochs.png")
            page.wait_for_timeout(4000)
            shoot(page, "07a_child_decision_boundary")
            page.get_by_text("boundary_epochs.png", exact=True).first.click()
            page.wait_for_timeout(4000)
            shoot(page, "07b_child_boundary_epochs")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
    print(f"screenshots in {shots}")


if __name__ == "__main__":
    main()
