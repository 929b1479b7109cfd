"""A vectorized sweep's job is recorded as the run the same job logs alone (one definition)."""

import signal
import threading
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from gatelab import pipeline, stopping
from gatelab.sweeps.members import SWEEP_DEFAULTS
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.vectorized import child_writing, population
from gatelab.sweeps.vectorized.child_writing import Recorded
from gatelab.sweeps.vectorized.population import MemberJob, run_population
from gatelab.tracking import bulk, children, records

SWEPT = ["seed", "optimizer.learning_rate"]
CHOICES = {"dataset": "xor", "model": "mlp", "optimizer": "sgd", "trainer": "default"}
# As a vectorized sweep sets them: no model or PNG per child, a coarse loss metric.
AS_IN_A_SWEEP = [f"tracking.{key.split('.')[1]}={value}" for key, value in SWEEP_DEFAULTS.items()]


def job(number: int, overrides: list[str], output_dir: Path) -> records.Job:
    return records.Job(
        overrides=overrides,
        choices=CHOICES,
        output_dir=output_dir,
        number=number,
        swept=SWEPT,
    )


def per_job_record(compose_config, tracking_uri, monkeypatch, the_job) -> records.RunRecord:
    """The record `pipeline.run` logs for `the_job`, as a job of a per-job sweep."""
    logged = []
    log_results = pipeline.log_results

    def keep(record, *args, **kwargs):
        logged.append(record)
        return log_results(record, *args, **kwargs)

    monkeypatch.setattr(pipeline, "log_results", keep)
    cfg = compose_config(*the_job.overrides, *AS_IN_A_SWEEP, "trainer.print_every=0")
    pipeline.run(cfg, the_job)
    (record,) = logged
    return record


def vectorized_records(
    compose_config, monkeypatch, jobs, values, before_writing=lambda run_records: None
) -> list[records.RunRecord]:
    """The records a vectorized sweep writes for `jobs` (with their swept `values`); each
    `write_all` of the store calls `before_writing` first."""
    written = []

    class Kept(children.ClientChildStore):
        """Keeps the records it is given, as runs `run-<job number>`."""

        def write_all(self, experiment_id, run_records, *, on_written, batch, cancel=None):
            before_writing(run_records)
            written.extend(run_records)
            run_ids = {record.job_number: f"run-{record.job_number}" for record in run_records}
            on_written(run_ids)
            return run_ids

    monkeypatch.setattr(population.children, "child_store", lambda uri=None: Kept("kept"))
    cfg = compose_config(*AS_IN_A_SWEEP, "trainer.print_every=0", "trainer.epochs=300")
    members = [MemberJob(job, job_values) for job, job_values in zip(jobs, values, strict=True)]
    recorded = Recorded()
    outcomes = run_population(cfg, members, Progress(), recorded)
    losses, boundaries = recorded.arrays.losses, recorded.arrays.boundaries
    assert (recorded.trained, recorded.written) == (len(jobs), len(jobs))
    # The trained members' boundaries, computed from their weights, for the galleries.
    assert sorted(boundaries) == sorted(losses)
    assert boundaries["run-0"]["outputs"].shape == (81, 81)
    trained = [f"run-{outcome.job.number}" for outcome in outcomes if outcome.error is None]
    assert sorted(losses) == sorted(trained)
    assert [outcome.job for outcome in outcomes] == jobs
    return sorted(written, key=lambda record: record.job_number)


def seeds_in_folders(folder: Path, count: int) -> list[MemberJob]:
    """Jobs `seed=0..count-1` at learning rate 0.5, each with its folder in `folder`."""
    members = []
    for number in range(count):
        (folder / str(number)).mkdir()
        overrides = [f"seed={number}", "optimizer.learning_rate=0.5"]
        values = {"seed": number, "optimizer.learning_rate": 0.5}
        members.append(MemberJob(job(number, overrides, folder / str(number)), values))
    return members


def assert_same_record(together: records.RunRecord, alone: records.RunRecord) -> None:
    numbers = ("outcome", "loss_points", "weights", "predictions")
    # A member's times are its share of the population's training; a run alone's, its own.
    times = ("start_time", "end_time")
    assert together.start_time < together.end_time and alone.start_time is None
    # A member's arrays are in its parent's members.npz too (a run alone's, its artifacts).
    together_tags = dict(together.tags)
    assert "members.npz" in together_tags.pop("arrays") and "arrays" not in alone.tags
    assert together_tags == alone.tags
    # Its page says where those arrays are and how to re-run it alone (a run alone has them).
    assert "gatelab.runs rerun" in together.description and alone.description is None
    fields = (
        set(together.__dataclass_fields__) - set(numbers) - set(times) - {"tags", "description"}
    )
    for field in fields:
        assert getattr(together, field) == getattr(alone, field), field
    assert together.outcome == pytest.approx(alone.outcome)
    assert [step for step, _ in together.loss_points] == [step for step, _ in alone.loss_points]
    together_losses = [loss for _, loss in together.loss_points]
    assert together_losses == pytest.approx([loss for _, loss in alone.loss_points], rel=1e-5)
    assert together.predictions.keys() == alone.predictions.keys()
    for column, values in together.predictions.items():
        np.testing.assert_allclose(values, alone.predictions[column], rtol=1e-5)
    assert together.weights.keys() == alone.weights.keys()
    for layer, weights in together.weights.items():
        assert weights.keys() == alone.weights[layer].keys()
        for name, value in weights.items():
            np.testing.assert_allclose(value, alone.weights[layer][name], rtol=1e-4, atol=1e-6)


