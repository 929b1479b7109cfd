"""What a new user is shown: each link a sweep prints, opened in a real browser on a fresh
profile with no click, shows the true answer, as the store counts it.

`mlflow ui` runs on the test's store; Debian's Chromium (`/usr/bin/chromium`, installed by
`tools/system_packages.sh`) is driven headless by Playwright, a new browser context (a fresh
profile: no saved view, no expanded rows, no GenAI/Model-training choice) per link. The numbers
read are the bars' values as MLflow draws them (2 decimals) and the runs listed beside them.
"""

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import Browser, Page, sync_playwright

from gatelab.tracking.links import LOCAL_UI_ADDRESS
from tests.helpers import mlflow_server, run_train

CHROMIUM = Path("/usr/bin/chromium")
# The README's 40-job sweep (`trainer.print_every=0` only quietens its console).
README_SWEEP = [
    *("-m", "model=mlp", "dataset=xor", "seed=range(10)"),
    "optimizer.learning_rate=0.05,0.1,0.5,1.0",
    "trainer.print_every=0",
]
TWELVE_RATES = "0.02,0.05,0.1,0.2,0.3,0.5,0.7,1.0,1.5,2,5,10"
# 12 cells x 10 seeds: 120 jobs, past `tracking.own_experiment_above` (100): its own experiment.
GRID_OF_12 = [
    *("-m", "hydra/sweeper=vectorized", "model=mlp", "dataset=xor", "seed=range(10)"),
    f"optimizer.learning_rate={TWELVE_RATES}",
    "trainer.print_every=0",
]
SEARCH = [
    *("-m", "hydra/sweeper=search", "model=mlp", "dataset=xor", "seed=range(8)"),
    "optimizer.learning_rate=tag(log, interval(0.02, 5))",
    *("hydra.sweeper.n_trials=12", "hydra.sweeper.batch_size=6", "hydra.sweeper.sampler_seed=0"),
    *("trainer.epochs=600", "trainer.print_every=0"),
]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run sh tools/system_packages.sh"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
        )
        yield browser
        browser.close()


@contextmanager
def sweep_and_open(
    tmp_path: Path, browser: Browser, arguments: list[str]
) -> Iterator[tuple[MlflowClient, str, Page]]:
    """Run the sweep with `mlflow ui` on its store, open the link it printed last on a fresh
    profile; return the store's client, the link's run id and the page, once it has loaded."""
    with mlflow_server(tmp_path, command="ui") as address:
        result = run_train(tmp_path, *arguments)
        assert result.returncode == 0, result.stderr[-3000:]
        link = result.stdout.strip().splitlines()[-1].rsplit(" at ", 1)[1]
        assert link.startswith(LOCAL_UI_ADDRESS), link
        run_id = re.search(r"viewStateShareKey=([0-9a-f]+)", link)[1]
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(link.replace(LOCAL_UI_ADDRESS, address))
        page.get_by_text(re.compile(r"^[1-9]\d* matching runs$")).wait_for(timeout=60_000)
        page.locator("text.bartext").first.wait_for(timeout=60_000)
        yield MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), run_id, page
        context.close()


def on_screen(page: Page, metric: str) -> tuple[int, list[str], list[float]]:
    """What the page shows: its count of matching runs, the runs listed (top to bottom) and the
    bars of chart `metric` (top to bottom, as drawn: 2 decimals)."""
    matching = page.get_by_text(re.compile(r"^\d+ matching runs$")).inner_text()
    names = page.locator("[role=gridcell] a").all_text_contents()
    card = page.get_by_test_id("experiment-view-compare-runs-card").filter(
        has=page.get_by_text(metric, exact=True)
    )
    # Plotly draws a horizontal bar chart's first bar at the bottom.
    bars = [float(text) for text in card.locator("text.bartext").all_text_contents()][::-1]
    return int(matching.split()[0]), [name.strip() for name in names if name.strip()], bars


def children(client: MlflowClient, run_id: str) -> list:
    experiment_id = client.get_run(run_id).info.experiment_id
    return client.search_runs(
        [experiment_id], f'tags.mlflow.parentRunId = "{run_id}"', max_results=50_000
    )


def counted_by_cell(client: MlflowClient, sweep_id: str) -> dict[str, float]:
    """Each cell's success rate counted from its jobs' runs: solved / jobs."""
    rates = {}
    for cell in children(client, sweep_id):
        jobs = children(client, cell.info.run_id)
        assert jobs
        rates[cell.info.run_name] = sum(job.data.metrics["solved"] for job in jobs) / len(jobs)
    return rates


def assert_shows(page: Page, counted: dict[str, float]) -> None:
    """The page lists every counted run, best first, each with its true rate."""
    matching, names, bars = on_screen(page, "success_rate")
    assert matching == len(counted) == len(names) == len(bars)
    assert sorted(names) == sorted(counted)
    # Best first, and each bar its own run's count, to MLflow's 2 decimals.
    assert bars == sorted(bars, reverse=True)
    shown = dict(zip(names, bars, strict=True))
    assert all(abs(shown[name] - counted[name]) <= 0.005 + 1e-9 for name in names), (shown, counted)


def test_the_readme_sweeps_link_shows_each_cells_true_rate(tmp_path, browser):
    with sweep_and_open(tmp_path, browser, README_SWEEP) as (client, sweep_id, page):
        counted = counted_by_cell(client, sweep_id)
        assert sorted(counted) == ["lr=0.05", "lr=0.1", "lr=0.5", "lr=1.0"]
        assert_shows(page, counted)


def test_a_12_cell_grids_link_shows_every_cell_in_its_own_experiment(tmp_path, browser):
    with sweep_and_open(tmp_path, browser, GRID_OF_12) as (client, sweep_id, page):
        counted = counted_by_cell(client, sweep_id)
        assert len(counted) == 12  # more than MLflow's chart shows by default (10)
        assert_shows(page, counted)
        # The page is the sweep's own experiment, which `gatelab` points to.
        experiment = client.get_experiment(client.get_run(sweep_id).info.experiment_id)
        assert experiment.name.startswith("gatelab sweep seed x lr (120 jobs)")
        assert experiment.name in page.content()


def test_a_searchs_link_shows_every_trials_true_rate_best_first(tmp_path, browser):
    with sweep_and_open(tmp_path, browser, SEARCH) as (client, study_id, page):
        counted = {}
        for trial in children(client, study_id):
            # Counted from the trial's own seeds, a row each in its `seeds.csv`.
            path = client.download_artifacts(trial.info.run_id, "seeds.csv", str(tmp_path))
            rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
            counted[trial.info.run_name] = sum(int(row["solved"]) for row in rows) / len(rows)
        assert len(counted) == 12
        assert_shows(page, counted)
        # The best trial, first on screen, is the study's best.
        best = client.get_run(study_id).data.metrics["best_success_rate"]
        assert abs(on_screen(page, "success_rate")[2][0] - best) <= 0.005 + 1e-9
