"""A vectorized sweep's populations in shards, each a job of the configured `hydra/launcher`.

With `hydra.sweeper.n_shards=N` above 1, each population's jobs are cut into N shards of
consecutive jobs, and each shard is one Hydra job of whatever launcher the command chose (basic,
joblib, submitit_local, submitit_slurm, ray). The launching process keeps the sweep's parent
run, its cells and its summary. It writes each shard's plan into the sweep folder
(`shards/<k>/shard.json`: its jobs, their values, their parent or cell run ids) and launches the
shards with the task function `run_shard`: the launcher composes a shard's config from its
population's overrides as it composes any job's, and `run_shard` trains the shard's members,
writes their children through the child-store seam into the shared store (`child_store`: SQL
bulk, or MLflow's client on a server) and leaves their outcomes and arrays in its folder, which
the launching process merges (`collect`).

A shard writes a child only once it is trained, a batch a transaction on an SQL store: a shard
that dies leaves whole children or none, and a re-run with the same `hydra.sweep.dir` runs its
jobs again (`sweeps.resume`). What a dead shard's client writer left RUNNING, the launching
process ends KILLED (`end_running_children`). What every sweeper's shards share (the launcher
set up with a shard's task, their folders and plans, the one line of a failure) is
`sweeps.shards`.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.types import HydraContext
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from gatelab.errors import ConfigError, one_line
from gatelab.sweeps.members import apply_sweep_defaults
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.shards import (
    RESULT_FILE,
    ShardLauncher,
    read_result,
    shard_folder,
    shard_overrides,
    this_shard,
    write_plan,
)
from gatelab.sweeps.sweep_folder import (
    BOUNDARIES_FILE,
    LOSSES_FILE,
    MEMBERS_FILE,
    SweepArrays,
    sweep_of,
)
from gatelab.sweeps.sweeper import Timings
from gatelab.sweeps.vectorized.child_writing import Recorded
from gatelab.sweeps.vectorized.population import JobOutcome, MemberJob, train_and_write
from gatelab.tracking import records
from gatelab.tracking.children import child_store
from gatelab.tracking.statuses import KILLED, RUNNING

log = logging.getLogger(__name__)

# A test's way to make one shard's process die after it trained, before it writes a child: the
# shard's number (tests/sweeps/vectorized/test_shards.py).
EXIT_AFTER_TRAINING = "GATELAB_TEST_SHARD_EXIT_AFTER_TRAINING"


@dataclass(frozen=True)
class Shard:
    """One launcher job of a sweep: consecutive jobs of one population.

    Args:
        number: its place in the sweep's shards (its folder `shards/<number>`).
        structural: its population's overrides but the value keys (its config's).
        jobs: its jobs, each with its values.
    """

    number: int
    structural: tuple[str, ...]
    jobs: list[MemberJob]

    def folder(self, sweep_dir: Path) -> Path:
        return shard_folder(sweep_dir, self.number)

    def name(self, count: int) -> str:
        first, last = self.jobs[0].job.number, self.jobs[-1].job.number
        return f"shard {self.number + 1} of {count} (jobs {first}-{last})"


def plan_shard(
    shard: Shard, sweep_dir: Path, set_on_command_line: set[str], runs_per_transaction: int
) -> None:
    """Shard `shard`'s plan into its folder, where `run_shard` reads it; an earlier run's
    outcomes and arrays there are removed, so that only this run's are collected."""
    first = shard.jobs[0].job
    plan = {
        "set_on_command_line": sorted(set_on_command_line),
        "runs_per_transaction": runs_per_transaction,
        # What every job of the sweep shares: its group choices and its sweep.
        "choices": first.choices,
        "swept": first.swept,
        "sweep_run_id": first.sweep_run_id,
        "experiment_id": first.experiment_id,
        "jobs": [
            {
                "number": member.job.number,
                "overrides": member.job.overrides,
                "output_dir": str(member.job.output_dir),
                "parent_run_id": member.job.parent_run_id,
                "values": member.values,
            }
            for member in shard.jobs
        ],
    }
    write_plan(shard.folder(sweep_dir), plan, stale=(LOSSES_FILE, BOUNDARIES_FILE, MEMBERS_FILE))


def jobs_of(plan: dict[str, Any]) -> list[MemberJob]:
    """A shard's jobs, from its plan."""
    return [
        MemberJob(
            job=records.Job(
                overrides=job["overrides"],
                choices=plan["choices"],
                output_dir=Path(job["output_dir"]),
                parent_run_id=job["parent_run_id"],
                number=job["number"],
                swept=plan["swept"],
                sweep_run_id=plan["sweep_run_id"],
                experiment_id=plan["experiment_id"],
            ),
            values=job["values"],
        )
        for job in plan["jobs"]
    ]


