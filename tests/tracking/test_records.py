"""One definition of a job's run: what both sweepers and a single run record, and its metric."""

import numpy as np
import pytest

from gatelab.tracking.records import loss_points, loss_steps


@pytest.mark.parametrize(
    ("epochs", "epochs_run", "max_points", "steps"),
    [
        (2000, 2000, 1000, list(range(2, 2001, 2))),
        (10, 10, 3, [4, 8, 10]),
        # Diverged at epoch 7: the last epoch run is always a point.
        (10, 7, 3, [4, 7]),
        (10, 10, 0, [10]),
        (5, 5, 1000, [1, 2, 3, 4, 5]),
    ],
)
def test_the_loss_metric_takes_every_stride_th_epoch_and_the_last(
    epochs, epochs_run, max_points, steps
):
    assert loss_steps(epochs, epochs_run, max_points).tolist() == steps


def test_the_loss_metric_never_exceeds_max_loss_points():
    for epochs in (1, 2, 999, 1000, 1001, 2_500_000):
        for max_points in (1, 3, 1000):
            for epochs_run in {1, epochs // 2 or 1, epochs - 1 or 1, epochs}:
                steps = loss_steps(epochs, epochs_run, max_points)
                assert len(steps) <= max_points
                assert steps[-1] == epochs_run
                assert np.all(np.diff(steps) > 0)


def test_a_diverged_run_s_loss_metric_ends_at_its_last_finite_loss():
    loss = np.array([0.5, 0.4, 3.0, np.inf])
    assert loss_points(loss, epochs=10, max_points=1000) == [(1, 0.5), (2, 0.4), (3, 3.0)]
    assert loss_points(np.array([np.nan]), epochs=10, max_points=1000) == []
