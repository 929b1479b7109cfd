"""`hydra/sweeper=vectorized`: the basic sweeper's jobs and MLflow records, from one population."""

import io
import json
import logging
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from gatelab.errors import ConfigError
from gatelab.sweeps.members import VALUE_KEYS
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.vectorized.child_writing import Background
from gatelab.sweeps.vectorized.plan import estimate, plan_of
from gatelab.tracking.children import ClientChildStore, SqlChildStore
from gatelab.tracking.store import analyze
from tests.helpers import (
    QUICK,
    SEEDS_BY_RATES,
    all_runs,
    is_pointer,
    runs_of,
    start_train,
    statuses_in_a_copy_of_the_store_file,
    stopped_once_written,
    summary_rows,
)
from tests.helpers import run_train as train

VECTORIZED = "hydra/sweeper=vectorized"
# Each test's store is made already in tmp_path (fixture tracking_uri): no test here is of its
# creation.
pytestmark = pytest.mark.usefixtures("tracking_uri")


def test_the_sweeper_is_a_hydra_plugin_selectable_as_hydra_sweeper_vectorized():
    names = [plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)]
    assert "VectorizedSweeper" in names


def without_tracking(params: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if not key.startswith("tracking.")}


def children_by_job(workdir: Path) -> dict[str, object]:
    _, parents, children = runs_of(workdir)
    assert len(parents) == 1
    return {child.data.tags["hydra.job.num"]: child for child in children}


@pytest.mark.slow
def test_jobs_get_the_runs_a_basic_sweep_gives_them(tmp_path):
    basic_dir, vectorized_dir = tmp_path / "basic", tmp_path / "vectorized"
    basic_dir.mkdir(), vectorized_dir.mkdir()
    assert train(basic_dir, "-m", *SEEDS_BY_RATES, *QUICK).returncode == 0
    result = train(vectorized_dir, "-m", VECTORIZED, *SEEDS_BY_RATES, *QUICK)
    assert result.returncode == 0, result.stderr
    # What the grid costs, said before it trains.
    assert (
        "vectorized sweep: 4 jobs in 1 population(s); the largest holds 36 weights, about 0.0 MB; "
        "logging 4 child runs (SQL bulk writer) takes about 0 s on 2 cores, plus training"
    ) in result.stdout + result.stderr

    basic, vectorized = children_by_job(basic_dir), children_by_job(vectorized_dir)
    assert sorted(vectorized) == sorted(basic) == ["0", "1", "2", "3"]
    solved = set()
    for number, alone in basic.items():
        together = vectorized[number]
        assert together.info.status == "FINISHED"
        assert together.info.run_name == alone.info.run_name
        # The sweep's own defaults (no model or PNG per child, a coarse loss) aside.
        assert without_tracking(together.data.params) == without_tracking(alone.data.params)
        for tag in ("hydra.overrides", "hydra.job.num", "hydra.choices.model"):
            assert together.data.tags[tag] == alone.data.tags[tag]
        # Who ran it and from where, as `mlflow.start_run` tags a job's run (the UI's Source).
        for tag in ("mlflow.user", "mlflow.source.name", "mlflow.source.type"):
            assert together.data.tags[tag] == alone.data.tags[tag]
        assert together.info.user_id == alone.info.user_id
        assert together.data.metrics["loss"] == pytest.approx(alone.data.metrics["loss"], abs=1e-5)
        for metric in ("accuracy", "epochs_to_solve"):
            assert together.data.metrics.get(metric) == alone.data.metrics.get(metric)
        assert together.data.metrics["solved"] == float(alone.data.metrics["accuracy"] == 1.0)
        solved.add(alone.data.metrics["accuracy"] == 1.0)
        artifacts = {
            item.path
            for item in MlflowClient(f"sqlite:///{vectorized_dir / 'mlflow.db'}").list_artifacts(
                together.info.run_id
            )
        }
        assert artifacts == set()  # weights and predictions are tags: see the next lines
        weights = json.loads(together.data.tags["weights"])
        basic_client = MlflowClient(f"sqlite:///{basic_dir / 'mlflow.db'}")
        weights_alone = json.loads(
            Path(
                basic_client.download_artifacts(alone.info.run_id, "weights.json", str(tmp_path))
            ).read_text()
        )
        assert sorted(weights) == sorted(weights_alone) == ["hidden_1", "output"]
        for layer, values in weights_alone.items():
            for name, value in values.items():
                np.testing.assert_allclose(weights[layer][name], value, atol=1e-4)
        predictions = json.loads(together.data.tags["predictions"])
        assert predictions["columns"] == ["inputs", "target", "output"]
        assert len(predictions["data"]) == 4
    assert solved == {True, False}

    # The summary and the job folders are those of a basic sweep; the curves are on the parent.
    basic_rows, vectorized_rows = summary_rows(basic_dir), summary_rows(vectorized_dir)
    for basic_row, vectorized_row in zip(basic_rows, vectorized_rows, strict=True):
        for column in ("job", "overrides", "seed", "accuracy", "epochs_to_solve", "status"):
            assert vectorized_row[column] == basic_row[column]
    (sweep_dir,) = vectorized_dir.glob("multirun/*/*")
    (basic_sweep_dir,) = basic_dir.glob("multirun/*/*")
    for number in range(4):
        ours, theirs = (folder / str(number) / ".hydra" for folder in (sweep_dir, basic_sweep_dir))
        assert (ours / "overrides.yaml").read_text() == (theirs / "overrides.yaml").read_text()
        our_config = yaml.safe_load((ours / "config.yaml").read_text())
        their_config = yaml.safe_load((theirs / "config.yaml").read_text())
        assert our_config.pop("tracking")["log_model"] is False
        their_config.pop("tracking")
        assert our_config == their_config
    _, (parent,), _ = runs_of(vectorized_dir)
    client = MlflowClient(f"sqlite:///{vectorized_dir / 'mlflow.db'}")
    curves = np.load(client.download_artifacts(parent.info.run_id, "losses.npz", str(tmp_path)))
    child = vectorized["3"]
    assert curves[child.info.run_id].shape == (300,)
    history = client.get_metric_history(child.info.run_id, "loss")
    assert [metric.step for metric in history] == list(range(6, 301, 6))
    assert history[-1].value == pytest.approx(float(curves[child.info.run_id][-1]))
    # Every member's weights and outputs, on the parent too: the rows of its run id.
    members = np.load(client.download_artifacts(parent.info.run_id, "members.npz", str(tmp_path)))
    (row,) = np.flatnonzero(members["0/run_ids"] == child.info.run_id)
    tagged = json.loads(child.data.tags["weights"])
    np.testing.assert_array_equal(members["0/hidden_1/kernel"][row], tagged["hidden_1"]["kernel"])
    np.testing.assert_array_equal(members["0/output/bias"][row], tagged["output"]["bias"])
    outputs = [output for *_, output in json.loads(child.data.tags["predictions"])["data"]]
    np.testing.assert_allclose(members["0/output"][row], outputs)
    assert "members.npz" in child.data.tags["arrays"]


