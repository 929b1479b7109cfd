"""The cells of a sweep's grid: each combination of the values of its keys other than the seed.

A sweep over seeds and other keys (`seed=range(100) optimizer.learning_rate=0.1,0.5`) asks how
often each setting learns: its answer is one number per cell. So each cell is an MLflow run of
its own, child of the sweep's parent and parent of its seeds' runs, and holds that number: the
Chart view over a sweep's cells (a few runs, never paged) answers at any size.
"""

import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from gatelab.tracking.naming import child_run_name, overrides_text, swept_values

CELL_TAG = "gatelab.cell"


def planned_cells(overrides: list[str], keys: list[str]) -> list[dict[str, str]]:
    """Each cell's values, in the basic sweeper's order; none when the grid cannot be listed
    (a glob of options or an interval)."""
    if not keys:
        return []
    parsed = OverridesParser.create().parse_overrides(overrides)
    by_key = {override.key_or_group: override for override in parsed}
    countable = (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.RANGE_SWEEP)
    if any(by_key[key].value_type not in countable for key in keys):
        return []
    values = [list(by_key[key].sweep_string_iterator()) for key in keys]
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*values)]


def cell_name(overrides: list[str], keys: list[str]) -> str:
    """The name of the cell a job with these overrides belongs to (`lr=0.5`)."""
    return child_run_name(swept_values(overrides, keys))


def create_cells(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    cells: list[dict[str, str]],
    *,
    params: dict[str, str],
    tags: dict[str, str],
) -> dict[str, str]:
    """Open a run per cell under the sweep's parent; return their run ids by cell name.

    Args:
        params: what every job of the sweep shares; a cell adds its own values.
        tags: the user's and the host's tags, as on the parent.
    """
    run_ids = {}
    for values in cells:
        name = child_run_name(values)
        run = client.create_run(
            experiment_id,
            run_name=name,
            tags={
                "mlflow.parentRunId": parent_run_id,
                CELL_TAG: name,
                "hydra.overrides": overrides_text(
                    [f"{key}={value}" for key, value in values.items()]
                ),
                **tags,
            },
        )
        cell_params = {**params, **values}
        client.log_batch(
            run.info.run_id, params=[Param(key, value) for key, value in cell_params.items()]
        )
        run_ids[name] = run.info.run_id
    return run_ids
