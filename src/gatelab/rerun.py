"""Re-run one job of a store alone, from what its run logged: `python -m gatelab.runs rerun ID`.

A job's run (a single run, a sweep's child, a vectorized sweep's member) keeps its overrides (tag
`hydra.overrides`) and its config (params). The re-run is `python src/train.py <its overrides>`,
the command a Hydra user would type, so it takes the single run's whole path (Keras model,
figures, `loss.csv`, an `outputs/` folder) and is never a member of the job's sweep: it has no
parent and changes no cell. It goes to the job's store and experiment (a big sweep's own), named
`rerun of <job's name>` and tagged `gatelab.rerun_of`. Before anything runs, its overrides are
composed from `conf/` and the params they give held equal to the logged ones: a config changed
since is one line, not a different run.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.entities import LifecycleStage, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from gatelab import stopping
from gatelab.config import register_configs, validate
from gatelab.errors import CONFIG_ERRORS, ConfigError, one_line, shorten
from gatelab.redaction import redact
from gatelab.sweeps.cells import CELL_TAG
from gatelab.sweeps.search.records import SEARCH_TAG
from gatelab.sweeps.sweep_folder import PARENT_RUN_ENV
from gatelab.tracking.links import run_url, ui_command
from gatelab.tracking.naming import config_params
from gatelab.tracking.store import PID_TAG

RERUN_TAG = "gatelab.rerun_of"
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
OVERRIDES_TAG = "hydra.overrides"
# The runs of a sweep that are not a job, by a tag only they carry.
NOT_JOBS = {
    "sweep.params": "the run of a sweep or search, not a job: re-run one of its jobs' runs",
    CELL_TAG: "a cell of a sweep, not a job: re-run one of its seeds' runs",
    SEARCH_TAG: "a trial of a search, which trains many seeds, not a job",
}
# What the re-run sets itself: the job's store and experiment, its model and figures (off in a
# vectorized sweep's members). None of them is a param, so none changes what it trains.
SET_BY_RERUN = ("tracking.uri", "tracking.experiment", "tracking.log_model", "tracking.log_figures")
# What would make the re-run resume a run, or join a sweep, instead of starting a run alone.
NOT_INHERITED = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", PARENT_RUN_ENV)


def rerun(client: MlflowClient, run_id: str) -> int:
    """Re-run the job of run `run_id` of `client`'s store alone; return `train.py`'s exit status.

    Prints, last, the new run's id and link.
    """
    run = job_run(client, run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ConfigError(
            f"run {run_id} is in experiment {experiment.name!r}, which is deleted: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) first"
        )
    overrides = rerun_overrides(run, experiment.name)
    if not TRAIN_SCRIPT.is_file():
        raise ConfigError(
            f"{TRAIN_SCRIPT} is not there: re-running needs gatelab's source folder, "
            "installed with pip install -e ."
        )
    environment = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED} | {
        "MLFLOW_TRACKING_URI": client.tracking_uri,
        # Tags MLflow adds to the run it starts (its `SystemEnvironmentContext`).
        "MLFLOW_RUN_CONTEXT": json.dumps({RERUN_TAG: run_id}),
    }
    name = f"rerun of {run.info.run_name}"
    command = [sys.executable, str(TRAIN_SCRIPT), *overrides]
    print(f"{name} (run {run_id}): {shlex.join(command)}", flush=True)
    stopping.install()
    # In a session of its own: it gets the stop signal this process got, once.
    process = subprocess.Popen(command, env=environment, start_new_session=True)
    try:
        status = process.wait()
    except KeyboardInterrupt:
        process.send_signal(stopping.first_signal())
        status = process.wait()  # it ends its run KILLED
    new_run = started_run(client, experiment.experiment_id, run_id, process.pid)
    if new_run is not None:
        client.update_run(new_run.info.run_id, name=name)
        mlflow.set_tracking_uri(client.tracking_uri)
        print(
            f"MLflow run {new_run.info.run_id} ({name}, {new_run.info.status}) in experiment "
            f"{experiment.name!r}; to see it: {ui_command()}, then "
            f"{run_url(experiment.experiment_id, new_run.info.run_id)}"
        )
    return status


def job_run(client: MlflowClient, run_id: str) -> Run:
    """Run `run_id`, if it is a job's run that a re-run can repeat; else ConfigError."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ConfigError(
            f"RUN_ID={shorten(run_id)!r} is not a run of {redact(client.tracking_uri)}: give the "
            "id of a job's run (a single run or a sweep's child), as its page in mlflow ui shows "
            "it, and its store with --tracking-uri"
        ) from None
    described = f"run {run_id} ({run.info.run_name})"
    if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ConfigError(f"{described} is deleted: restore it (mlflow runs restore) first")
    for tag, what in NOT_JOBS.items():
        if tag in run.data.tags:
            raise ConfigError(f"RUN_ID={run_id}: {described} is {what}")
    if OVERRIDES_TAG not in run.data.tags:
        raise ConfigError(
            f"RUN_ID={run_id}: {described} has no tag {OVERRIDES_TAG}, so it was not made by "
            "gatelab's src/train.py: only a job's run can be re-run"
        )
    return run