@pytest.mark.slow
def test_weights_too_long_for_a_tag_are_in_the_parents_members_file_only(tmp_path):
    # MLflow cuts a tag at 8,000 characters: a 2-256-1 MLP's weights as JSON are longer.
    result = train(tmp_path, "-m", VECTORIZED, "seed=0,1", "model.hidden_units=[256]", *QUICK)
    assert result.returncode == 0, result.stderr
    client, (parent,), children = runs_of(tmp_path)
    members = np.load(client.download_artifacts(parent.info.run_id, "members.npz", str(tmp_path)))
    assert sorted(members["0/run_ids"]) == sorted(child.info.run_id for child in children)
    assert members["0/hidden_1/kernel"].shape == (2, 2, 256)
    assert members["0/output"].shape == (2, 4)
    for child in children:
        assert "weights" not in child.data.tags  # not a JSON cut short
        assert json.loads(child.data.tags["predictions"])["columns"][-1] == "output"
        assert "members.npz" in child.data.tags["arrays"]


@pytest.mark.slow
def test_a_bad_value_fails_its_job_only(tmp_path):
    result = train(tmp_path, "-m", VECTORIZED, "seed=1", "optimizer.learning_rate=0.5,-1", *QUICK)
    assert result.returncode == 2
    # The one line of a basic sweep's failed job: field, value, what is allowed.
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: optimizer.learning_rate=-1.0 is not allowed: a ")
    )
    jobs = children_by_job(tmp_path)
    assert jobs["0"].info.status == "FINISHED"
    assert jobs["1"].info.status == "FAILED"
    assert "learning_rate=-1.0" in jobs["1"].data.tags["error"]
    assert [row["status"] for row in summary_rows(tmp_path)] == ["FINISHED", "FAILED: error"]


