"""Sweeps: one MLflow parent per multirun, a child per job, failures kept in their job."""

import shlex
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.helpers import (
    QUICK,
    SEEDS_BY_RATES,
    TRAIN_SCRIPT,
    USER_TAGS,
    assert_opens_children,
    cells_of,
    copy_store,
    runs_of,
    statuses_in_a_copy_of_the_store_file,
    summary_rows,
)
from tests.helpers import run_train as train

# Each test's store is made already in tmp_path (fixture tracking_uri): no test here is of its
# creation.
pytestmark = pytest.mark.usefixtures("tracking_uri")


def rows_with_their_runs(workdir: Path) -> list[tuple[dict[str, str], Run]]:
    """Each summary row with the child run it names; every child has exactly one row."""
    _, _, children = runs_of(workdir)
    children_by_id = {child.info.run_id: child for child in children}
    rows = summary_rows(workdir)
    assert sorted(row["run_id"] for row in rows) == sorted(children_by_id)
    return [(row, children_by_id[row["run_id"]]) for row in rows]


def assert_row_repeats_its_run(row: dict[str, str], child: Run) -> None:
    """A summary row is its child run's name, job number, final metrics and status."""
    assert row["run_name"] == child.info.run_name
    assert row["overrides"] == child.data.tags["hydra.overrides"]
    assert row["job"] == child.data.tags["hydra.job.num"]
    assert row["solved"] == str(int(child.data.metrics["solved"]))
    assert float(row["accuracy"]) == pytest.approx(child.data.metrics["accuracy"], rel=1e-3)
    assert float(row["loss"]) == pytest.approx(child.data.metrics["loss"], rel=1e-5)
    assert row["status"] == child.info.status


