"""Time the chapter's XOR run with Keras `model.fit` against `gatelab.engine.single.train`.

    python benchmarks/bench_train.py                # 2000 epochs, 20 repeats of ours
    python benchmarks/bench_train.py --epochs 200 --repeats 5

Both train the same 2-2-1 sigmoid MLP from the same initial weights with SGD(0.1), MSE,
batch size 1 and no shuffling, in one process. Expect `fit` to take 30-70 s on a 2-core CPU;
our first call pays tracing and XLA compilation (under a second), and the repeats after it,
which are what each job of a sweep pays, should be at least 1000x faster than `fit` with XLA.
The two must agree on final weights and per-epoch loss within 1e-4 (typically about 1e-6), or
the script exits with status 1; the speed-up target is reported, not enforced.
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

import gatelab.engine.backend  # noqa: F401  (first, so TensorFlow's start-up lines stay hidden)

# isort: split
import keras
import numpy as np

from gatelab.data import truth_table
from gatelab.engine import single
from gatelab.engine.models import build_mlp
from gatelab.engine.schedule import Schedule

SEED = 126
LEARNING_RATE = 0.1
TOLERANCE = 1e-4
TARGET_SPEEDUP = 1000.0


@dataclass(frozen=True)
class Run:
    """One timed training run: wall time, per-epoch loss and final weights."""

    seconds: float
    loss: np.ndarray
    weights: list[np.ndarray]


def fit_with_keras(
    model: keras.Model, initial_weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int
) -> Run:
    """The baseline: the chapter's `model.fit`, timed from the call to its return."""
    model.set_weights(initial_weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE), loss="mse")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    return Run(seconds, np.asarray(history.history["loss"]), model.get_weights())


def train_with_gatelab(
    model: keras.Model,
    initial_weights: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    jit_compile: bool,
) -> Run:
    """Our engine on the same run, with a fresh optimizer as each job of a sweep has."""
    model.set_weights(initial_weights)
    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
    schedule = Schedule(
        loss="mse", epochs=epochs, batch_size=1, shuffle=False, jit_compile=jit_compile
    )
    start = time.perf_counter()
    history = single.train(model, optimizer, x, y, schedule, seed=0)
    seconds = time.perf_counter() - start
    return Run(seconds, history.loss, model.get_weights())


def max_differences(baseline: Run, run: Run) -> tuple[float, float]:
    """Largest absolute difference of final weights and of per-epoch loss between two runs."""
    weight_difference = max(
        float(np.max(np.abs(ours - theirs)))
        for ours, theirs in zip(run.weights, baseline.weights, strict=True)
    )
    if run.loss.shape != baseline.loss.shape:
        return weight_difference, float("inf")
    return weight_difference, float(np.max(np.abs(run.loss - baseline.loss)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000, help="epochs per run (default 2000)")
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed runs of ours after the first (default 20)"
    )
    args = parser.parse_args()
    if args.epochs < 1 or args.repeats < 1:
        parser.error(
            f"--epochs and --repeats must be at least 1, got --epochs {args.epochs} "
            f"--repeats {args.repeats}"
        )

    keras.utils.set_random_seed(SEED)
    x, y = truth_table("xor", 2)
    model = build_mlp(n_inputs=2, hidden_units=[2])
    initial_weights = model.get_weights()

    print(
        f"XOR, 2-2-1 MLP ({model.count_params()} params), SGD({LEARNING_RATE}), mse, "
        f"{args.epochs} epochs x {len(x)} steps, batch_size 1, shuffle False"
    )
    load = "load {:.1f} {:.1f} {:.1f} (1, 5, 15 min)".format(*os.getloadavg())
    print(f"Running model.fit once ({load}) ...", flush=True)
    fit = fit_with_keras(model, initial_weights, x, y, args.epochs)

    rows: list[tuple[str, float]] = [("keras model.fit", fit.seconds)]
    final_runs: dict[str, Run] = {}
    steady_state_medians: dict[str, float] = {}
    for jit_compile, label, first_call_cost in (
        (True, "XLA", "tracing + XLA compile"),
        (False, "tf.function", "tracing"),
    ):
        print(f"Running gatelab train ({label}) 1 + {args.repeats} times ...", flush=True)
        first_call = train_with_gatelab(model, initial_weights, x, y, args.epochs, jit_compile)
        repeats = [
            train_with_gatelab(model, initial_weights, x, y, args.epochs, jit_compile)
            for _ in range(args.repeats)
        ]
        repeat_seconds = [run.seconds for run in repeats]
        steady_state_medians[label] = statistics.median(repeat_seconds)
        rows += [
            (f"gatelab {label}, first call (includes {first_call_cost})", first_call.seconds),
            (
                f"gatelab {label}, steady state, median of {args.repeats}",
                steady_state_medians[label],
            ),
            (f"gatelab {label}, steady state, best of {args.repeats}", min(repeat_seconds)),
        ]
        final_runs[label] = repeats[-1]

    print()
    method_width = max(len(method) for method, _ in rows)
    print(f"{'method':<{method_width}}  {'seconds':>10}  {'speed-up vs fit':>15}")
    for method, seconds in rows:
        print(f"{method:<{method_width}}  {seconds:>10.4f}  {fit.seconds / seconds:>14.1f}x")
    print(f"functions traced in this process: {single.tracing_count()} (one per jit_compile)")

    xla_speedup = fit.seconds / steady_state_medians["XLA"]
    verdict = "met" if xla_speedup >= TARGET_SPEEDUP else "not met"
    print(
        f"target: XLA steady state (median) at least {TARGET_SPEEDUP:.0f}x faster than fit: "
        f"{xla_speedup:.0f}x, {verdict}"
    )

    print()
    agree = True
    for label, run in final_runs.items():
        weight_difference, loss_difference = max_differences(fit, run)
        # Written as two comparisons so that a NaN difference fails the check.
        agree = agree and weight_difference <= TOLERANCE and loss_difference <= TOLERANCE
        print(
            f"gatelab {label} vs fit: max |weight difference| {weight_difference:.2e}, "
            f"max |epoch loss difference| {loss_difference:.2e}"
        )
    if not agree:
        print(f"FAILED: a difference exceeds the tolerance {TOLERANCE:.0e}", file=sys.stderr)
        return 1
    print(f"correctness: all differences within {TOLERANCE:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
