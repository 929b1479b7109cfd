"""Housekeeping of a store's runs.

python -m gatelab.runs mark-dead-killed [--tracking-uri URI] [--experiment NAME] [--dry-run]

marks KILLED the RUNNING runs whose process is gone: a process killed outright (SIGKILL, the
out-of-memory killer, a crashed node) cannot end its run, which stays RUNNING for good. A run
records the host and the process that run it (tags `gatelab.host`, `gatelab.pid`); only runs of
this host whose process no longer exists are marked, so live runs are never touched.
"""

import argparse
import sys

import mlflow
from mlflow.tracking import MlflowClient

from gatelab.errors import StoreError
from gatelab.redaction import redact
from gatelab.tracking import store


def mark_dead_killed(tracking_uri: str | None, experiment: str, dry_run: bool) -> int:
    """Mark KILLED the RUNNING runs of `experiment` whose process is dead; return how many."""
    store.check(tracking_uri)
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        print(f"no experiment {experiment!r} in {redact(client.tracking_uri)}")
        return 0
    dead = store.dead_runs(client, [found.experiment_id])
    for run in dead:
        if not dry_run:
            store.mark_killed(client, run)
        action = "would mark" if dry_run else "marked"
        pid = run.data.tags[store.PID_TAG]
        print(
            f"{action} KILLED: run {run.info.run_id} ({run.info.run_name}), process {pid} is gone"
        )
    print(f"{len(dead)} run(s) left RUNNING by a dead process on this host")
    return len(dead)


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gatelab.runs", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mark = commands.add_parser(
        "mark-dead-killed", help="mark KILLED the RUNNING runs whose process died"
    )
    mark.add_argument(
        "--tracking-uri",
        help="the store, as tracking.uri (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    mark.add_argument("--experiment", default="gatelab", help="experiment name (default: gatelab)")
    mark.add_argument("--dry-run", action="store_true", help="list the runs, change nothing")
    options = parser.parse_args(arguments)
    try:
        mark_dead_killed(options.tracking_uri, options.experiment, options.dry_run)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
