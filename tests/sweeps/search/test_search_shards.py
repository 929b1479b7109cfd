"""`hydra/sweeper=search` with `hydra.sweeper.n_shards`: a batch's trials x seeds cut into shards,
each a job of the configured `hydra/launcher`, scored as if trained in one process."""

import json
from pathlib import Path

import optuna
import pytest

from gatelab.sweeps.shards import PLAN_FILE, SHARDS_FOLDER
from tests.helpers import run_train

pytestmark = pytest.mark.slow

# 4 trials in batches of 2, each over 6 seeds: two batches of 12 members.
SEARCH = [
    "-m",
    "hydra/sweeper=search",
    "model=mlp",
    "dataset=xor",
    "trainer.epochs=300",
    "trainer.print_every=0",
    "seed=range(6)",
    "optimizer.learning_rate=tag(log, interval(0.05, 5))",
    "hydra.sweeper.n_trials=4",
    "hydra.sweeper.batch_size=2",
    "hydra.sweeper.sampler_seed=0",
]


def trials_of(workdir: Path) -> list[tuple[dict, list[float], dict]]:
    """Each trial of the search's study: its values, its objective and what it scored (not
    which process told it)."""
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(trial.params, trial.values, scored(trial.user_attrs)) for trial in study.trials]


def scored(attributes: dict) -> dict:
    return {key: value for key, value in attributes.items() if not key.startswith("gatelab.")}


def test_a_searchs_batch_in_two_joblib_shards_scores_every_trial_as_one_process(tmp_path):
    alone, sharded = tmp_path / "alone", tmp_path / "sharded"
    alone.mkdir(), sharded.mkdir()
    assert run_train(alone, *SEARCH).returncode == 0
    result = run_train(
        sharded, *SEARCH, "hydra.sweeper.n_shards=2", "hydra/launcher=joblib", "hydra.sweep.dir=s"
    )
    assert result.returncode == 0, result.stderr[-3000:]

    trials = trials_of(sharded)
    assert len(trials) == 4
    assert trials == trials_of(alone)
    # The last batch's shards: 12 members (2 trials x 6 seeds), 6 each.
    planned = [
        json.loads(path.read_text())["members"]
        for path in sorted((sharded / "s" / SHARDS_FOLDER).glob(f"*/{PLAN_FILE}"))
    ]
    assert [len(members) for members in planned] == [6, 6]
    assert [member["seed"] for member in planned[0]] == list(range(6))