def rerun_overrides(run: Run, experiment: str) -> list[str]:
    """The job's overrides, in `experiment`, composed and checked against its params."""
    logged = split_overrides(run.data.tags[OVERRIDES_TAG])
    parser = OverridesParser.create()
    overrides = [
        override
        for override, parsed in zip(logged, parser.parse_overrides(logged), strict=True)
        if parsed.key_or_group not in SET_BY_RERUN
    ]
    cfg = composed(run, overrides)
    if cfg.tracking.experiment != experiment:
        overrides.append(f"tracking.experiment={quoted(experiment)}")
    now, then = config_params(cfg), run.data.params
    differences = [
        f"{key} is {now.get(key)!r} now, {then.get(key)!r} in the run"
        for key in sorted(set(now) | set(then))
        if now.get(key) != then.get(key)
    ]
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        commit = run.data.tags.get("mlflow.source.git.commit", "unknown")
        raise ConfigError(
            f"run {run.info.run_id}'s overrides ({' '.join(overrides)}) compose another config "
            f"than it logged: {differences[0]}{more}; conf/ changed since it ran (at commit "
            f"{commit}): check that commit out to re-run it"
        )
    return overrides


def composed(run: Run, overrides: list[str]) -> DictConfig:
    """The config `python src/train.py OVERRIDES` would run, checked; ConfigError if none."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        validate(cfg)
    except CONFIG_ERRORS as error:
        raise ConfigError(
            f"run {run.info.run_id}'s overrides ({' '.join(overrides)}) cannot run now: "
            f"{one_line(error)}"
        ) from None
    return cfg


def split_overrides(text: str) -> list[str]:
    """Tag `hydra.overrides` (the overrides joined by spaces) back into its overrides: words
    joined until they parse, so that `tags=[a, b]` stays one."""
    parser = OverridesParser.create()
    overrides, current = [], ""
    for word in text.split(" "):
        current = f"{current} {word}" if current else word
        try:
            parser.parse_overrides([current])
        except CONFIG_ERRORS:
            continue
        overrides.append(current)
        current = ""
    if current:
        raise ConfigError(f"tag hydra.overrides={shorten(text)!r} is not a list of overrides")
    return overrides


def quoted(value: str) -> str:
    """`value` as one quoted value of a Hydra override, as it reads it back."""
    text = "'" + value.replace("'", "\\'") + "'"
    (parsed,) = OverridesParser.create().parse_overrides([f"key={text}"])
    if parsed.value() != value:
        raise ConfigError(f"tracking.experiment={value!r} cannot be given as an override")
    return text


def started_run(client: MlflowClient, experiment_id: str, run_id: str, pid: int) -> Run | None:
    """The run the re-run's process started, if it started one."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RERUN_TAG}` = '{run_id}' and tags.`{PID_TAG}` = '{pid}'",
    )
    return found[0] if found else None