def test_a_vectorized_child_is_the_record_its_job_logs_alone(
    compose_config, tracking_uri, tmp_path, monkeypatch
):
    jobs = [
        job(0, ["seed=3", "optimizer.learning_rate=0.5", "trainer.epochs=300"], tmp_path / "0"),
        job(1, ["seed=1", "optimizer.learning_rate=2.0", "trainer.epochs=300"], tmp_path / "1"),
        # Refused before training: its FAILED record, with the error.
        job(2, ["seed=1", "optimizer.learning_rate=-1", "trainer.epochs=300"], tmp_path / "2"),
    ]
    values = [
        {"seed": 3, "optimizer.learning_rate": 0.5},
        {"seed": 1, "optimizer.learning_rate": 2.0},
        {"seed": 1, "optimizer.learning_rate": -1},
    ]
    for the_job in jobs:
        the_job.output_dir.mkdir()
    together = vectorized_records(compose_config, monkeypatch, jobs, values)
    assert [record.job_number for record in together] == [0, 1, 2]
    for record, the_job in zip(together[:2], jobs[:2], strict=True):
        alone = per_job_record(compose_config, tracking_uri, monkeypatch, the_job)
        assert record.name == f"seed={the_job.overrides[0][5:]} lr={the_job.overrides[1][24:]}"
        assert_same_record(record, alone)
    failed = together[2]
    assert failed.status == "FAILED"
    assert failed.result_tags["error"].startswith("ConfigError: optimizer.learning_rate=-1")
    assert failed.tags == records.record_tags(jobs[2], {})
    assert failed.tags["mlflow.user"] == records.context_tags()["mlflow.user"]
    assert failed.params["optimizer.learning_rate"] == "-1"


def test_the_logging_progress_line_says_nothing_of_a_rate_before_a_child_is_logged():
    # A writer process killed before it wrote anything leaves 0 written: no rate, no ETA.
    assert child_writing.logging_progress(0, 500, 0.0) == "child runs logged: 0/500"
    assert child_writing.logging_progress(0, 500, 12.5) == "child runs logged: 0/500"
    assert child_writing.logging_progress(100, 500, 2.0) == (
        "child runs logged: 100/500 (50/s, ETA 8 s)"
    )
    # Written at once (a clock that has not moved): a rate, not a division by zero.
    assert child_writing.logging_progress(500, 500, 0.0).startswith("child runs logged: 500/500 (")


def test_a_population_trains_in_groups_of_one_size_at_most_the_most():
    assert population.member_groups(0, 10) == []
    assert population.member_groups(10, 10) == [(0, 10, 10)]
    # Three groups of 9 members trained (the last filled up with 2): one compiled shape.
    assert population.member_groups(25, 10) == [(0, 9, 9), (9, 18, 9), (18, 25, 9)]


def test_members_trained_in_groups_are_the_runs_trained_at_once_each_written_as_the_next_trains(
    compose_config, tmp_path, monkeypatch
):
    numbers = range(6)
    jobs = [
        job(number, [f"seed={number}", f"optimizer.learning_rate={rate}"], tmp_path / str(number))
        for number, rate in zip(numbers, [0.5, 2.0, -1, 1.0, 0.5, 2.0], strict=True)
    ]
    values = [
        {"seed": the_job.number, "optimizer.learning_rate": float(the_job.overrides[1][24:])}
        for the_job in jobs
    ]
    for the_job in jobs:
        the_job.output_dir.mkdir()
    at_once = vectorized_records(compose_config, monkeypatch, jobs, values)

    # 5 members to train (job 2 is refused), in groups of 3: members 0-2, then 3-4 and a copy.
    monkeypatch.setattr(population, "GROUP_MEMBERS", 3)
    second_group_trains = threading.Event()
    trained_sizes = []
    train_members = population.train_members

    def noting_the_second_group(cfg, member_values, progress, label):
        trained_sizes.append(len(member_values))
        if "(group 2/2)" in label:
            second_group_trains.set()
        return train_members(cfg, member_values, progress, label)

    writes: list[tuple[list[int], bool]] = []

    def first_written_as_the_second_group_trains(run_records):
        # Waits for an event that comes only if the first group's children are written in a
        # thread while the main one trains the next group (else it waits in vain, and fails).
        overlapped = second_group_trains.wait(timeout=60) if not writes else True
        writes.append((sorted(record.job_number for record in run_records), overlapped))

    monkeypatch.setattr(population, "train_members", noting_the_second_group)
    in_groups = vectorized_records(
        compose_config, monkeypatch, jobs, values, first_written_as_the_second_group_trains
    )
    assert trained_sizes == [3, 3]
    # The first group's children with the refused job's FAILED one, while the second trained.
    assert writes == [([0, 1, 2, 3], True), ([4, 5], True)]
    assert [record.job_number for record in in_groups] == list(numbers)
    # The same runs but for when they trained (each group's share of its own training time)
    # and the last bits of the outputs, computed after training for 3 members, not 5.
    for grouped, whole in zip(in_groups, at_once, strict=True):
        if whole.predictions is not None:
            for column, values in whole.predictions.items():
                np.testing.assert_allclose(grouped.predictions[column], values, rtol=1e-6)
        untimed = {"start_time": None, "end_time": None, "predictions": None}
        assert replace(grouped, **untimed) == replace(whole, **untimed)