def assert_success_rate_is_the_fraction_solved(parent: Run, children: list[Run]) -> None:
    """The parent's `success_rate` is the fraction of its children at accuracy 1.0."""
    solved = [child.data.metrics["accuracy"] == 1.0 for child in children]
    # Some jobs solve and some do not, so a rate stuck at 0 or 1 would not pass.
    assert set(solved) == {True, False}
    assert [child.data.metrics["solved"] for child in children] == [float(s) for s in solved]
    assert parent.data.metrics["success_rate"] == round(sum(solved) / len(solved), 4)
    assert parent.data.metrics["solved_jobs"] == sum(solved)
    assert parent.data.metrics["jobs"] == len(children)
    # Only a solved job has an epochs_to_solve; the parent's median is over those.
    epochs = [child.data.metrics.get("epochs_to_solve") for child in children]
    assert [value is not None for value in epochs] == solved
    solved_epochs = [value for value in epochs if value is not None]
    assert parent.data.metrics["epochs_to_solve_median"] == np.median(solved_epochs)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory, store_template):
    workdir = tmp_path_factory.mktemp("sweep")
    copy_store(store_template, workdir)
    result = train(workdir, "-m", *SEEDS_BY_RATES, *QUICK, USER_TAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


@pytest.mark.slow
def test_a_sweep_is_one_parent_with_a_child_per_job(two_by_two, tmp_path):
    workdir, _ = two_by_two
    client, parents, children = runs_of(workdir)
    (parent,) = parents
    # The store's file alone holds every run, finished: the log was folded in at the end.
    copied = statuses_in_a_copy_of_the_store_file(workdir, tmp_path / "copy")
    assert len(copied) == 1 + 2 + 4 and set(copied.values()) == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.params"] == "seed, optimizer.learning_rate"
    # The command line that reruns the sweep, and the folder its outputs went to.
    command = shlex.split(parent.data.tags["sweep.command"])
    assert command[1:] == [str(TRAIN_SCRIPT), "-m", *SEEDS_BY_RATES, *QUICK, USER_TAGS]
    (sweep_dir,) = workdir.glob("multirun/*/*")
    assert (workdir / parent.data.tags["sweep.dir"]).resolve() == sweep_dir.resolve()
    assert len(children) == 4
    assert {child.data.tags["gatelab.sweep"] for child in children} == {parent.info.run_id}
    assert {child.info.status for child in children} == {"FINISHED"}
    assert_success_rate_is_the_fraction_solved(parent, children)
    # A cell per learning rate, child of the sweep and parent of its seeds.
    cells = cells_of(workdir)
    assert [cell.info.run_name for cell in cells] == ["lr=0.1", "lr=2.0"]
    for cell in cells:
        assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert cell.info.status == "FINISHED"
        rate = cell.info.run_name.removeprefix("lr=")
        seeds = [job for job in children if job.data.params["optimizer.learning_rate"] == rate]
        assert {job.data.tags["mlflow.parentRunId"] for job in seeds} == {cell.info.run_id}
        assert cell.data.params["optimizer.learning_rate"] == rate
        assert cell.data.metrics["jobs"] == 2
        assert cell.data.metrics["success_rate"] == np.mean(
            [job.data.metrics["solved"] for job in seeds]
        )
        artifacts = {artifact.path for artifact in client.list_artifacts(cell.info.run_id)}
        assert artifacts == {"decision_boundaries.png", "loss_band.png"}
    names = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {
        "sweep_summary.csv",
        "loss_curves.png",
        "success_rate_by_optimizer.learning_rate.png",
        "epochs_to_solve.png",
        "decision_boundaries.png",
    } <= names
    # Seeds are repetitions, not a setting to compare; one compared key makes no heatmap.
    assert "success_rate_by_seed.png" not in names
    assert not [name for name in names if "_x_" in name]


@pytest.mark.slow
def test_runs_are_named_by_what_differs_and_tagged_as_the_config_says(two_by_two):
    workdir, _ = two_by_two
    client, (parent,), children = runs_of(workdir)
    assert parent.info.run_name == (
        f"seed x lr (4 jobs) trainer.epochs=300 trainer.print_every=0 {USER_TAGS}"
    )
    assert sorted(child.info.run_name for child in children) == [
        "seed=1 lr=0.1",
        "seed=1 lr=2.0",
        "seed=2 lr=0.1",
        "seed=2 lr=2.0",
    ]
    for child in children:
        # The full overrides stay in a tag.
        seed, rate = (part.split("=")[1] for part in child.info.run_name.split())
        assert child.data.tags["hydra.overrides"] == (
            f"seed={seed} optimizer.learning_rate={rate} trainer.epochs=300 "
            # Hydra escapes the colon in the overrides it gives each job.
            "trainer.print_every=0 tags=[demo,team\\:ml]"
        )
    for run in [parent, *children]:
        assert (run.data.tags["demo"], run.data.tags["team"]) == ("true", "ml")
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.slow
def test_the_parent_logs_fixed_settings_rates_per_cell_and_a_description(two_by_two):
    workdir, result = two_by_two
    client, (parent,), children = runs_of(workdir)
    cells = {cell.info.run_name: cell for cell in cells_of(workdir)}
    # Its params are what every job shares; a swept key is a param of each child instead.
    assert parent.data.params["trainer.epochs"] == "300"
    assert parent.data.params["model.hidden_units"] == "[2]"
    assert "seed" not in parent.data.params
    assert "optimizer.learning_rate" not in parent.data.params
    for rate in ("0.1", "2.0"):
        solved = [
            child.data.metrics["solved"]
            for child in children
            if child.data.params["optimizer.learning_rate"] == rate
        ]
        assert cells[f"lr={rate}"].data.metrics["success_rate"] == np.mean(solved)
        # On the cells, where the Chart view draws them on one axis; not on the parent.
        assert f"success_rate/lr_{rate}" not in parent.data.metrics
    note = parent.data.tags["mlflow.note.content"]
    # The answer first: the success rate of each cell.
    assert note.startswith("**solved ")
    assert "| cell | solved | success rate |" in note
    assert "| lr=2.0 | " in note
    # The console: one line per cell, then the link that opens this sweep's cells.
    output = result.stdout + result.stderr
    assert "success rate per cell:\nlr=0.1: solved " in output
    assert "then open this sweep's cells at" in output
    assert_opens_children(client, output, parent)


@pytest.mark.slow
@pytest.mark.parametrize("sweeper", ["basic", "vectorized"])
def test_a_cell_of_a_value_typed_as_an_int_holds_its_jobs_numbers(tmp_path, sweeper):
    # `lr=2` names the cell as typed; its jobs' param is the configured float, `2.0`.
    arguments = ["-m", "seed=1,2", "optimizer.learning_rate=0.1,2", *QUICK]
    result = train(tmp_path, *arguments, f"hydra/sweeper={sweeper}")
    assert result.returncode == 0, result.stderr
    _, _, children = runs_of(tmp_path)
    cells = {cell.info.run_name: cell for cell in cells_of(tmp_path)}
    assert sorted(cells) == ["lr=0.1", "lr=2"]
    for cell in cells.values():
        jobs = [c for c in children if c.data.tags["mlflow.parentRunId"] == cell.info.run_id]
        assert len(jobs) == 2
        assert cell.info.status == "FINISHED"
        assert cell.data.metrics["jobs"] == 2
        solved = np.mean([job.data.metrics["solved"] for job in jobs])
        assert cell.data.metrics["success_rate"] == solved
    # The seeds that learn XOR at 2.0 in QUICK's epochs (SEEDS_BY_RATES) are counted in `lr=2`.
    assert cells["lr=2"].data.metrics["success_rate"] == 1.0


@pytest.mark.slow
def test_each_job_logs_its_truth_table_and_decision_boundary(two_by_two):
    workdir, _ = two_by_two
    client, _, children = runs_of(workdir)
    for child in children:
        (dataset_input,) = child.inputs.dataset_inputs
        assert dataset_input.dataset.name == "xor"
        assert len(dataset_input.dataset.digest) == 8
        names = {artifact.path for artifact in client.list_artifacts(child.info.run_id)}
        assert {"decision_boundary.png", "boundary_epochs.png", "boundary.npz"} <= names
    # The same digest for the same table, in every job.
    assert len({child.inputs.dataset_inputs[0].dataset.digest for child in children}) == 1


@pytest.mark.slow
def test_the_summary_has_a_row_per_job_and_outputs_sit_under_multirun(two_by_two):
    workdir, result = two_by_two
    rows = summary_rows(workdir)
    assert [row["job"] for row in rows] == ["0", "1", "2", "3"]
    # Results first, the long names and ids last.
    assert list(rows[0])[-3:] == ["run_name", "overrides", "run_id"]
    assert [(row["seed"], row["optimizer.learning_rate"]) for row in rows] == [
        ("1", "0.1"),
        ("1", "2.0"),
        ("2", "0.1"),
        ("2", "2.0"),
    ]
    assert {row["status"] for row in rows} == {"FINISHED"}
    for row, child in rows_with_their_runs(workdir):
        assert_row_repeats_its_run(row, child)
        assert row["seed"] == child.data.params["seed"]
        assert row["optimizer.learning_rate"] == child.data.params["optimizer.learning_rate"]
    (sweep_dir,) = workdir.glob("multirun/*/*")
    assert {path.name for path in sweep_dir.iterdir() if path.is_dir()} == {"0", "1", "2", "3"}
    losses = (sweep_dir / "3" / "loss.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss"
    assert len(losses) == 1 + 300
    assert float(losses[-1].split(",")[1]) == pytest.approx(float(rows[3]["loss"]), rel=1e-5)
    assert "sweep summary (4 jobs)" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_job_gives_the_same_results_alone_as_inside_a_sweep(two_by_two, tmp_path):
    sweep_workdir, _ = two_by_two
    # The last job of the sweep ran after three others in the same process.
    alone = train(tmp_path, "seed=2", "optimizer.learning_rate=2.0", *QUICK)
    assert alone.returncode == 0, alone.stderr[-3000:]

    def loss_history(workdir: Path, name: str) -> list[float]:
        client, _, runs = runs_of(workdir)
        (run,) = [run for run in runs if run.info.run_name == name]
        history = client.get_metric_history(run.info.run_id, "loss")
        return [metric.value for metric in sorted(history, key=lambda metric: metric.step)]

    in_sweep = loss_history(sweep_workdir, "seed=2 lr=2.0")
    assert len(in_sweep) == 300
    # A single run keeps its overrides as its name.
    name = "seed=2 optimizer.learning_rate=2.0 trainer.epochs=300 trainer.print_every=0"
    assert loss_history(tmp_path, name) == in_sweep


@pytest.fixture(scope="module")
def models_by_rates(tmp_path_factory, store_template):
    workdir = tmp_path_factory.mktemp("sweep_models")
    copy_store(store_template, workdir)
    # The MLP learns XOR at 5.0 in QUICK's epochs, not at 0.5; the perceptron never does.
    overrides = ["model=perceptron,mlp", "optimizer.learning_rate=0.5,5.0", *QUICK]
    result = train(workdir, "-m", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_a_swept_config_group_is_a_summary_column_of_its_options(models_by_rates):
    rows = summary_rows(models_by_rates)
    assert [row["model"] for row in rows] == ["perceptron", "perceptron", "mlp", "mlp"]
    for row, child in rows_with_their_runs(models_by_rates):
        assert_row_repeats_its_run(row, child)
        # A group is no param: its value is the option the job chose.
        assert row["model"] == child.data.tags["hydra.choices.model"]
        assert f"model={row['model']}" in child.info.run_name.split()
    # One perceptron cannot learn XOR, whatever its learning rate.
    assert all(float(row["accuracy"]) < 1.0 for row in rows if row["model"] == "perceptron")


@pytest.mark.slow
def test_two_compared_keys_give_a_bar_chart_each_and_a_heatmap(models_by_rates):
    client, (parent,), children = runs_of(models_by_rates)
    assert parent.data.tags["sweep.params"] == "model, optimizer.learning_rate"
    assert_success_rate_is_the_fraction_solved(parent, children)
    names = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {
        "success_rate_by_model.png",
        "success_rate_by_optimizer.learning_rate.png",
        "success_rate_model_x_optimizer.learning_rate.png",
        "loss_curves.png",
    } <= names


@pytest.mark.slow
def test_a_diverging_and_a_raising_job_stay_in_their_job(tmp_path):
    result = train(
        tmp_path,
        "-m",
        "optimizer.learning_rate=0.1,1e6,-1",
        "model.activation=linear",
        "model.output_activation=linear",
        "trainer.epochs=50",
        "trainer.print_every=0",
    )
    assert result.returncode != 0
    assert "error: optimizer.learning_rate=-1.0 is not allowed" in result.stderr
    _, (parent,), children = runs_of(tmp_path)
    by_rate = {child.data.params["optimizer.learning_rate"]: child for child in children}
    assert by_rate["0.1"].info.status == "FINISHED"
    assert by_rate["1000000.0"].info.status == "FAILED"
    assert by_rate["1000000.0"].data.tags["failure_reason"] == "diverged"
    assert by_rate["-1.0"].info.status == "FAILED"
    assert by_rate["-1.0"].data.tags["error"].startswith("ConfigError: optimizer.learning_rate")
    # A job that failed before its run began is named like the others.
    assert [child.info.run_name for child in children if child is by_rate["-1.0"]] == ["lr=-1"]
    assert parent.info.status == "FAILED"
    statuses = [row["status"] for row in summary_rows(tmp_path)]
    assert statuses == ["FINISHED", "FAILED: diverged", "FAILED: error"]


@pytest.mark.slow
def test_two_joblib_workers_on_one_sqlite_store_lose_nothing(tmp_path):
    result = train(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=range(16)",
        "trainer.print_every=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "FINISHED"
    assert len(children) == 16
    assert {child.info.status for child in children} == {"FINISHED"}
    assert {child.data.tags["mlflow.parentRunId"] for child in children} == {parent.info.run_id}
    for child in children:
        # 2000 epochs at tracking.max_loss_points=1000: every second epoch's loss.
        assert len(client.get_metric_history(child.info.run_id, "loss")) == 1000
    assert len(summary_rows(tmp_path)) == 16


def test_jobs_launched_by_submitit_are_children_of_one_parent(tmp_path):
    # submitit_local runs each job as its own process, as submitit_slurm does on a cluster.
    result = train(tmp_path, "-m", "hydra/launcher=submitit_local", "seed=1,2", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    client, (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "FINISHED"
    assert {child.info.status for child in children} == {"FINISHED"}
    assert {child.data.tags["mlflow.parentRunId"] for child in children} == {parent.info.run_id}
    assert sorted(row["seed"] for row in summary_rows(tmp_path)) == ["1", "2"]


def test_a_sweep_that_cannot_open_its_parent_stops_in_one_line_leaving_nothing_running(
    tracking_uri, monkeypatch, capsys
):
    from hydra import compose, initialize_config_dir
    from mlflow.exceptions import MlflowException

    from gatelab.cli import run_reporting_config_errors
    from gatelab.sweeps.callback import SweepCallback
    from tests.helpers import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = compose(
            "config", overrides=[f"tracking.uri={tracking_uri}"], return_hydra_config=True
        )

    def refused(*args, **kwargs):
        raise MlflowException("BAD_REQUEST: the server said no\nand a second line")

    # Hydra would turn an exception of this hook into a warning and launch parentless jobs:
    # the hook stops the whole command instead, and the command line words it.
    monkeypatch.setattr(MlflowClient, "log_batch", refused)
    with pytest.raises(SystemExit) as stopped:
        run_reporting_config_errors(lambda: SweepCallback().on_multirun_start(config))
    assert stopped.value.code == 1
    # (Above it, MLflow's own log lines about creating the store.)
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "error: the sweep did not start: MlflowException: BAD_REQUEST: the server said no"
    )
    assert "Traceback" not in err
    client = MlflowClient(tracking_uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("gatelab").experiment_id])
    assert parent.info.status == "FAILED"
