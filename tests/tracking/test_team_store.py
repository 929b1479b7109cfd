"""A team's store: an `mlflow server` on PostgreSQL, proxying artifacts, written by many at once.

The test starts its own throwaway PostgreSQL cluster (fixture `postgres_uri`, `.ci/run` installs
Debian's `postgresql` when `initdb` is missing) and fails, not skips, when there is none.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import (
    assert_sweep_arrived,
    mlflow_server,
    run_train,
    run_trains_together,
    sweeps_in,
)

pytestmark = pytest.mark.slow

EPOCHS = 20
QUICK = [f"trainer.epochs={EPOCHS}", "trainer.print_every=0"]


@dataclass(frozen=True)
class TeamServer:
    uri: str
    artifacts: Path


@pytest.fixture(scope="module")
def team_server(
    postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamServer]:
    """`mlflow server --backend-store-uri postgresql://... --serve-artifacts`, as a team runs it."""
    directory = tmp_path_factory.mktemp("team_server")
    with mlflow_server(directory, postgres_uri) as uri:
        yield TeamServer(uri, directory / "artifacts")


def assert_artifacts_went_through_the_server(
    server: TeamServer, client: MlflowClient, run_ids: list[str], workdir: Path
) -> None:
    """Every run's files are in the server's artifact folder, none beside the job."""
    for run_id in run_ids:
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
        assert list(server.artifacts.glob(f"*/{run_id}/artifacts/weights.json"))
    assert not (workdir / "mlruns").exists()
    assert not (workdir / "mlflow.db").exists()


def test_a_two_worker_joblib_sweep_lands_whole_on_a_postgresql_server(team_server, tmp_path):
    seeds = [1, 2, 3, 4]
    result = run_train(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"seed={','.join(map(str, seeds))}",
        f"tracking.uri={team_server.uri}",
        "tracking.experiment=joblib",
        *QUICK,
        tracking_uri=None,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(team_server.uri)
    ((parent_id, children),) = sweeps_in(client, "joblib").items()
    assert_sweep_arrived(client, parent_id, children, seeds, EPOCHS)
    run_ids = [child.info.run_id for child in children]
    assert_artifacts_went_through_the_server(team_server, client, run_ids, tmp_path)


def test_two_sweeps_at_once_land_whole_on_a_postgresql_server(team_server, tmp_path):
    # Started together into an experiment that does not exist yet: both create it.
    seeds_by_sweep = {"a": [1, 2, 3], "b": [4, 5, 6]}
    results = run_trains_together(
        tmp_path,
        *(
            [
                "-m",
                f"seed={','.join(map(str, seeds))}",
                f"hydra.sweep.dir=multirun/{name}",
                f"tracking.uri={team_server.uri}",
                "tracking.experiment=together",
                *QUICK,
            ]
            for name, seeds in seeds_by_sweep.items()
        ),
        tracking_uri=None,
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(team_server.uri)
    sweeps = sweeps_in(client, "together")
    top_level = [client.get_run(run_id).info.run_name for run_id in sweeps]
    consoles = "\n".join(result.stderr[-2000:] for result in results)
    assert len(sweeps) == 2, f"two sweeps, but these top-level runs: {top_level}\n{consoles}"
    landed = {}
    for parent_id, children in sweeps.items():
        seeds = sorted(int(child.data.params["seed"]) for child in children)
        assert seeds in seeds_by_sweep.values()
        landed[tuple(seeds)] = parent_id
        assert_sweep_arrived(client, parent_id, children, seeds, EPOCHS)
        assert_artifacts_went_through_the_server(
            team_server, client, [child.info.run_id for child in children], tmp_path
        )
    assert len(landed) == 2
