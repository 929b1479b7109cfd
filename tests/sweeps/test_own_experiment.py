"""A sweep with an experiment of its own is found from the config's experiment and read there."""

import pytest

from gatelab.sweeps.own_experiment import POINTER_TAG
from tests.helpers import QUICK, SEEDS_BY_RATES, assert_opens_children, runs_of
from tests.helpers import run_train as train


@pytest.mark.slow
def test_a_sweep_of_its_own_experiment_is_named_pointed_to_and_says_how_to_read_it(tmp_path):
    result = train(
        tmp_path,
        *("-m", "hydra/sweeper=vectorized", *SEEDS_BY_RATES, *QUICK),
        "tracking.own_experiment_above=3",
    )
    assert result.returncode == 0, result.stderr
    client, (parent,), _ = runs_of(tmp_path)
    own = client.get_experiment(parent.info.experiment_id)
    # Its name says what was swept and how many jobs.
    assert own.name.startswith("gatelab sweep seed x lr (4 jobs) ")
    output = result.stdout + result.stderr
    assert f"this sweep has an experiment of its own, {own.name!r}" in output
    # Its page says how to read it, and not by grouping the runs a page loaded.
    description = own.tags["mlflow.note.content"]
    assert description.startswith("seed x lr, 4 jobs: ")  # what the experiments list shows
    assert "success_rate" in description and "Group by" in description
    assert f"viewStateShareKey={parent.info.run_id}" in description
    # The config's experiment holds a run pointing to it, ended as the sweep, with its answer.
    base = client.get_experiment_by_name("gatelab")
    (pointer,) = client.search_runs(
        [base.experiment_id], f'tags.`{POINTER_TAG}` = "{parent.info.run_id}"'
    )
    assert pointer.info.status == parent.info.status == "FINISHED"
    note = pointer.data.tags["mlflow.note.content"]
    assert own.name in note and f"viewStateShareKey={parent.info.run_id}" in note
    assert parent.data.tags["mlflow.note.content"] in note  # the answer's table
    # The link printed last opens the cells in the sweep's own experiment.
    assert_opens_children(client, result.stdout.strip().splitlines()[-1], parent)