@pytest.mark.slow
def test_jobs_the_engine_cannot_train_run_one_by_one(tmp_path):
    # Adam is not in the population engine: those jobs run as with the basic sweeper.
    result = train(
        tmp_path,
        "-m",
        VECTORIZED,
        "optimizer=sgd,adam",
        "seed=1,2",
        *QUICK,
        "tracking.log_model=false",
    )
    assert result.returncode == 0, result.stderr
    assert "run one by one: optimizer Adam" in result.stdout + result.stderr
    jobs = children_by_job(tmp_path)
    assert sorted(jobs) == ["0", "1", "2", "3"]
    assert all(job.info.status == "FINISHED" for job in jobs.values())
    assert [jobs[n].data.tags["hydra.choices.optimizer"] for n in "0123"] == [
        "sgd",
        "sgd",
        "adam",
        "adam",
    ]
    # Adam's own knobs reach its runs' params; SGD's runs have none of them.
    assert [("optimizer.beta_1" in jobs[n].data.params) for n in "0123"] == [
        False,
        False,
        True,
        True,
    ]


@pytest.mark.slow
def test_sigterm_during_training_leaves_no_run_running(tmp_path):
    process = start_train(
        tmp_path, "-m", VECTORIZED, "seed=range(20)", "trainer.epochs=2000000", merge_output=True
    )
    for line in process.stdout:  # Hydra logs to stdout
        if "training 20 members: compiled" in line:
            break  # into the chunks of epochs (2,000,000 in all)
    process.send_signal(signal.SIGTERM)
    stopped = time.perf_counter()
    output, _ = process.communicate(timeout=300)
    assert time.perf_counter() - stopped < 60, output
    assert process.returncode == 128 + signal.SIGTERM, output
    # Stopped before any member finished: no job is recorded, the same command trains them all.
    assert "stopped: 0 of 20 jobs recorded; to finish the rest, run the same command" in output
    client, parents, children = runs_of(tmp_path)
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert children == []


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stopping_a_sweep_while_it_writes_leaves_whole_children_and_none_running(tmp_path, stop):
    # 600 children, 20 a transaction of the SQL bulk writer. Ctrl-C (SIGINT) and a SLURM time
    # limit (SIGTERM) reach every process of the group: signal the whole group.
    command = ["-m", VECTORIZED, "seed=range(600)", *QUICK, "hydra.sweeper.runs_per_transaction=20"]
    # Once the parent and 60 children are written.
    returncode, output, _ = stopped_once_written(tmp_path, command, 61, stop)
    # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them, in one line.
    assert returncode == 128 + stop, output
    assert f"stopped by {stop.name}: the runs this command had open ended KILLED" in output
    client, parents, children = runs_of(tmp_path)
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert 60 <= len(children) < 600 and len(children) % 20 == 0
    assert all(child.info.status != "RUNNING" for child in children), output
    copied = statuses_in_a_copy_of_the_store_file(tmp_path, tmp_path / "copy")
    # Its 600 jobs have an experiment of their own: `gatelab` holds the run pointing to it.
    (pointer,) = [run for run in all_runs(client) if is_pointer(run)]
    assert pointer.info.status == "KILLED"
    assert len(copied) == len(parents) + len(children) + 1 and "RUNNING" not in copied.values()


METRIC_HISTORY_READ = "SELECT * FROM metrics WHERE run_uuid = ? AND key = ?"


