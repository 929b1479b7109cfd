"""Screenshots of what a new user sees in `mlflow ui` after the presets, a sweep and a big one.

    python tools/ui_screenshots.py                       # runs everything in a fresh folder
    python tools/ui_screenshots.py --workdir DIR --reuse # only the browser part, on DIR's store

Needs Playwright (`pip install -e ".[ui]"`) and Debian's Chromium (`apt-get install chromium`);
Playwright's own browser download is not used. Not part of the test suite: it takes minutes.

It runs, in `--workdir`, the seven `+experiment=` presets, the README's 40-job sweep
`seed=range(10) x optimizer.learning_rate=0.05,0.1,0.5,1.0` and a 1,000-job vectorized sweep
(`seed=range(250)` x the same rates, in an experiment of its own), starts `mlflow ui` on that
store and, in headless Chromium, takes the screenshots a user's first steps would show
(`--workdir`/screenshots/):

  01  a fresh browser, first click on experiment `gatelab` (MLflow 3.17 opens the view of its
      GenAI / Model training switch, GenAI until the user picks Model training once)
  02  after picking Model training: the runs table's first page, the presets (named by preset)
      and the sweep's parent, with the Dataset column filled
  03  the sweep's parent row expanded: a cell per rate (`lr=0.5`)
  04  the link the 40-job sweep prints: its cells, then the Chart view's `success_rate`
  05  the same for the 1,000-job sweep: the true rates, nothing to load
  06  the parents' `decision_boundaries.png` (every seed of the 10 x 4 grid; a sample of the big
      one) and the big sweep's `loss_curves.png` (a band per cell)
  07  a cell's `decision_boundaries.png` and `loss_band.png`
  08  a job's `decision_boundary.png` and `boundary_epochs.png`
  09  a cell's seed runs, table and Chart view (`loss`), and one seed's run page: the 40-job
      sweep's (each job wrote its own with MLflow's client) and the big sweep's (the SQL bulk
      writer wrote them), to compare
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
RATES = "optimizer.learning_rate=0.05,0.1,0.5,1.0"
SWEEP = ["-m", "model=mlp", "dataset=xor", "seed=range(10)", RATES, "trainer.print_every=0"]
BIG_SWEEP = [
    *("-m", "hydra/sweeper=vectorized", "model=mlp", "dataset=xor", "seed=range(250)", RATES),
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


def printed_link(base: str, experiment_id: str, parent_id: str) -> str:
    """What a sweep prints: `tracking.links.runs_url` for the store's UI at `base`."""
    search = urllib.request.quote(f'tags.mlflow.parentRunId = "{parent_id}"', safe="")
    query = f"workflowType=machine_learning&searchFilter={search}"
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def options(description: str, port: int, prefix: str) -> tuple[argparse.Namespace, Path, Path]:
    """The command line (`--workdir`, `--reuse`, `--port`), the work folder (a new temporary one
    named `prefix...` unless given) and its `screenshots/` folder, both made."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="use the runs already in --workdir")
    parser.add_argument("--port", type=int, default=port)
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix=prefix))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    shots = workdir / "screenshots"
    shots.mkdir(exist_ok=True)
    return args, workdir, shots


def show_artifact(page: Page, base: str, run, artifact: str, name: str) -> None:
    """Open the run's `artifact` in the UI on `page` and take its screenshot `name`.

    `page` should be a page of its own: reached by a change of the address's hash from another
    run's page, the UI can show "No Artifacts Recorded" for a run that has them.
    """
    address = (
        f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        f"/artifacts/{artifact}?workflowType=machine_learning"
    )
    page.goto(address, timeout=120_000)
    expect(page, artifact)
    # The address opens the run's artifacts; the name picks the file shown.
    page.get_by_text(artifact, exact=True).first.click()
    page.wait_for_timeout(4000)
    shoot(page, name)


def main() -> None:
    args, workdir, shots = options(__doc__.splitlines()[0], 5055, "gatelab-ui-")
    if not args.reuse:
        for preset in PRESETS:
            train(workdir, f"+experiment={preset}", "trainer.print_every=0")
        train(workdir, *SWEEP)
        train(workdir, *BIG_SWEEP)

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gatelab")
    (big_experiment,) = [
        found for found in client.search_experiments() if found.name.startswith("gatelab sweep ")
    ]

    def parent_of(experiment_id: str):
        runs = client.search_runs([experiment_id], max_results=5000)
        return next(run for run in runs if "sweep.params" in run.data.tags)

    parent, big_parent = (
        parent_of(experiment.experiment_id),
        parent_of(big_experiment.experiment_id),
    )
    (cell,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and attributes.run_name = 'lr=0.5'",
    )
    (child,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{cell.info.run_id}' and attributes.run_name = 'seed=0 lr=0.5'",
    )
    # The big sweep's children, written by the SQL bulk writer, beside the 40-job sweep's,
    # which each job wrote with MLflow's client.
    (big_cell,) = client.search_runs(
        [big_experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{big_parent.info.run_id}' and attributes.run_name = 'lr=0.5'",
    )
    (big_child,) = client.search_runs(
        [big_experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{big_cell.info.run_id}' "
        "and attributes.run_name = 'seed=0 lr=0.5'",
    )
    base = f"http://127.0.0.1:{args.port}"

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
            page.get_by_role("link", name="gatelab", exact=True).first.click()
            expect(page, "Run Name", "Dataset", "xor (", "neuron_bias", "xor_mlp", "seed x lr (40")
            close_assistant(page)
            shoot(page, "02_runs_table_first_page")

            expander = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'
            page.locator(expander).first.click()
            expect(page, "lr=0.05", "lr=1.0")
            shoot(page, "03_sweep_cells")

            for name, (experiment_id, parent_id) in {
                "04_sweep": (experiment.experiment_id, parent.info.run_id),
                "05_big_sweep": (big_experiment.experiment_id, big_parent.info.run_id),
            }.items():
                page = fresh_page()
                page.goto(printed_link(base, experiment_id, parent_id), timeout=120_000)
                # The four cells, folded under their parent, which the UI adds to what it shows.
                expect(page, "5 matching runs", "seed x lr (40")
                close_assistant(page)
                page.locator(expander).first.click()
                expect(page, "lr=0.05", "lr=1.0")
                shoot(page, f"{name}_cells")
                page.locator("label").filter(has=page.locator('input[value="CHART"]')).first.click()
                page.get_by_placeholder("Search metric charts").fill("success_rate")
                expect(page, "success_rate")
                shoot(page, f"{name}_chart_success_rate")

            for name, (run, jobs) in {
                "09a_client_children": (cell, 10),
                "09b_bulk_children": (big_cell, 250),
            }.items():
                page = fresh_page()
                page.goto(printed_link(base, run.info.experiment_id, run.info.run_id))
                # The seeds, folded under their cell, which the UI adds to what it shows; the
                # UI loads 200 runs a page.
                expect(page, f"{min(jobs, 200) + 1} matching runs", "lr=0.5")
                close_assistant(page)
                page.locator(expander).first.click()
                # Newest first: the last seed heads the table.
                expect(page, f"seed={jobs - 1} lr=0.5", "xor (")
                shoot(page, f"{name}_table")
                page.locator("label").filter(has=page.locator('input[value="CHART"]')).first.click()
                page.get_by_placeholder("Search metric charts").fill("loss")
                expect(page, "loss", "Step")
                page.wait_for_timeout(3000)
                shoot(page, f"{name}_chart_loss")
            for name, run in {"09c_client_child": child, "09d_bulk_child": big_child}.items():
                page.goto(
                    f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
                    "?workflowType=machine_learning",
                    timeout=120_000,
                )
                expect(page, "seed=0 lr=0.5", "optimizer.learning_rate", "epochs_to_solve")
                page.wait_for_timeout(2000)
                shoot(page, name)

            artifacts = {
                "06a_parent_decision_boundaries": (parent, "decision_boundaries.png"),
                "06b_big_parent_decision_boundaries": (big_parent, "decision_boundaries.png"),
                "06c_big_parent_loss_curves": (big_parent, "loss_curves.png"),
                "07a_cell_decision_boundaries": (cell, "decision_boundaries.png"),
                "07b_cell_loss_band": (cell, "loss_band.png"),
                "08a_job_decision_boundary": (child, "decision_boundary.png"),
                "08b_job_boundary_epochs": (child, "boundary_epochs.png"),
            }
            for name, (run, artifact) in artifacts.items():
                show_artifact(fresh_page(), base, run, artifact, name)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
    print(f"screenshots in {shots}")


if __name__ == "__main__":
    main()
