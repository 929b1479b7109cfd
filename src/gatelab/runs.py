"""A store's runs, from the command line: re-run one job alone, close runs a dead process left.

python -m gatelab.runs rerun RUN_ID [--tracking-uri URI]

re-runs one job alone from what its run logged (tag `hydra.overrides`, checked against its
params): a single run, a sweep's child or a vectorized sweep's member, which logged no Keras
model or figures. It is `python src/train.py <its overrides>` in the job's store and experiment,
named `rerun of <its name>`, tagged `gatelab.rerun_of`; its final loss and outputs are the job's
(`gatelab.rerun`). Last it prints the new run's id and link. A run that is not a job (a sweep's
run, a cell, a search's trial) or is not in the store is one line, exit 2, nothing created.

python -m gatelab.runs mark-dead-killed [--tracking-uri URI] [--experiment NAME] [--dry-run]

marks KILLED the RUNNING runs whose process is gone: a process killed outright (SIGKILL, the
out-of-memory killer, a crashed node) cannot end its run, which stays RUNNING for good. A run
records the host and the process that run it (tags `gatelab.host`, `gatelab.pid`); only runs of
this host whose process no longer exists are marked, so live runs are never touched. It looks in
every active experiment of the store, since a sweep of many jobs has one of its own
(`<experiment> sweep <its folder>`); `--experiment NAME` looks in NAME and its sweeps' only.
"""

import argparse
import sys

import mlflow
from mlflow.entities import Experiment
from mlflow.tracking import MlflowClient

from gatelab import rerun
from gatelab.cli import run_command
from gatelab.errors import ConfigError, shorten
from gatelab.redaction import redact
from gatelab.tracking import store


def mark_dead_killed(tracking_uri: str | None, experiment: str | None, dry_run: bool) -> int:
    """Mark KILLED the RUNNING runs whose process is dead; return how many.

    Args:
        tracking_uri: the store; None means MLflow's default, as `tracking.uri`.
        experiment: look in this experiment and its sweeps' own (`<experiment> sweep ...`);
            None: in every active experiment of the store.
        dry_run: list the runs, change nothing.
    """
    client = open_store(tracking_uri)
    experiments = experiments_to_search(client, experiment)
    dead = store.dead_runs(client, [found.experiment_id for found in experiments])
    names = {found.experiment_id: found.name for found in experiments}
    for run in dead:
        if not dry_run:
            store.mark_killed(client, run)
        action = "would mark" if dry_run else "marked"
        pid = run.data.tags[store.PID_TAG]
        print(
            f"{action} KILLED: run {run.info.run_id} ({run.info.run_name}) of experiment "
            f"{names[run.info.experiment_id]!r}, process {pid} is gone"
        )
    print(
        f"{len(dead)} run(s) left RUNNING by a dead process on this host, "
        f"in {len(experiments)} experiment(s)"
    )
    return len(dead)


def open_store(tracking_uri: str | None) -> MlflowClient:
    """A client of the store at `tracking_uri` (None: MLflow's default), which must exist."""
    store.check(tracking_uri)
    uri = tracking_uri or mlflow.get_tracking_uri()
    path = store.sqlite_path(uri)
    if path is not None and not path.exists():
        # Opening it would create an empty store, in which nothing is ever found.
        raise ConfigError(
            f"no store at {path}: run this from the folder the runs ran in, or name their "
            "store with --tracking-uri"
        )
    return MlflowClient(uri)


def experiments_to_search(client: MlflowClient, experiment: str | None) -> list[Experiment]:
    """The store's active experiments, or `experiment` and its sweeps' own experiments, which
    a sweep of many jobs names `<experiment> sweep <its folder>`."""
    active = all_experiments(client)
    if experiment is None:
        return active
    chosen = [
        found
        for found in active
        if found.name == experiment or found.name.startswith(f"{experiment} sweep ")
    ]
    if not any(found.name == experiment for found in chosen):
        names = ", ".join(repr(name) for name in sorted(found.name for found in active)) or "none"
        raise ConfigError(
            f"--experiment={experiment!r} is not an experiment of {redact(client.tracking_uri)}: "
            f"choose one of {shorten(names, 300)}, or leave --experiment out to look in all"
        )
    return chosen


def all_experiments(client: MlflowClient) -> list[Experiment]:
    """Every active experiment of the store, page by page."""
    found, page_token = [], None
    while True:
        page = client.search_experiments(page_token=page_token)
        found.extend(page)
        page_token = page.token
        if not page_token:
            return found


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gatelab.runs", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    again = commands.add_parser(
        "rerun", help="re-run one job alone from its run, with its Keras model and figures"
    )
    again.add_argument("run_id", metavar="RUN_ID", help="the run of the job to re-run")
    mark = commands.add_parser(
        "mark-dead-killed", help="mark KILLED the RUNNING runs whose process died"
    )
    for command in (again, mark):
        command.add_argument(
            "--tracking-uri",
            help="the store, as tracking.uri (default: MLFLOW_TRACKING_URI, else "
            "sqlite:///mlflow.db)",
        )
    mark.add_argument(
        "--experiment",
        help="look in this experiment and its sweeps' own (default: every active experiment)",
    )
    mark.add_argument("--dry-run", action="store_true", help="list the runs, change nothing")
    options = parser.parse_args(arguments)
    if options.command == "rerun":
        run_command(lambda: rerun_job(options.tracking_uri, options.run_id))
    else:
        run_command(
            lambda: mark_dead_killed(options.tracking_uri, options.experiment, options.dry_run)
        )


def rerun_job(tracking_uri: str | None, run_id: str) -> None:
    """`rerun`: the job's exit status is the command's (1 when it failed, 130 or 143 when
    stopped)."""
    status = rerun.rerun(open_store(tracking_uri), run_id)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
