"""The cells of a sweep's grid: planned from the overrides, named as their jobs are."""

from pathlib import Path

from gatelab.sweeps.cells import cell_name, planned_cells
from gatelab.sweeps.own_experiment import sweep_experiment
from gatelab.sweeps.sweep_folder import Sweep


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
    swept = ["seed", "optimizer.learning_rate"]
    assert sweep_experiment("gatelab", folder, swept, 100, 100) == "gatelab"
    # Its name says what was swept and how many jobs; the folder's time makes it unique.
    assert (
        sweep_experiment("gatelab", folder, swept, 101, 100)
        == "gatelab sweep seed x lr (101 jobs) 2026-12-03 18-50-01"
    )
    # Uncountable (a glob of options) or no limit: the experiment itself.
    assert sweep_experiment("gatelab", folder, swept, None, 100) == "gatelab"
    assert sweep_experiment("gatelab", folder, swept, 10_000, None) == "gatelab"
    # However many keys are swept, the name fits MLflow's limit and keeps its time.
    many = [f"model.key_{number}" for number in range(60)]
    long = sweep_experiment("gatelab", folder, many, 10_000, 100)
    assert len(long) <= 256 and long.endswith(" 2026-12-03 18-50-01")
