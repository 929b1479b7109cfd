"""The cells of a sweep's grid: planned from the overrides, named as their jobs are."""

from pathlib import Path

from gatelab.sweeps.cells import cell_name, planned_cells
from gatelab.sweeps.sweep_folder import Sweep
from gatelab.sweeps.sweep_run import sweep_experiment


def test_the_cells_are_each_combination_of_the_values_other_than_the_seed():
    overrides = ["seed=range(3)", "optimizer.learning_rate=0.1,0.5", "optimizer.momentum=0,0.9"]
    keys = ["optimizer.learning_rate", "optimizer.momentum"]
    assert planned_cells(overrides, keys) == [
        {"optimizer.learning_rate": "0.1", "optimizer.momentum": "0"},
        {"optimizer.learning_rate": "0.1", "optimizer.momentum": "0.9"},
        {"optimizer.learning_rate": "0.5", "optimizer.momentum": "0"},
        {"optimizer.learning_rate": "0.5", "optimizer.momentum": "0.9"},
    ]
    assert planned_cells(overrides, []) == []
    # An interval is for a search, not a grid: no cells.
    assert (
        planned_cells(["seed=range(3)", "optimizer.learning_rate=interval(0.1,1)"], keys[:1]) == []
    )


def test_a_job_finds_its_cells_run_by_the_cell_name_of_its_overrides():
    job = ["seed=2", "optimizer.learning_rate=0.5", "trainer.epochs=30"]
    assert cell_name(job, ["optimizer.learning_rate"]) == "lr=0.5"
    sweep = Sweep("parent", "7", ["seed", "optimizer.learning_rate"], {"lr=0.5": "cell-b"})
    assert sweep.parent_of(job) == "cell-b"
    made = sweep.job(job, {"dataset": "xor"}, Path("out/2"), 2)
    assert (made.parent_run_id, made.sweep_run_id, made.experiment_id) == ("cell-b", "parent", "7")
    # A sweep of seeds alone has no cells: its jobs are the parent's children.
    alone = Sweep("parent", "7", ["seed"], {})
    assert alone.parent_of(["seed=2"]) == "parent"


def test_a_sweep_larger_than_a_page_of_the_runs_table_gets_an_experiment_of_its_own():
    folder = Path("multirun/2026-12-03/18-50-01")
    assert sweep_experiment("gatelab", folder, 100, 100) == "gatelab"
    assert sweep_experiment("gatelab", folder, 101, 100) == "gatelab sweep 2026-12-03 18-50-01"
    # Uncountable (a glob of options) or no limit: the experiment itself.
    assert sweep_experiment("gatelab", folder, None, 100) == "gatelab"
    assert sweep_experiment("gatelab", folder, 10_000, None) == "gatelab"
