"""A vectorized sweep's job folders: Hydra's files for each job, without credentials."""

import yaml
from omegaconf import OmegaConf

from gatelab.sweeps.members import VALUE_KEYS
from gatelab.sweeps.vectorized.job_folders import JobFolders


def test_each_job_gets_its_values_and_no_password_of_the_tracking_uri(compose_config, tmp_path):
    uri = "http://alice:hunter2@mlflow.internal:5000"
    cfg = compose_config(f"tracking.uri={uri}")
    overrides = [f"tracking.uri={uri}", "seed=3", "optimizer.learning_rate=2"]
    JobFolders(cfg, VALUE_KEYS).write(
        [(tmp_path / "0", overrides, {"seed": 3, "optimizer.learning_rate": 2})]
    )
    folder = tmp_path / "0" / ".hydra"
    written = OmegaConf.load(folder / "config.yaml")
    assert (written.seed, written.optimizer.learning_rate) == (3, 2.0)
    for path in folder.iterdir():
        assert "hunter2" not in path.read_text(), path
    assert written.tracking.uri == "http://***@mlflow.internal:5000"
    assert yaml.safe_load((folder / "overrides.yaml").read_text())[1:] == overrides[1:]
