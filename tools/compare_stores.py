"""Compare two MLflow stores run by run: what a change of code changed in what is tracked.

python tools/compare_stores.py before/mlflow.db after/mlflow.db

Runs are matched by name and parent (a sweep's children by their parent's name); ids, times,
process ids, paths and git commits are compared only by being there or not, and a tag holding the
id of a run of the same store (`gatelab.sweep`, `gatelab.search`) by the run it names. Prints each
difference (params, tags, metric values, metric steps, artifacts, status) and exits 1 if there is
any. Made to check that a refactoring changed nothing a user sees (issue 13: the same runs,
params, tags, metrics and artifacts before and after the move into sub-packages; issue 25: the
three sweepers on one sweep core).
"""

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

# Tags whose value differs from one run of the same command to the next: compared as present or not.
VOLATILE_TAGS = {
    "mlflow.source.name",
    "mlflow.source.git.commit",
    "mlflow.source.git.branch",
    "mlflow.parentRunId",
    "mlflow.log-model.history",
    "gatelab.pid",
    "gatelab.host",
    "hydra.output_dir",
    "sweep.dir",
    "mlflow.note.content",
    "sweep.command",
}


def describe(uri: str, experiment: str) -> dict[str, dict[str, Any]]:
    """Every run of `experiment`, keyed by `parent name / run name`."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=50000)
    # A sweep by its name and folder (`hydra.sweep.dir`'s last part): two sweeps may share a name.
    names = {
        run.info.run_id: f"{run.info.run_name} [{Path(run.data.tags.get('sweep.dir', '')).name}]"
        for run in runs
    }
    described = {}
    for run in runs:
        parent = names.get(run.data.tags.get("mlflow.parentRunId", ""), "")
        key = f"{parent} / {names[run.info.run_id]}"
        metrics = {
            name: [(point.step, _rounded(point.value)) for point in _history(client, run, name)]
            for name in run.data.metrics
        }
        described[key] = {
            "status": run.info.status,
            "params": run.data.params,
            "tags": {
                name: _comparable(name, value, names) for name, value in run.data.tags.items()
            },
            "metrics": metrics,
            "artifacts": sorted(
                artifact.path for artifact in client.list_artifacts(run.info.run_id)
            ),
            "datasets": sorted(
                dataset.dataset.name
                for dataset in (run.inputs.dataset_inputs if run.inputs else [])
            ),
        }
    return described


def _comparable(name: str, value: str, names: dict[str, str]) -> str:
    """A tag's value as two stores can agree on it: a run id as its run's name, a volatile value
    as a mark that it is there."""
    if name in VOLATILE_TAGS:
        return "(varies)"
    return f"run {names[value]}" if value in names else value


def _history(client: MlflowClient, run: Any, name: str) -> list[Any]:
    return sorted(client.get_metric_history(run.info.run_id, name), key=lambda point: point.step)


def _rounded(value: float) -> float:
    return value if not math.isfinite(value) else float(f"{value:.5g}")


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            found.append(f"only before: {key}")
            continue
        if key not in before:
            found.append(f"only after: {key}")
            continue
        for part in before[key]:
            old, new = before[key][part], after[key][part]
            if old == new:
                continue
            if isinstance(old, dict):
                for name in sorted(set(old) | set(new)):
                    was, now = _short(old.get(name)), _short(new.get(name))
                    if was != now:
                        found.append(f"{key}: {part} {name}: {was} -> {now}")
            else:
                found.append(f"{key}: {part}: {_short(old)} -> {_short(new)}")
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:140] + f"... ({len(text)} characters)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the first store's SQLite file")
    parser.add_argument("after", help="the second store's SQLite file")
    parser.add_argument("--experiment", default="gatelab")
    options = parser.parse_args()
    before = describe(f"sqlite:///{options.before}", options.experiment)
    after = describe(f"sqlite:///{options.after}", options.experiment)
    found = differences(before, after)
    for line in found:
        print(line)
    print(f"{len(before)} runs before, {len(after)} after, {len(found)} difference(s)")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