def query_plan(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("EXPLAIN QUERY PLAN " + METRIC_HISTORY_READ, ("x", "loss"))
        return " ".join(str(row[-1]) for row in rows)


def test_after_analyze_a_metric_history_read_uses_the_run_index(tmp_path):
    database = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{database}")
    experiment_id = client.create_experiment("analyze")
    for _ in range(30):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(run_id, metrics=[Metric("loss", 0.5, 0, step) for step in range(100)])
    # Without statistics SQLite reads through the primary key's `key` column: every loss row.
    assert "(key=?)" in query_plan(database)
    assert analyze(f"sqlite:///{database}")
    plan = query_plan(database)
    assert "run_uuid=?" in plan and "(key=?)" not in plan
    assert not analyze("postgresql://user@host/db")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_rewritten_on_a_terminal_and_logged_now_and_then_elsewhere(caplog):
    log_file, terminal = io.StringIO(), Terminal()
    caplog.set_level(logging.INFO, logger="gatelab.sweeps.progress")
    in_a_log = Progress(log_file, log_every=3600)
    in_a_log.show("child runs logged: 1/10")  # too soon after the start: not logged
    in_a_log.show("child runs logged: 5/10", force=True)
    Progress(terminal).show("child runs logged: 5/10", force=True)
    # Off a terminal no escape codes, but a log line (a SLURM job is never silent).
    assert log_file.getvalue() == ""
    assert [record.getMessage() for record in caplog.records] == ["child runs logged: 5/10"]
    assert terminal.getvalue().startswith("\r") and "5/10" in terminal.getvalue()


def test_a_grid_past_max_jobs_is_refused_saying_how_long_it_would_log_and_how_to_allow_it():
    overrides = OverridesParser.create().parse_overrides(["seed=range(200000)"])
    with pytest.raises(ConfigError) as refused:
        plan_of(overrides, VALUE_KEYS, max_jobs=100_000)
    assert str(refused.value) == (
        "hydra.sweeper.max_jobs=100,000: this sweep has 200,000 jobs; at about 15 ms a child run "
        "they log for 50 minutes. Sweep fewer values, or allow them with "
        "hydra.sweeper.max_jobs=200000"
    )
    plan = plan_of(overrides, VALUE_KEYS, max_jobs=200_000)
    assert len(plan.jobs) == 200_000 and len(plan.groups) == 1


def test_work_in_the_background_is_waited_for_and_its_error_raised_in_the_waiting_thread():
    written = []

    def write(item: str, done) -> None:
        written.append(item)

    Background(write, "folders").wait()
    assert written == ["folders"]

    def fail(done) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Background(fail).wait()


def test_work_in_the_background_is_waited_for_as_far_as_it_is_needed():
    # The first group's children wait for their own job folders, not the last group's.
    go_on = threading.Event()

    def write(items: list[int], done) -> None:
        for index in range(len(items)):
            if index == 10:
                done(10)
                go_on.wait(timeout=60)
        done(len(items))

    background = Background(write, list(range(20)))
    background.wait(10)  # returns while the rest waits on `go_on`
    assert not background.ended
    go_on.set()
    background.wait()
    assert background.ended and background.count == 20


def test_the_estimate_says_which_writer_logs_the_children_and_at_its_cost(compose_config):
    overrides = OverridesParser.create().parse_overrides(
        ["seed=range(10000)", "optimizer.learning_rate=0.1,0.5"]
    )
    plan = plan_of(overrides, VALUE_KEYS, max_jobs=100_000)
    composed = {
        structural: compose_config("model=mlp", "dataset=xor") for structural in plan.groups
    }
    assert estimate(plan, composed, 0, SqlChildStore("sqlite:///mlflow.db")).endswith(
        "logging 20000 child runs (SQL bulk writer) takes about 40 s on 2 cores, plus training"
    )
    assert estimate(plan, composed, 5000, ClientChildStore("http://127.0.0.1:5000")).endswith(
        "logging 15000 child runs (MLflow client) takes about 225 s on 2 cores, plus training"
    )


@pytest.mark.slow
def test_a_population_too_large_for_memory_is_refused_before_anything_trains(tmp_path):
    # 30 members of a 999,991-parameter model: each fits alone, together they would not.
    result = train(tmp_path, "-m", VECTORIZED, "seed=range(30)", "model.hidden_units=[1000,995]")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "error: hydra/sweeper=vectorized: 30 jobs of a model of 999,991 parameters are "
        "29,999,730 weights in one population, at most 20,000,000; sweep at most 20 jobs of "
        "this model (fewer seeds or values), or a smaller model (model.hidden_units)"
    )
    assert "trained" not in result.stdout + result.stderr
    client, (parent,), jobs = runs_of(tmp_path)
    assert (parent.info.status, jobs) == ("FAILED", [])
    assert parent.data.tags["error"].startswith("ConfigError: hydra/sweeper=vectorized: 30 jobs")
