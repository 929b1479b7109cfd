"""What every gatelab sweeper shares (`sweeps.sweeper`): how jobs go to Hydra's launcher."""

from gatelab.sweeps.sweeper import launch_batches


def test_launched_jobs_go_in_batches_of_consecutive_numbers():
    # A launch numbers its jobs from its first; a search's shared study leaves gaps.
    assert list(launch_batches([6, 0, 1, 2, 5], 2)) == [[0, 1], [2], [5, 6]]
    assert list(launch_batches([6, 0, 1, 2, 5], None)) == [[0, 1, 2], [5, 6]]
    assert list(launch_batches([11, 3, 4, 9, 10, 6], None)) == [[3, 4], [6], [9, 10, 11]]
    assert list(launch_batches([], None)) == []
