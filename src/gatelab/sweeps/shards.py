"""What a sweep's shards share, whichever sweeper cuts them: pieces of a population, each run as
one job of the configured `hydra/launcher` (basic, joblib, submitit, ...), in a folder of its own
in the sweep folder (`shards/<k>`: its plan, Hydra's job files, its log, its result), and the one
line of a sweep whose shards did not all end well.

The vectorized sweeper's shards train their jobs and write their children
(`sweeps.vectorized.shards`); a search's shards train its batch's members and hand back their
scores (`train_members_shard`, below), which the search tells Optuna and logs as trials.
"""

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig

from gatelab.errors import one_line
from gatelab.sweeps.members import apply_sweep_defaults, train_members
from gatelab.sweeps.store_failures import SweepEndError
from gatelab.sweeps.sweeper import launch_batches

log = logging.getLogger(__name__)

# A sweep folder's shards, one folder each (`shards/<k>`).
SHARDS_FOLDER = "shards"
PLAN_FILE = "shard.json"
RESULT_FILE = "result.json"


class ShardError(SweepEndError):
    """A shard's process failed or died: the sweep ends FAILED, and the command with one line
    (`cli` prints a `SweepEndError` so) saying which shard, why, and how to finish."""


def split(items: Sequence[Any], n_shards: int) -> list[list[Any]]:
    """`items` cut into at most `n_shards` runs of consecutive items, their sizes differing by
    at most one: [0..4] in 2 shards is [0, 1, 2], [3, 4]."""
    size, extra = divmod(len(items), n_shards)
    pieces, start = [], 0
    for index in range(min(n_shards, len(items))):
        end = start + size + (index < extra)
        pieces.append(list(items[start:end]))
        start = end
    return pieces


def shard_folder(sweep_dir: Path, number: int) -> Path:
    """Shard `number`'s folder in the sweep folder `sweep_dir`."""
    return sweep_dir / SHARDS_FOLDER / str(number)


def shard_overrides(structural: Sequence[str], number: int) -> list[str]:
    """Shard `number`'s Hydra job's overrides: its population's, and its own folder."""
    return [*structural, f"hydra.sweep.subdir={SHARDS_FOLDER}/{number}"]


def write_plan(folder: Path, plan: dict[str, Any], stale: Sequence[str] = ()) -> None:
    """A shard's plan into its folder, whole or not at all, where its task reads it; the
    result an earlier run left there (and the files `stale`) removed, so that only this run's
    is read back."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (RESULT_FILE, *stale):
        (folder / name).unlink(missing_ok=True)
    new = folder / f".{PLAN_FILE}.{os.getpid()}"
    new.write_text(json.dumps(plan))
    os.replace(new, folder / PLAN_FILE)


def this_shard() -> tuple[Path, dict[str, Any]]:
    """In a shard's task: its folder (its Hydra job's output folder) and its plan."""
    folder = Path(HydraConfig.get().runtime.output_dir)
    return folder, json.loads((folder / PLAN_FILE).read_text())


def read_result(folder: Path) -> dict[str, Any] | None:
    """What a shard left in its folder (None if it died first)."""
    path = folder / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class ShardLauncher:
    """A sweep's shards through the configured launcher, set up with their own task function.

    Args:
        hydra_context, config: the sweep's, as its sweeper got them.
        task_function: what a shard's job runs: a module-level function, which the launchers
            that pickle their task (joblib's loky, submitit's cloudpickle) find by name.
        max_batch_size: shards a launch, as the basic sweeper's jobs (None: all at once).
    """

    def __init__(
        self,
        hydra_context: HydraContext,
        config: DictConfig,
        task_function: Callable[[DictConfig], Any],
        max_batch_size: int | None = None,
    ):
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.max_batch_size = max_batch_size
        self.launcher: Launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def launch(self, shards: dict[int, tuple[list[str], str]]) -> list[str]:
        """Run each shard (by number: its overrides and its name) to its end; return what went
        wrong, a line a shard: a failed task, or a process that died (launching then stops)."""
        failures: list[str] = []
        log.info(
            "%d shard(s) through hydra/launcher, in %s", len(shards), self.sweep_dir / SHARDS_FOLDER
        )
        try:
            for batch in launch_batches(list(shards), self.max_batch_size):
                returns = self.launcher.launch(
                    [shards[number][0] for number in batch], initial_job_idx=batch[0]
                )
                failures += [
                    f"{shards[number][1]}: {failure}"
                    for number, failure in zip(batch, map(task_error, returns), strict=True)
                    if failure
                ]
        except Exception as error:
            died = f"{type(error).__name__}: {one_line(error)}"
            failures.append(f"a shard's process failed or died ({died})")
        return failures

    def error(self, failures: list[str]) -> ShardError:
        """The one line of a sweep whose shards did not all end well."""
        return ShardError(
            f"{'; '.join(failures)}; what it did not finish runs when the same command runs "
            f"again with hydra.sweep.dir={self.sweep_dir.absolute()}"
        )


def task_error(result: JobReturn) -> str | None:
    """What a shard's Hydra job says went wrong, if anything: its task returns its error (a
    failed Hydra job would be recorded by the sweep's callback as a FAILED child of the grid)."""
    try:
        value = result.return_value
    except Exception as error:  # raised in the task itself: Hydra keeps it
        return one_line(error)
    return value.get("error") if isinstance(value, dict) else None


