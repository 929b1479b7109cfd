"""How fast does a vectorized sweep stopped by SIGTERM while it writes its children end, and does
what it says it recorded agree with its store (issue 26 item 6)?

    python benchmarks/bench_stop.py                      # 2,000 jobs, 100 a transaction
    python benchmarks/bench_stop.py --jobs 600 --batch 20 --after 200   # a quicker look

Runs `src/train.py -m hydra/sweeper=vectorized seed=range(JOBS)` (300 epochs) in a fresh
temporary folder with its own SQLite store, waits until the store holds `--after` runs (the
parent, its cell and the first children: the sweep is writing), sends SIGTERM to the process and
then times, from the signal: the parent run's end (KILLED, read from the store as it changes)
and the process's exit. It prints the console's `stopped: N of JOBS jobs recorded` lines, the
job runs the store holds and whether they agree. The target: exit within 3 s of the signal,
the parent KILLED, one count equal to the store's. The load average is printed before and
after: on 2 cores, anything else running shows in the numbers.
"""

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPOSITORY / "src" / "train.py"
PARENT_STATUS = (
    "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
    "WHERE t.key = 'sweep.params'"
)
JOB_RUNS = "SELECT count(*) FROM tags WHERE key = 'hydra.job.num'"
RUNS = "SELECT count(*) FROM runs"


def query(database: Path, sql: str) -> list[tuple]:
    """The rows of `sql` on the store, read alongside its writer; none before it exists."""
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="runs_per_transaction")
    parser.add_argument("--after", type=int, default=300, help="runs in the store at the signal")
    parser.add_argument("--log", action="store_true", help="print the sweep's console")
    arguments = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        database = directory / "mlflow.db"
        command = [
            sys.executable,
            str(TRAIN_SCRIPT),
            "-m",
            "hydra/sweeper=vectorized",
            f"seed=range({arguments.jobs})",
            "trainer.epochs=300",
            "trainer.print_every=0",
            f"hydra.sweeper.runs_per_transaction={arguments.batch}",
            f"tracking.uri=sqlite:///{database}",
        ]
        log_path = directory / "sweep.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                command, cwd=directory, stdout=log_file, stderr=subprocess.STDOUT
            )
            while (query(database, RUNS) or [(0,)])[0][0] < arguments.after:
                if process.poll() is not None:
                    sys.exit(f"the sweep ended before it wrote {arguments.after} runs")
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            signalled = time.perf_counter()
            parent_killed = None
            while process.poll() is None:
                if parent_killed is None and query(database, PARENT_STATUS) == [("KILLED",)]:
                    parent_killed = time.perf_counter() - signalled
                time.sleep(0.02)
            exited = time.perf_counter() - signalled
        if parent_killed is None and query(database, PARENT_STATUS) == [("KILLED",)]:
            parent_killed = exited
        output = log_path.read_text()
        said = [int(count) for count in re.findall(r"stopped: (\d+) of", output)]
        stored = query(database, JOB_RUNS)[0][0]
    if arguments.log:
        print(output)
    killed = f"{parent_killed:.1f} s" if parent_killed is not None else "never"
    print(
        f"exit status {process.returncode}; parent KILLED after {killed}; exit after {exited:.1f} s"
    )
    print(f"the console's counts {said}; job runs in the store {stored}")
    agree = bool(said) and set(said) == {stored}
    print(f"counts agree: {agree}; exit within 3 s: {exited <= 3}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if not agree or process.returncode != 128 + signal.SIGTERM:
        print(output[-4000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
