"""A vectorized sweep's jobs train the values their labels name, whatever the sweep's grammar."""

import pytest
import yaml

from tests.helpers import run_train, runs_of


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_uri")
def test_shuffled_and_quoted_values_are_what_each_job_trains_and_says(tmp_path):
    result = run_train(
        tmp_path,
        "-m",
        "hydra/sweeper=vectorized",
        "seed=shuffle(range(4))",
        # Quoted (a shuffle's arguments lose their quotes: they are labelled as plain values).
        "optimizer.learning_rate='0.5',1.0",
        "trainer.epochs=20",
        "trainer.print_every=0",
    )
    assert result.returncode == 0, result.stderr
    _, _, children = runs_of(tmp_path)
    assert len(children) == 8
    (sweep_dir,) = tmp_path.glob("multirun/*/*")
    labelled, rate_labels = set(), set()
    for child in children:
        assert child.info.status == "FINISHED"
        overrides = child.data.tags["hydra.overrides"].split(" ")
        folder = sweep_dir / child.data.tags["hydra.job.num"] / ".hydra"
        assert yaml.safe_load((folder / "overrides.yaml").read_text()) == overrides
        named = dict(override.split("=", 1) for override in overrides)
        seed, learning_rate = int(named["seed"]), float(named["optimizer.learning_rate"].strip("'"))
        # The params are the member's values, as it trained them; the config is the job's.
        params = child.data.params
        assert (params["seed"], params["optimizer.learning_rate"]) == (
            str(seed),
            str(learning_rate),
        )
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert (config["seed"], config["optimizer"]["learning_rate"]) == (seed, learning_rate)
        labelled.add((seed, learning_rate))
        rate_labels.add(named["optimizer.learning_rate"])
    assert labelled == {(seed, rate) for seed in range(4) for rate in (0.5, 1.0)}
    assert rate_labels == {"'0.5'", "1.0"}  # the quoted value keeps its quotes as its label
