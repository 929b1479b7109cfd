"""A sweep big enough for an experiment of its own: its name, its page, and the run that points
to it from the experiment it would have been in.

A page of MLflow's runs table is 100 runs, children included: a sweep of thousands of jobs would
page every other run of its experiment out of sight, so it gets one of its own
(`tracking.own_experiment_above`). Its name says what was swept and how many jobs
(`gatelab sweep seed x lr (10000 jobs) 2026-12-07 20-07-15`), its description (shown on the
experiment's page) how to read it, and a run in the first experiment (`gatelab`) points to it, so
that the sweep is found from where every other run is.
"""

import logging
from pathlib import Path

from mlflow.tracking import MlflowClient

from gatelab.config.schemas import MAX_EXPERIMENT_NAME_LENGTH
from gatelab.redaction import redact
from gatelab.tracking.links import children_url, run_url
from gatelab.tracking.naming import sweep_run_name
from gatelab.tracking.statuses import RUNNING

log = logging.getLogger(__name__)

# The tag of the run in the first experiment that points to a sweep's own one: its run id.
POINTER_TAG = "gatelab.sweep_run_id"
DESCRIPTION_TAG = "mlflow.note.content"


def sweep_experiment(
    experiment: str,
    sweep_dir: Path,
    swept: list[str],
    jobs: int | None,
    own_experiment_above: int | None,
) -> str:
    """`experiment`, or for a sweep of more jobs than `own_experiment_above` one of its own,
    named `<experiment> sweep <swept> (<jobs> jobs) <folder's date and time>` (the folder
    makes it unique; `gatelab.runs` finds a sweep's experiment by `<experiment> sweep `)."""
    if own_experiment_above is None or jobs is None or jobs <= own_experiment_above:
        return experiment
    what = sweep_run_name(swept, [], jobs).removeprefix("sweep ")
    # No `/`: the UI's breadcrumb would show only what follows it.
    when = f"{sweep_dir.parent.name} {sweep_dir.name}".replace("/", "-")
    room = MAX_EXPERIMENT_NAME_LENGTH - len(f"{experiment} sweep  {when}")
    return f"{experiment} sweep {what[:room]} {when}"


def describe(
    client: MlflowClient, experiment_id: str, run_id: str, swept: list[str], jobs: int
) -> None:
    """Say on the sweep's own experiment's page how to read it, what was swept first: the
    experiments list shows the first words of it (and of its name)."""
    what = sweep_run_name(swept, [], None).removeprefix("sweep ")
    text = (
        f"{what}, {jobs:,} jobs: one sweep, its run (named after it), a run per cell of its "
        "grid (one per setting, e.g. `lr=0.5`) and, under each cell, a run per job (seed).\n\n"
        "**The answer** (which settings learn) is each cell's `success_rate`, counted over all "
        "its jobs, with its 95% interval (`success_rate_ci_low`, `success_rate_ci_high`): "
        f"[open the cells, a bar each]({children_url(experiment_id, run_id)}), or the sweep "
        "run's description (a table) and its figures.\n\n"
        "Do not *Group by* a param to read it here: the table loads 100 runs a page, and a "
        "grouped chart counts only the jobs loaded, not the cell's."
    )
    client.set_experiment_tag(experiment_id, DESCRIPTION_TAG, text)


def open_pointer(
    client: MlflowClient,
    base_experiment: str,
    own_experiment: str,
    run_id: str,
    tags: dict[str, str],
) -> str:
    """A run in `base_experiment` that points to the sweep `run_id` in `own_experiment`, with
    the sweep's `tags`; return its id. It runs while the sweep does and ends as the sweep's
    runs end. A resumed sweep's pointer runs again."""
    base = client.get_experiment_by_name(base_experiment)
    base_id = base.experiment_id if base else client.create_experiment(base_experiment)
    found = client.search_runs([base_id], f'tags.`{POINTER_TAG}` = "{run_id}"', max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status=RUNNING)
        return found[0].info.run_id
    own_id = client.get_experiment_by_name(own_experiment).experiment_id
    link = children_url(own_id, run_id)
    run_name = client.get_run(run_id).info.run_name
    pointer = client.create_run(
        base_id,
        run_name=redact(f"{run_name}: an experiment of its own"),
        tags={
            **tags,
            POINTER_TAG: run_id,
            DESCRIPTION_TAG: (
                f"This sweep has an experiment of its own, **{own_experiment}**: its answer, "
                f"a bar per cell, at {link}; its run at {run_url(own_id, run_id)}."
            ),
        },
    )
    log.info(
        "this sweep has an experiment of its own, %r; run %r of experiment %r points to it",
        own_experiment,
        pointer.info.run_name,
        base_experiment,
    )
    return pointer.info.run_id


def tell_pointer(client: MlflowClient, pointer_id: str, run_id: str) -> None:
    """Copy the sweep's answer (its run's description: the table of its cells) to its pointer."""
    answer = client.get_run(run_id).data.tags.get(DESCRIPTION_TAG)
    if answer is None:
        return
    text = client.get_run(pointer_id).data.tags.get(DESCRIPTION_TAG, "").split(ANSWER_RULE)[0]
    client.set_tag(pointer_id, DESCRIPTION_TAG, f"{text}{ANSWER_RULE}{answer}")


# Between the pointer's own words and the sweep's answer it copies.
ANSWER_RULE = "\n\n---\n\n"
