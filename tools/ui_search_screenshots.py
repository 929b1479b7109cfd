"""Screenshots of a search study in `mlflow ui`: its trials as a sweep's children, and its figures.

    python tools/ui_search_screenshots.py                        # a fresh 20-trial study
    python tools/ui_search_screenshots.py --workdir DIR --reuse  # only the browser part

Needs what `tools/ui_screenshots.py` needs (Playwright, Debian's Chromium), whose helpers it
uses. It runs, in `--workdir`, a study of 20 trials x 50 seeds (`hydra/sweeper=search`, TPE,
batches of 10), starts `mlflow ui` on that store and takes, in headless Chromium
(`--workdir`/screenshots/):

  10  the link the study prints: its trials, named by their values (`lr=... momentum=... (trial 3)`)
  11  the Chart view's `success_rate` over the trials
  12  the runs table grouped by `optuna.trial.state`, as a grid sweep's cells group
  13  a trial's run page: params, `success_rate`, its `seeds.csv`
  14  the study's figures: optimisation history, parameter importances, contour, slice
Each step checks the text it expects is on the page and exits 1 if not.
"""

import os
import signal
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_screenshots import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    VIEWPORT,
    close_assistant,
    expect,
    options,
    printed_link,
    shoot,
    show_artifact,
    start_ui,
    train,
)

TRIALS = 20
SEARCH = [
    *("-m", "hydra/sweeper=search", "model=mlp", "dataset=xor", "seed=range(50)"),
    "optimizer.learning_rate=tag(log, interval(0.01, 5))",
    "optimizer.momentum=interval(0, 0.99)",
    f"hydra.sweeper.n_trials={TRIALS}",
    *("hydra.sweeper.batch_size=10", "hydra.sweeper.sampler_seed=0", "trainer.print_every=0"),
]
FIGURES = ["optimization_history.png", "param_importances.png", "contour.png", "slice.png"]


def main() -> None:
    args, workdir, shots = options(__doc__.splitlines()[0], 5056, "gatelab-ui-search-")
    if not args.reuse:
        train(workdir, *SEARCH)

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gatelab")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    study = next(run for run in runs if "optuna.study_name" in run.data.tags)
    trials = [run for run in runs if "optuna.trial.number" in run.data.tags]
    trial = next(run for run in trials if run.data.tags["optuna.trial.number"] == "0")
    base = f"http://127.0.0.1:{args.port}"

    server = start_ui(workdir, args.port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=VIEWPORT)
            SCREENSHOTS[context] = shots
            page: Page = context.new_page()
            page.goto(f"{base}/", timeout=120_000)
            page.get_by_text("Model training", exact=True).first.click()

            page.goto(printed_link(base, experiment.experiment_id, study.info.run_id))
            # The trials, folded under the study's run, which the UI adds to what it shows.
            expect(page, f"{TRIALS + 1} matching runs", study.info.run_name)
            close_assistant(page)
            expander = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'
            page.locator(expander).first.click()
            expect(page, trial.info.run_name)
            shoot(page, "10_study_trials")

            page.locator("label").filter(has=page.locator('input[value="CHART"]')).first.click()
            page.get_by_placeholder("Search metric charts").fill("success_rate")
            expect(page, "success_rate")
            page.wait_for_timeout(3000)
            shoot(page, "11_trials_chart_success_rate")

            page.locator("label").filter(has=page.locator('input[value="TABLE"]')).first.click()
            page.get_by_role("button", name="Group by").first.click()
            page.get_by_text("optuna.trial.state", exact=False).first.click()
            page.keyboard.press("Escape")
            expect(page, "Group: COMP", "Additional runs")
            shoot(page, "12_trials_grouped_by_state")

            page.goto(
                f"{base}/#/experiments/{experiment.experiment_id}/runs/{trial.info.run_id}"
                "?workflowType=machine_learning",
                timeout=120_000,
            )
            expect(page, trial.info.run_name, "optimizer.learning_rate", "success_rate")
            shoot(page, "13a_trial_run_page")
            page.goto(
                f"{base}/#/experiments/{experiment.experiment_id}/runs/{trial.info.run_id}"
                "/artifacts/seeds.csv?workflowType=machine_learning",
                timeout=120_000,
            )
            page.get_by_text("seeds.csv", exact=True).first.click()
            expect(page, "epochs_to_solve")
            shoot(page, "13b_trial_seeds_csv")

            for number, figure in enumerate(FIGURES):
                name = f"14{'abcd'[number]}_study_{figure.removesuffix('.png')}"
                show_artifact(context.new_page(), base, study, figure, name)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
    print(f"screenshots in {shots}")


if __name__ == "__main__":
    main()
