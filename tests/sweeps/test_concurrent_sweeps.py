"""Two sweeps started together in a new folder share its local SQLite store and both land whole."""

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import assert_sweep_arrived, run_trains_together, sweeps_in

pytestmark = pytest.mark.slow

EPOCHS = 20
QUICK = [f"trainer.epochs={EPOCHS}", "trainer.print_every=0"]


def test_two_sweeps_started_together_on_a_new_sqlite_store_both_land_whole(tmp_path):
    # Nothing exists yet: both create the store (its tables) and the experiment at the same time.
    seeds_by_sweep = {"a": [1, 2, 3], "b": [4, 5, 6]}
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = run_trains_together(
        tmp_path,
        *(
            ["-m", f"seed={','.join(map(str, seeds))}", f"hydra.sweep.dir=multirun/{name}", *QUICK]
            for name, seeds in seeds_by_sweep.items()
        ),
        tracking_uri=store,
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(store)
    sweeps = sweeps_in(client)
    top_level = [client.get_run(run_id).info.run_name for run_id in sweeps]
    assert len(sweeps) == 2, f"two sweeps, but these top-level runs: {top_level}"
    landed = set()
    for parent_id, children in sweeps.items():
        seeds = sorted(int(child.data.params["seed"]) for child in children)
        assert seeds in seeds_by_sweep.values()
        landed.add(tuple(seeds))
        assert_sweep_arrived(client, parent_id, children, seeds, EPOCHS)
    assert len(landed) == 2
