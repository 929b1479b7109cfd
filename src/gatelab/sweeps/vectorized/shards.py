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
process ends KILLED (`end_running_children`).
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from gatelab.errors import ConfigError, one_line
from gatelab.sweeps.members import apply_sweep_defaults
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.sweep_folder import (
    BOUNDARIES_FILE,
    LOSSES_FILE,
    MEMBERS_FILE,
    SweepArrays,
    sweep_of,
)
from gatelab.sweeps.sweep_run import SweepEndError
from gatelab.sweeps.sweeper import Timings, launch_batches
from gatelab.sweeps.vectorized.population import (
    JobOutcome,
    MemberJob,
    Recorded,
    train_and_write,
)
from gatelab.tracking import records
from gatelab.tracking.children import child_store
from gatelab.tracking.statuses import KILLED, RUNNING

log = logging.getLogger(__name__)

# A sweep folder's shards, one folder each (`shards/<k>`): its plan, Hydra's job files, its log,
# its jobs' outcomes and arrays.
SHARDS_FOLDER = "shards"
PLAN_FILE = "shard.json"
RESULT_FILE = "result.json"
# A test's way to make one shard's process die after it trained, before it writes a child: the
# shard's number (tests/sweeps/vectorized/test_shards.py).
EXIT_AFTER_TRAINING = "GATELAB_TEST_SHARD_EXIT_AFTER_TRAINING"


class ShardError(SweepEndError):
    """A shard's process failed or died: the sweep ends FAILED, and the command with one line
    (as a sweep's other ends it cannot help: `cli` prints a `SweepEndError` so) saying which
    shard, why, and how to finish."""


def split(numbers: list[int], n_shards: int) -> list[list[int]]:
    """`numbers` cut into at most `n_shards` runs of consecutive items, their sizes differing by
    at most one: [0..4] in 2 shards is [0, 1, 2], [3, 4]."""
    size, extra = divmod(len(numbers), n_shards)
    pieces, start = [], 0
    for index in range(min(n_shards, len(numbers))):
        end = start + size + (index < extra)
        pieces.append(numbers[start:end])
        start = end
    return pieces


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
        return sweep_dir / SHARDS_FOLDER / str(self.number)

    @property
    def overrides(self) -> list[str]:
        """Its Hydra job's overrides: its population's, and its own folder."""
        return [*self.structural, f"hydra.sweep.subdir={SHARDS_FOLDER}/{self.number}"]

    def name(self, count: int) -> str:
        first, last = self.jobs[0].job.number, self.jobs[-1].job.number
        return f"shard {self.number + 1} of {count} (jobs {first}-{last})"


def write_plan(
    shard: Shard, sweep_dir: Path, set_on_command_line: set[str], runs_per_transaction: int
) -> None:
    """Shard `shard`'s plan into its folder, where `run_shard` reads it; an earlier run's
    outcomes and arrays there are removed, so only this run's are collected."""
    folder = shard.folder(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (RESULT_FILE, LOSSES_FILE, BOUNDARIES_FILE, MEMBERS_FILE):
        (folder / name).unlink(missing_ok=True)
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
    new = folder / f".{PLAN_FILE}.{os.getpid()}"
    new.write_text(json.dumps(plan))
    os.replace(new, folder / PLAN_FILE)


def read_plan(folder: Path) -> tuple[list[MemberJob], set[str], int]:
    """A shard's jobs, the keys its command line set and its children a transaction."""
    plan = json.loads((folder / PLAN_FILE).read_text())
    jobs = [
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
    return jobs, set(plan["set_on_command_line"]), plan["runs_per_transaction"]


def run_shard(cfg: DictConfig) -> dict[str, Any]:
    """The task function of a shard's Hydra job: train its members, write their children into
    the store and their outcomes and arrays into its folder.

    Module-level, so the launchers that pickle it (joblib's loky, submitit's cloudpickle) find it
    by name. An error is written into the folder and returned, not raised: Hydra's callback
    would record a failed job as a FAILED child, and a shard is not a job of the grid.
    """
    folder = Path(HydraConfig.get().runtime.output_dir)
    jobs, set_on_command_line, runs_per_transaction = read_plan(folder)
    apply_sweep_defaults(cfg, set_on_command_line)
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


class ShardLauncher:
    """The sweep's shards through the configured launcher, set up with `run_shard` as its task.

    Args:
        hydra_context, config: the sweep's, as its sweeper got them.
        max_batch_size: shards a launch, as the basic sweeper's jobs (None: all at once).
    """

    def __init__(self, hydra_context: HydraContext, config: DictConfig, max_batch_size: int | None):
        self.config = config
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.max_batch_size = max_batch_size
        self.launcher: Launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=run_shard, config=config
        )

    def run(self, shards: list[Shard], recorded: Recorded) -> list[JobOutcome]:
        """Launch `shards`, merge what each left in its folder into `recorded`, and return their
        jobs' outcomes; ShardError (after the merge) if one failed or died."""
        count = len(shards)
        by_number = {shard.number: shard for shard in shards}
        failures: list[str] = []
        try:
            for batch in launch_batches(list(by_number), self.max_batch_size):
                returns = self.launcher.launch(
                    [by_number[number].overrides for number in batch], initial_job_idx=batch[0]
                )
                failures += [
                    f"{by_number[number].name(count)}: {failure}"
                    for number, failure in zip(batch, map(shard_error, returns), strict=True)
                    if failure
                ]
        except Exception as error:
            died = f"{type(error).__name__}: {one_line(error)}"
            failures.append(f"a shard's process failed or died ({died})")
            raise self.failed(failures, recorded) from error
        finally:
            outcomes = [outcome for shard in shards for outcome in self.collect(shard, recorded)]
        if failures:
            raise self.failed(failures, recorded)
        return outcomes

    def collect(self, shard: Shard, recorded: Recorded) -> list[JobOutcome]:
        """What shard `shard` left in its folder: its arrays and counts added to `recorded`,
        its jobs' outcomes returned (none if it died before writing them)."""
        folder = shard.folder(self.sweep_dir)
        merge(recorded.arrays, SweepArrays.load(folder))
        path = folder / RESULT_FILE
        if not path.is_file():
            return []
        result = json.loads(path.read_text())
        recorded.trained += result["trained"]
        recorded.written += result["written"]
        if result["error"] is not None:
            return []
        ends = [(member.job, result["outcomes"][str(member.job.number)]) for member in shard.jobs]
        # A job's error is the one line of a value its schema refused (`run_population`).
        return [
            JobOutcome(job, error=ConfigError(end["error"]))
            if "error" in end
            else JobOutcome(job, loss=end["loss"])
            for job, end in ends
        ]

    def failed(self, failures: list[str], recorded: Recorded) -> ShardError:
        """The one line of a sweep whose shards did not all end well; what they left RUNNING
        ended KILLED first."""
        end_running_children(self.sweep_dir)
        return ShardError(
            f"{'; '.join(failures)}; the jobs it did not write run when the same command runs "
            f"again with hydra.sweep.dir={self.sweep_dir.absolute()}"
        )


def shard_error(result: JobReturn) -> str | None:
    """What a shard's Hydra job says went wrong, if anything."""
    try:
        value = result.return_value
    except Exception as error:  # raised in the task itself: Hydra keeps it
        return one_line(error)
    return value.get("error") if isinstance(value, dict) else None


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
