"""Write a vectorized sweep's children with MLflow's client and with the SQL bulk writer, in one
process, and print each one's time per child and their ratio.

    python benchmarks/bench_bulk.py                  # 1,000 children per writer
    python benchmarks/bench_bulk.py --children 200

The children are `bench_child_logging.py`'s (a 2-2-1 MLP on XOR, the sweeper's 50 loss points),
written into two fresh stores prepared as gatelab prepares them (write-ahead log): by
`writer.write_all` in this process alone (the baseline: MLflow's `create_run`, `log_batch`,
`log_inputs`, `set_terminated`) and by `bulk.BulkWriter` (`bulk.BATCH` runs a transaction).
Issue 17 asks for the bulk writer to be at least 8x the client, and at most 3 ms a child.
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk, writer
from gatelab.tracking.experiment import configure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_child_logging import Children  # noqa: E402

MAX_LOSS_POINTS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=1000, help="runs per writer")
    arguments = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    print(f"load average {os.getloadavg()[0]:.2f}, {arguments.children} children per writer")
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)
        children = Children(Path(directory))
        seconds = {}
        for name in ("MLflow client", "SQL bulk"):
            uri = f"sqlite:///{Path(directory) / name.replace(' ', '-')}.db"
            experiment_id = configure(uri, "bench")
            parent = MlflowClient(uri).create_run(experiment_id, run_name="sweep").info.run_id
            wanted = [
                children.record(number, parent, MAX_LOSS_POINTS)
                for number in range(arguments.children)
            ]
            started = time.perf_counter()
            if name == "SQL bulk":
                assert bulk.unsupported_reason(uri) is None, bulk.unsupported_reason(uri)
                engine = bulk._store(uri).engine
                bulk.BulkWriter(engine, experiment_id).write_all(wanted)
            else:
                writer.write_all(experiment_id, wanted, writers=1)
            seconds[name] = time.perf_counter() - started
            written = len(MlflowClient(uri).search_runs([experiment_id], max_results=50000))
            assert written == arguments.children + 1, written
            print(
                f"{name:<14} {seconds[name]:>7.2f} s  "
                f"{1000 * seconds[name] / arguments.children:>6.2f} ms/child"
            )
        ratio = seconds["MLflow client"] / seconds["SQL bulk"]
        print(f"bulk / client: {ratio:.1f}x faster")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
