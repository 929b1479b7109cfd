"""How a search's batch of trials is launched when its jobs go through Hydra's launcher."""

from types import SimpleNamespace

from gatelab.sweeps.search.sweeper import consecutive_runs


def test_a_batch_is_launched_in_runs_of_consecutive_trial_numbers():
    # A shared study leaves gaps where another sweep asked; a job's number is its trial's.
    trials = [SimpleNamespace(number=number) for number in (6, 3, 4, 9, 10, 11)]
    runs = [[trial.number for trial in run] for run in consecutive_runs(trials)]
    assert runs == [[3, 4], [6], [9, 10, 11]]
