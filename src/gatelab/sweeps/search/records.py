"""A study's trials in MLflow: one child run per trial with its seeds' outcomes.

A trial's child is a `RunRecord` with a job's tags (`records.record_tags`), written through the
store's child seam (`tracking.children`: in bulk on an SQL store); its seed members are not runs
(100 trials x 100 seeds would be 10,000 of them) but one `seeds.csv`. The study's parent run is
`study_run.StudyRun`, which writes them (`study_run.trial_record`).
"""

import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from gatelab.redaction import redact
from gatelab.sweeps.intervals import Interval, wilson_interval
from gatelab.sweeps.search.space import SearchSpace
from gatelab.sweeps.search.study import Settings
from gatelab.sweeps.summary import JobResult
from gatelab.tracking import records
from gatelab.tracking.naming import short_keys

log = logging.getLogger(__name__)

# On every trial's run: the study's parent run (a filter for all its trials).
SEARCH_TAG = "gatelab.search"
SEEDS_FILE = "seeds.csv"
TRIALS_FILE = "trials.csv"


def trial_name(number: int, values: dict[str, object]) -> str:
    """`lr=0.43 momentum=0.81 (trial 17)`: the trial's searched values, then its number (what
    tells trials apart first: the UI's Run Name column shows about 17 characters)."""
    names = short_keys(list(values))
    shown = " ".join(f"{names[key]}={_short(value)}" for key, value in values.items())
    return f"{shown} (trial {number})" if shown else f"trial {number}"


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def seed_counts(numbers: Mapping[str, Any]) -> tuple[int, int] | None:
    """A trial's solved and total seeds, from its metrics or its Optuna user attributes (both
    hold `solved_jobs` and `jobs`); None when it has neither."""
    if "solved_jobs" in numbers and "jobs" in numbers:
        return int(numbers["solved_jobs"]), int(numbers["jobs"])
    return None


def seed_interval(numbers: Mapping[str, Any]) -> Interval | None:
    """The 95% interval of a trial's success rate over its seeds (`seed_counts`)."""
    counts = seed_counts(numbers)
    return wilson_interval(*counts) if counts else None


def trial_line(number: int, values: dict[str, object], metrics: dict[str, float]) -> str:
    """A scored trial on the console:
    `lr=1.44 (trial 7): success_rate 0.84 (95% CI 0.76-0.90), 84/100 seeds solved`."""
    name = trial_name(number, values)
    counts, interval = seed_counts(metrics), seed_interval(metrics)
    if counts is None or interval is None:
        return f"{name}: no seed recorded"
    solved, total = counts
    return (
        f"{name}: success_rate {solved / total:.4g} (95% CI {interval.text()}), "
        f"{solved}/{total} seeds solved"
    )


def study_params(study_name: str, settings: Settings, space: SearchSpace) -> dict[str, str]:
    """The study's settings, as its parent run's params."""
    return {
        "sampler": settings.sampler,
        "direction": ", ".join(settings.directions),
        "objective": ", ".join(settings.objective),
        "n_trials": str(settings.n_trials),
        "batch_size": str(settings.batch_size),
        "study_name": redact(study_name)[:6000],
        "storage": redact(settings.storage or "sqlite:///optuna.db"),
        "seeds": str(len(space.seeds)) if space.seeds is not None else "none",
        **{f"search.{key}": text for key, text in space.texts.items()},
    }


@dataclass(frozen=True)
class TrialOutcome:
    """A told trial, what its child run shows: its seeds' numbers, or the error it failed with."""

    trial: FrozenTrial
    metrics: dict[str, float]
    seeds: list[JobResult]
    error: BaseException | None = None


def seeds_csv(seeds: list[JobResult]) -> str:
    """A trial's seed members, a row each: seed, solved, accuracy, epochs_to_solve, final loss."""
    text = io.StringIO()
    table = csv.writer(text)
    table.writerow(["seed", "solved", "accuracy", "epochs_to_solve", "loss"])
    for result in seeds:
        table.writerow(
            [
                result.values.get("seed", ""),
                int(result.solved),
                result.accuracy,
                result.epochs_to_solve or "",
                result.loss,
            ]
        )
    return text.getvalue()


def seed_result(seed: int, loss: float, outcome: dict[str, float], seed_key: str) -> JobResult:
    """A trial's seed member as a summary row, scored as a single run of it is."""
    return JobResult(
        number=seed,
        name=f"{seed_key}={seed}",
        values={"seed": str(seed)},
        loss=loss,
        accuracy=outcome["accuracy"],
        epochs_to_solve=int(outcome["epochs_to_solve"]) if "epochs_to_solve" in outcome else None,
        status=records.FINISHED,
        run_id="",
    )
