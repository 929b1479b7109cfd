"""A population's jobs from one composed config: check their values, train them together, and
record each as the child run a per-job sweep would log (`tracking.records`)."""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from gatelab.build import build
from gatelab.errors import ConfigError
from gatelab.sweeps import drawn_ahead
from gatelab.sweeps.members import VALUE_KEYS, ValueChecker, train_members
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.sweep_folder import Sweep
from gatelab.sweeps.sweeper import Timings
from gatelab.sweeps.vectorized.child_writing import (
    Background,
    Children,
    Recorded,
    Trained,
    Writing,
)
from gatelab.sweeps.vectorized.job_folders import JobFolders
from gatelab.sweeps.vectorized.member_records import (
    MemberRecords,
    boundary_arrays,
    gallery_numbers,
)
from gatelab.tracking import children, records

log = logging.getLogger(__name__)

# A population trains in groups of at most this many members, each group's children written
# while the next trains (training and writing each keep about one core busy). A group trains
# in about 7-10 s on one core and writes in 10-12 s (docs/speed.md); a sweep of at most this
# many jobs is one group, trained and then written, as the summary's figures need every member.
GROUP_MEMBERS = 10_000


@dataclass(frozen=True)
class MemberJob:
    """One job of a population: Hydra's view of it, and its values of `VALUE_KEYS` as typed."""

    job: records.Job
    values: dict[str, Any]


@dataclass(frozen=True)
class JobOutcome:
    """A job's end: the final loss it returns to Hydra, or the error it failed with."""

    job: records.Job
    loss: float | None = None
    error: BaseException | None = None


def train_and_write(
    cfg: DictConfig,
    jobs: list[MemberJob],
    progress: Progress,
    recorded: Recorded,
    runs_per_transaction: int,
    timings: Timings,
    after_training: Callable[[], None] = lambda: None,
    whole_sweep: Sweep | None = None,
) -> list[JobOutcome]:
    """A population's jobs, wherever it runs (the sweep's process, or a shard's): their folders
    written while it trains, then each logged as a child (`run_population`).

    Args:
        cfg: the population's config, as its jobs' task function sees it.
        after_training: called once the first members are trained, before any child is
            written.
        whole_sweep: the sweep, when these jobs are every job of it: its summary's figures are
            drawn while the children are written (`drawn_ahead`).
    """
    # Written while the population trains (files, then TensorFlow's threads: the two share the
    # cores), in the order of `jobs`; a group's runs wait for theirs, as a child's
    # `hydra.output_dir` is a folder that exists. "write folders" is the time they wait, if any.
    folders = Background(
        JobFolders(cfg, VALUE_KEYS).write,
        [(member.job.output_dir, member.job.overrides, member.values) for member in jobs],
    )
    trained: list[bool] = []

    def before_writing(count: int) -> None:
        if not trained:
            trained.append(True)
            after_training()
        with timings.timed("write folders"):
            folders.wait(count)

    with timings.timed("train and log"):
        return run_population(
            cfg, jobs, progress, recorded, runs_per_transaction, before_writing, whole_sweep
        )


def run_population(
    cfg: DictConfig,
    jobs: list[MemberJob],
    progress: Progress,
    recorded: Recorded,
    runs_per_transaction: int = children.BATCH,
    before_writing: Callable[[int], None] = lambda count: None,
    whole_sweep: Sweep | None = None,
) -> list[JobOutcome]:
    """Train `jobs` (configs `cfg` with their values) as one population, in groups of at most
    `GROUP_MEMBERS`; log each as a child, a group's children while the next group trains (once
    `before_writing(count)` returns: the first `count` of `jobs`, those children's and the ones
    before, have their job folders). When they are every job of `whole_sweep`, its summary's
    figures are drawn while the last are written (`drawn_ahead`).

    Returns each job's outcome, in the order of `jobs`. Adds to `recorded`, as each child is
    written, its full loss curve and (for the members a gallery shows) its decision boundary.
    """
    checker = ValueChecker(cfg)
    outcomes: dict[int, JobOutcome] = {}
    valid: list[tuple[records.Job, dict[str, Any]]] = []
    refused: list[tuple[records.Job, dict[str, Any], ConfigError]] = []
    for member in jobs:
        try:
            valid.append((member.job, checker.member_values(member.values)))
        except ConfigError as error:
            outcomes[member.job.number] = JobOutcome(member.job, error=error)
            refused.append((member.job, member.values, error))

    built = build(cfg)
    member_records = MemberRecords(cfg, built, jobs[0].job)
    children_of = Children(
        cfg, jobs[0].job, len(jobs), progress, recorded, runs_per_transaction, member_records
    )
    # Written with the first group: no member of theirs trains.
    every_record = [member_records.failed(*job) for job in refused]
    shown = gallery_numbers([job for job, _ in valid])
    position = {member.job.number: index for index, member in enumerate(jobs)}
    losses: dict[int, np.ndarray] = {}
    boundaries: dict[int, dict[str, np.ndarray]] = {}
    groups = member_groups(len(valid), GROUP_MEMBERS)
    writing: Writing | None = None
    try:
        for group_number, (start, stop, size) in enumerate(groups):
            group = valid[start:stop]
            # The last group filled with copies of its last member, to the compiled shape.
            values = [values for _, values in group] + [group[-1][1]] * (size - len(group))
            label = f"training {len(valid)} members" + (
                f" (group {group_number + 1}/{len(groups)})" if len(groups) > 1 else ""
            )
            members = train_members(cfg, values, progress, label)
            first = group_number == 0
            recorded.trained += len(group) + (len(refused) if first else 0)
            for index, (job, _) in enumerate(group):
                outcomes[job.number] = JobOutcome(job, loss=members.loss(index))
                if job.number in shown:
                    boundaries[job.number] = boundary_arrays(built, members.weights(index))
                if whole_sweep is not None:
                    losses[job.number] = members.history.member(index).loss
            group_records = member_records.trained(members, group)
            trained = Trained(
                (every_record if first else []) + group_records, members, group, boundaries
            )
            every_record += group_records
            before_writing(1 + max(position[record.job_number] for record in trained.run_records))
            if writing is not None:
                # A stop meanwhile cancels it below: it is not left writing past the stop.
                writing.wait()
                writing = None
            if group_number < len(groups) - 1:
                # Written while the next group trains: the two share the cores.
                writing = children_of.written_meanwhile(trained)
                continue
            progress.forget("training")
            if whole_sweep is not None:
                sweep_dir = jobs[0].job.output_dir.parent
                drawn_ahead.start_from_records(
                    whole_sweep, sweep_dir, every_record, losses, boundaries
                )
            children_of.write(trained)
        if not groups:  # no member trained: the refused jobs' FAILED records alone
            recorded.trained += len(refused)
            before_writing(len(jobs))
            children_of.write(Trained(every_record, None, [], {}))
    except KeyboardInterrupt:
        if writing is not None:
            writing.cancel()  # what it wrote is counted; nothing more starts
        raise
    except BaseException:
        if writing is not None:
            writing.finish()  # its children are recorded; then the error is raised
        raise
    children_of.logged()
    return [outcomes[member.job.number] for member in jobs]


def member_groups(members: int, most: int) -> list[tuple[int, int, int]]:
    """The groups a population of `members` trains in: (start, stop, size trained), each at
    most `most` members and all of one size (the last filled up), so that one compiled program
    trains them all (`engine.population`); one group of every member when they are `most`."""
    if members == 0:
        return []
    count = math.ceil(members / most)
    size = math.ceil(members / count)
    return [(start, min(start + size, members), size) for start in range(0, members, size)]