@pytest.mark.parametrize("stopped_by", [KeyboardInterrupt, RuntimeError])
def test_a_stop_or_an_error_while_the_next_group_trains_leaves_what_is_counted_stored(
    compose_config, tracking_uri, tmp_path, monkeypatch, stopped_by
):
    # A stop (`stopping.check` between two chunks raises KeyboardInterrupt) ends the group's
    # writing after the transaction being written; an error lets it write the whole group.
    monkeypatch.setattr(population, "GROUP_MEMBERS", 30)
    train_members, hold = population.train_members, child_writing.hold
    first_committed = threading.Event()

    def noting_a_commit(*args):
        hold(*args)
        first_committed.set()

    def stopped_in_the_second_group(cfg, member_values, progress, label):
        if "(group 2/2)" in label:
            # Once the first group's writing committed a transaction (it runs in its thread).
            assert first_committed.wait(timeout=60)
            raise stopped_by("stopped")
        return train_members(cfg, member_values, progress, label)

    monkeypatch.setattr(population, "train_members", stopped_in_the_second_group)
    monkeypatch.setattr(child_writing, "hold", noting_a_commit)
    cfg = compose_config(*AS_IN_A_SWEEP, "trainer.print_every=0", "trainer.epochs=20")
    members = seeds_in_folders(tmp_path, 60)
    mlflow.set_tracking_uri(tracking_uri)  # the fixture sets it back
    recorded = Recorded()
    with pytest.raises(stopped_by):
        run_population(cfg, members, Progress(), recorded, runs_per_transaction=5)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert "RUNNING" not in {run.info.status for run in runs}
    assert len(runs) == recorded.written and recorded.trained == 30
    assert sorted(recorded.arrays.losses) == sorted(run.info.run_id for run in runs)
    if stopped_by is KeyboardInterrupt:
        assert 5 <= recorded.written <= 30 and recorded.written % 5 == 0
    else:
        assert recorded.written == 30


def test_a_stop_while_waiting_for_a_groups_writing_ends_that_writing_at_its_transaction(
    compose_config, tracking_uri, tmp_path, monkeypatch, stop_handlers
):
    # The main thread has trained the second group and waits for the first group's children;
    # SIGTERM (its handler raises there) must end that writing, not leave it writing past the
    # stop while the sweep ends its runs, even when the signal reached another thread.
    monkeypatch.setattr(population, "GROUP_MEMBERS", 100)
    main_waits = threading.Event()
    wait, add_run = child_writing.Writing.wait, bulk.BulkWriter._add_run

    def noting_the_wait(self):
        main_waits.set()
        return wait(self)

    handled = threading.Event()

    def noting_the_stop(number, frame):
        handled.set()
        stopping._stop(number, frame)  # raises KeyboardInterrupt in the main thread

    signal.signal(signal.SIGTERM, noting_the_stop)  # `stop_handlers` puts pytest's back
    made: list[str] = []

    def stopped_in_the_third_transaction(self, rows, record, run_id, now):
        made.append(run_id)
        if len(made) == 11:  # building the third transaction's rows, outside any commit
            assert main_waits.wait(timeout=60)
            # To this thread, as the kernel may give a process's signal to any of its threads:
            # the main thread, waiting, must still wake to act on it (Python runs handlers
            # there only), before this one goes on.
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            assert handled.wait(timeout=60)
        return add_run(self, rows, record, run_id, now)

    monkeypatch.setattr(child_writing.Writing, "wait", noting_the_wait)
    monkeypatch.setattr(bulk.BulkWriter, "_add_run", stopped_in_the_third_transaction)
    cfg = compose_config(*AS_IN_A_SWEEP, "trainer.print_every=0", "trainer.epochs=20")
    members = seeds_in_folders(tmp_path, 200)
    mlflow.set_tracking_uri(tracking_uri)  # the fixture sets it back
    recorded = Recorded()
    with pytest.raises(KeyboardInterrupt):
        run_population(cfg, members, Progress(), recorded, runs_per_transaction=5)
    writing = [thread for thread in threading.enumerate() if "Children.write" in thread.name]
    assert not any(thread.is_alive() for thread in writing)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    # The transaction being made when the stop came is written whole, and no other.
    assert len(runs) == recorded.written == 15
    assert recorded.trained == 200
