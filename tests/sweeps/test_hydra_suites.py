"""gatelab's sweepers under apps that are not gatelab's: Hydra's own sweeper and launcher suites.

The plugins are installed for every Hydra app in the environment. Hydra's
`hydra.test_utils.launcher_common_tests` run here on Hydra's test apps (`hydra.test_utils.a_module`
and its `configs`, and the scripts `integration_test` writes), as Hydra's own plugins run them
(`tests/test_basic_launcher.py`, `plugins/hydra_joblib_launcher/tests`): with the basic sweeper,
as a check of the suites themselves, and with each gatelab sweeper, which must then run the
app's jobs as the basic sweeper does.
"""

import subprocess
import sys

import pytest
from hydra._internal.core_plugins import basic_sweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.singleton import Singleton
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.version import VersionBase
from omegaconf import OmegaConf

from gatelab.errors import ConfigError
from gatelab.sweeps.foreign_apps import basic_sweeper_unless_gatelab, missing_gatelab_keys
from gatelab.sweeps.members import VALUE_KEYS
from gatelab.sweeps.vectorized.child_writing import Recorded
from gatelab.sweeps.vectorized.plan import plan_of
from gatelab.sweeps.vectorized.sweeper import VectorizedSweeperImpl

PYTHON = sys.executable
GATELAB_SWEEPERS = ["vectorized", "search"]


@pytest.fixture(autouse=True)
def no_version_base():
    """Hydra's apps as Hydra's suites run them: no `version_base` chosen yet (a job runs in its
    output folder), whatever a `compose` of an earlier test in this process chose."""
    chosen = Singleton._instances.pop(VersionBase, None)
    yield
    if chosen is not None:
        Singleton._instances[VersionBase] = chosen


@pytest.fixture(params=["basic", *GATELAB_SWEEPERS])
def sweeper(request: pytest.FixtureRequest) -> str:
    return request.param


class TestLauncher(LauncherTestSuite):
    # Fixtures, not parameters: the suite extends its `overrides` list in place.
    @pytest.fixture
    def launcher_name(self) -> str:
        return "basic"

    @pytest.fixture
    def overrides(self, sweeper: str) -> list[str]:
        return [f"hydra/sweeper={sweeper}"]


class TestBatchedSweeper(BatchedSweeperTestSuite):
    @pytest.fixture(params=["basic", "vectorized"])  # search has no max_batch_size
    def overrides(self, request: pytest.FixtureRequest) -> list[str]:
        return [f"hydra/sweeper={request.param}", "hydra.sweeper.max_batch_size=2"]

    @pytest.fixture
    def launcher_name(self) -> str:
        return "basic"


class TestIntegration(IntegrationTestSuite):
    @pytest.fixture
    def task_launcher_cfg(self) -> dict:
        return {}

    @pytest.fixture
    def extra_flags(self, sweeper: str) -> list[str]:
        return [
            "-m",
            f"hydra/sweeper={sweeper}",
            "hydra/launcher=basic",
            "hydra/hydra_logging=disabled",
            "hydra/job_logging=disabled",
        ]


FOREIGN_APP = """
import sys

import hydra


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    imported = [name for name in sys.modules if name.startswith(("tensorflow", "optuna"))]
    imported += [name for name in sys.modules if name.startswith("gatelab.sweeps.")]
    print(f"job x={cfg.x} imported={sorted(imported)}")


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("gatelab_sweeper", GATELAB_SWEEPERS)
def test_a_foreign_app_runs_its_jobs_as_with_the_basic_sweeper(tmp_path, gatelab_sweeper):
    (tmp_path / "app.py").write_text(FOREIGN_APP)
    result = subprocess.run(
        [PYTHON, "app.py", "-m", f"hydra/sweeper={gatelab_sweeper}", "+x=1,2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr
    said = [line for line in console.splitlines() if "not gatelab's" in line]
    assert len(said) == 1 and said[0].endswith(
        f"hydra/sweeper={gatelab_sweeper}: this app's config is not gatelab's (no dataset, "
        "model, optimizer, trainer, tracking, seed, tags, draws); its jobs run as with "
        "hydra/sweeper=basic"
    )
    # Neither gatelab's sweeper nor TensorFlow is imported: only the check of the config.
    jobs = [line for line in result.stdout.splitlines() if line.startswith("job ")]
    assert jobs == [
        "job x=1 imported=['gatelab.sweeps.foreign_apps']",
        "job x=2 imported=['gatelab.sweeps.foreign_apps']",
    ]
    assert "Traceback" not in console


def test_only_gatelabs_config_is_gatelabs(compose_config):
    assert missing_gatelab_keys(compose_config()) == []
    assert basic_sweeper_unless_gatelab(compose_config(), "vectorized", None) is None
    foreign = OmegaConf.create({"model": {"name": "resnet"}, "trainer": {"epochs": 3}})
    assert missing_gatelab_keys(foreign) == [
        "dataset",
        "optimizer",
        "tracking",
        "seed",
        "tags",
        "draws",
    ]
    basic = basic_sweeper_unless_gatelab(foreign, "vectorized", {"x": "1,2"}, max_batch_size=3)
    assert isinstance(basic, basic_sweeper.BasicSweeper)
    assert (basic.params, basic.max_batch_size) == ({"x": "1,2"}, 3)


class RecordingLauncher:
    """A launcher that records what it is asked to launch and returns each job's number."""

    def __init__(self):
        self.launches: list[tuple[list[list[str]], int]] = []

    def launch(self, job_overrides, initial_job_idx):
        self.launches.append((list(job_overrides), initial_job_idx))
        return [initial_job_idx + index for index in range(len(job_overrides))]


@pytest.mark.parametrize(
    ("max_batch_size", "launched"), [(None, [[0, 1, 2], [4]]), (2, [[0, 1], [2], [4]])]
)
def test_jobs_through_the_launcher_go_in_batches_of_max_batch_size(max_batch_size, launched):
    sweeper = VectorizedSweeperImpl(max_batch_size=max_batch_size)
    sweeper.launcher = launcher = RecordingLauncher()
    plan = plan_of(OverridesParser.create().parse_overrides(["seed=range(5)"]), VALUE_KEYS, 100)
    recorded = Recorded()
    returns = sweeper._launch(plan, [4, 0, 1, 2], recorded)
    assert [initial for _, initial in launcher.launches] == [batch[0] for batch in launched]
    assert [jobs for jobs, _ in launcher.launches] == [
        [[f"seed={number}"] for number in batch] for batch in launched
    ]
    assert returns == [(number, number) for batch in launched for number in batch]
    assert (recorded.trained, recorded.written) == (4, 4)


def test_max_batch_size_below_1_is_refused_in_one_line():
    with pytest.raises(ConfigError) as refused:
        VectorizedSweeperImpl(max_batch_size=0).sweep([])
    assert str(refused.value) == (
        "hydra.sweeper.max_batch_size=0 is not allowed: a number of jobs of at least 1, or "
        "null (all at once)"
    )