def run_shard(cfg: DictConfig) -> dict[str, Any]:
    """The task function of a shard's Hydra job: train its members, write their children into
    the store and their outcomes and arrays into its folder.

    Module-level, so the launchers that pickle it (joblib's loky, submitit's cloudpickle) find it
    by name. An error is written into the folder and returned, not raised: Hydra's callback
    would record a failed job as a FAILED child, and a shard is not a job of the grid.
    """
    folder, plan = this_shard()
    jobs, runs_per_transaction = jobs_of(plan), plan["runs_per_transaction"]
    apply_sweep_defaults(cfg, set(plan["set_on_command_line"]))
    recorded, timings = Recorded(), Timings()
    outcomes: list[JobOutcome] = []
    error: str | None = None

    def after_training() -> None:
        if os.environ.get(EXIT_AFTER_TRAINING) == folder.name:
            os._exit(70)  # as the out-of-memory killer would end it: no clean-up, no return

    try:
        outcomes = train_and_write(
            cfg, jobs, Progress(), recorded, runs_per_transaction, timings, after_training
        )
    except Exception as failure:
        log.exception("the shard failed")
        error = one_line(failure)
    finally:
        recorded.arrays.save(folder)
        result = {
            "outcomes": {
                str(outcome.job.number): (
                    {"loss": outcome.loss}
                    if outcome.error is None
                    else {"error": str(outcome.error)}
                )
                for outcome in outcomes
            },
            "trained": recorded.trained,
            "written": recorded.written,
            "error": error,
            "timings": dict(timings),
        }
        (folder / RESULT_FILE).write_text(json.dumps(result))
    log.info("shard timings: %s", timings)
    return {"error": error, "written": recorded.written}


class VectorizedShards:
    """The vectorized sweep's shards through the configured launcher (`run_shard` their task).

    Args:
        hydra_context, config: the sweep's, as its sweeper got them.
        max_batch_size: shards a launch, as the basic sweeper's jobs (None: all at once).
    """

    def __init__(self, hydra_context: HydraContext, config: DictConfig, max_batch_size: int | None):
        self.launcher = ShardLauncher(hydra_context, config, run_shard, max_batch_size)
        self.sweep_dir = self.launcher.sweep_dir

    def run(self, shards: list[Shard], recorded: Recorded) -> list[JobOutcome]:
        """Launch `shards`, merge what each left in its folder into `recorded`, and return their
        jobs' outcomes; ShardError (after the merge) if one failed or died, what its client
        writer left RUNNING ended KILLED first."""
        failures: list[str] = []
        try:
            failures = self.launcher.launch(
                {
                    shard.number: (
                        shard_overrides(shard.structural, shard.number),
                        shard.name(len(shards)),
                    )
                    for shard in shards
                }
            )
        finally:
            outcomes = [outcome for shard in shards for outcome in self.collect(shard, recorded)]
        if failures:
            end_running_children(self.sweep_dir)
            raise self.launcher.error(failures)
        return outcomes

    def collect(self, shard: Shard, recorded: Recorded) -> list[JobOutcome]:
        """What shard `shard` left in its folder: its arrays and counts added to `recorded`,
        its jobs' outcomes returned (none if it died before writing them)."""
        folder = shard.folder(self.sweep_dir)
        merge(recorded.arrays, SweepArrays.load(folder))
        result = read_result(folder)
        if result is None:
            return []
        recorded.trained += result["trained"]
        recorded.written += result["written"]
        if result["error"] is not None:
            return []
        # None of a shard stopped before it wrote them (Ctrl-C, SIGTERM): the store counts.
        ended = result["outcomes"]
        ends = [
            (member.job, ended[str(member.job.number)])
            for member in shard.jobs
            if str(member.job.number) in ended
        ]
        # A job's error is the one line of a value its schema refused (`run_population`).
        return [
            JobOutcome(job, error=ConfigError(end["error"]))
            if "error" in end
            else JobOutcome(job, loss=end["loss"])
            for job, end in ends
        ]


def end_running_children(sweep_dir: Path) -> None:
    """End KILLED the children of the sweep in `sweep_dir` still RUNNING: a dead shard's, whose
    writer (MLflow's client on a server) had begun them."""
    sweep = sweep_of(sweep_dir)
    if sweep is None:
        return
    client = MlflowClient()
    runs = child_store(client.tracking_uri).runs_tagged(
        sweep.experiment_id, records.SWEEP_TAG, sweep.run_id
    )
    for run in runs:
        if run.info.status == RUNNING:
            client.set_terminated(run.info.run_id, KILLED)


def merge(into: SweepArrays, shard: SweepArrays) -> None:
    """A shard's arrays added to the sweep's: its members' groups numbered after the sweep's."""
    into.losses.update(shard.losses)
    into.boundaries.update(shard.boundaries)
    for group in sorted(shard.members, key=int):
        into.members[str(len(into.members))] = shard.members[group]