def train_members_shard(cfg: DictConfig) -> dict[str, Any]:
    """The task function of a search's shard: train the members of its plan (their values, as
    `ValueChecker.member_values` gives them) and leave each one's final loss and outcome
    metrics in its folder (`read_members`)."""
    folder, plan = this_shard()
    apply_sweep_defaults(cfg, set(plan["set_on_command_line"]))
    result: dict[str, Any] = {"losses": [], "outcomes": [], "error": None}
    try:
        members = train_members(cfg, plan["members"])
        indices = range(len(plan["members"]))
        result["losses"] = [members.loss(index) for index in indices]
        result["outcomes"] = [members.outcome(index) for index in indices]
    except Exception as failure:
        log.exception("the shard failed")
        result["error"] = one_line(failure)
    (folder / RESULT_FILE).write_text(json.dumps(result))
    return {"error": result["error"]}


class ShardedMembers:
    """A population trained in shards, as the search reads `Members`: each member's final loss
    and outcome metrics, in the order of its values."""

    def __init__(self, losses: list[float], outcomes: list[dict[str, float]]):
        self.losses = losses
        self.outcomes = outcomes

    def loss(self, index: int) -> float:
        return self.losses[index]

    def outcome(self, index: int) -> dict[str, float]:
        return self.outcomes[index]


def train_in_shards(
    launcher: ShardLauncher,
    structural: list[str],
    member_values: list[dict[str, Any]],
    set_on_command_line: set[str],
    n_shards: int,
) -> ShardedMembers:
    """Train `member_values` (of the config `structural` composes) in `n_shards` shards through
    `launcher`; ShardError if one failed or died."""
    pieces = split(member_values, n_shards)
    shards = {}
    for number, piece in enumerate(pieces):
        plan = {"set_on_command_line": sorted(set_on_command_line), "members": piece}
        write_plan(shard_folder(launcher.sweep_dir, number), plan)
        shards[number] = (
            shard_overrides(structural, number),
            f"shard {number + 1} of {len(pieces)}",
        )
    failures = launcher.launch(shards)
    losses: list[float] = []
    outcomes: list[dict[str, float]] = []
    for number in shards:
        result = read_result(shard_folder(launcher.sweep_dir, number))
        if result is None or result["error"] is not None:
            continue
        losses += result["losses"]
        outcomes += result["outcomes"]
    if failures or len(losses) != len(member_values):
        raise launcher.error(failures or ["a shard left no result"])
    return ShardedMembers(losses, outcomes)
