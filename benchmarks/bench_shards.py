"""Time a vectorized grid in 2 joblib shards against the same grid in one process (issue 28).

    python benchmarks/bench_shards.py                  # 100,000 jobs: 10,000 seeds x 10 rates
    python benchmarks/bench_shards.py --scale 10000    # 1,000 seeds x 10 rates

Both sweeps are `src/train.py -m hydra/sweeper=vectorized model=mlp dataset=xor seed=range(N)
optimizer.learning_rate=<10 rates>`, each in a fresh temporary directory with its own SQLite
store, one after the other in this run: first `hydra.sweeper.n_shards=1` (the population trains
and writes its children in the launching process), then `hydra.sweeper.n_shards=2
hydra/launcher=joblib hydra.launcher.n_jobs=2` (two worker processes each train half of the
population and write its children into the same store; the launching process keeps the parent,
the cells and the summary). Each store must hold one FINISHED parent and every job once,
FINISHED, or the script exits 1.

It prints each sweep's wall time, the CPU time of its process tree (user + system, of the
processes it waited for) and their quotient, the cores it kept busy on average: near 2 for the
one-process sweep would mean TensorFlow already uses both cores, leaving shards little to gain
on 2. Then the ratio (the issue's aim: at least 1.5x on 2 cores) and, from the sweeps' logs,
where the time went (training and writing summed over the shards, which run side by side, and
the launching process's wait for them).
The load average is printed before and after each: on 2 cores anything else shows in the numbers.
"""

import argparse
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import (  # noqa: E402  (the benchmark beside this one)
    breakdown,
    check_store,
    learning_rates,
    load,
    run_sweep,
    sweep_command,
)

SHARDED = ["hydra.sweeper.n_shards=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
PARTS = ("compile + 1st chunk", "train (all chunks)", "log children", "summary")
# The launching process's wait for its shards, from the launch to the last one's arrays merged.
SHARDS_WAIT = r"vectorized sweep timings: .*shards ([0-9.]+) s"


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(jobs: int, extra: list[str], label: str) -> tuple[float, float, dict[str, float]]:
    """One sweep of `jobs` jobs in a fresh directory and store: wall, CPU, breakdown."""
    rates = learning_rates(10)
    seeds = max(1, jobs // len(rates))
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as temporary:
        directory = Path(temporary)
        command = sweep_command(directory, seeds, rates, "basic", 1, "vectorized") + extra
        print(f"  {label}: {seeds * len(rates)} jobs ({load()}) ...", flush=True)
        cpu = children_cpu()
        seconds = run_sweep(command, directory)
        cpu = children_cpu() - cpu
        if not check_store(directory, seeds * len(rates)):
            sys.exit(1)
        parts = breakdown(directory)
        waited = re.search(SHARDS_WAIT, (directory / "sweep.log").read_text())
        parts["shards"] = float(waited.group(1)) if waited else 0.0
    return seconds, cpu, parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=int, default=100_000, help="jobs in the grid (default 100,000)"
    )
    jobs = parser.parse_args().scale
    print(f"{os.cpu_count()} cores; {load()}")
    one = timed(jobs, [], "one process")
    two = timed(jobs, SHARDED, "2 joblib shards")
    print()
    columns = (*PARTS, "shards")
    print(f"{'sweep':<16} {'seconds':>8} {'CPU s':>8} {'cores busy':>10}  " + "  ".join(columns))
    for label, (seconds, cpu, parts) in (("one process", one), ("2 joblib shards", two)):
        print(
            f"{label:<16} {seconds:>8.1f} {cpu:>8.1f} {cpu / seconds:>10.2f}  "
            + "  ".join(f"{parts[part]:>{len(part)}.2f}" for part in columns)
        )
    print(
        "(the shards' parts are summed over both shards, which run side by side; `shards` is the "
        f"launching process's wait, from the launch to the last shard's arrays merged; {load()})"
    )
    ratio = one[0] / two[0]
    verdict = "met" if ratio >= 1.5 else "not met"
    print(f"ratio at {jobs} jobs: 2 joblib shards are {ratio:.2f}x one process ({verdict}: 1.5x)")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    sys.exit(status)
