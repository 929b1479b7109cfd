"""The population engine: every member is the run `single.train` makes alone for its values."""

import numpy as np
import pytest

from gatelab.data import truth_table
from gatelab.engine import population, single
from gatelab.engine.backend import keras
from gatelab.engine.batching import EpochOrders, epoch_orders
from gatelab.engine.models import build_mlp, build_perceptron, initializer
from gatelab.engine.population import Member
from gatelab.engine.schedule import Schedule

XOR = truth_table("xor", 2)
AND = truth_table("and", 2)


def built_alone(builder, seed: int) -> keras.Model:
    """The model as `pipeline.run` builds it for `seed`."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    return builder()


def train_alone(builder, member: Member, dataset, **trainer) -> tuple[list, object]:
    model = built_alone(builder, member.seed)
    initial = [weight.numpy() for weight in model.weights]
    optimizer = keras.optimizers.SGD(
        member.learning_rate, momentum=member.momentum, nesterov=trainer.pop("nesterov", False)
    )
    history = single.train(model, optimizer, *dataset, Schedule(**trainer), seed=member.seed)
    return initial, history


def with_initializers() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(
                3, "tanh", kernel_initializer="random_normal", bias_initializer="random_uniform"
            ),
            keras.layers.Dense(1, "sigmoid", kernel_initializer="he_uniform"),
        ]
    )


@pytest.mark.parametrize(
    "builder",
    [
        lambda: build_mlp(2, [2]),
        lambda: build_mlp(3, [4, 3], activation="tanh"),
        lambda: build_perceptron(2, use_bias=False),
        with_initializers,
    ],
    ids=["mlp", "deeper_mlp", "perceptron_no_bias", "random_normal_and_uniform"],
)
def test_initial_weights_are_bit_identical_to_the_model_built_for_each_seed(builder):
    seeds = [0, 1, 7, 126, 2**32 - 1]
    template = built_alone(builder, 3)
    stacked = population.initial_weights(template, seeds)
    for index, seed in enumerate(seeds):
        alone = built_alone(builder, seed).weights
        assert len(alone) == len(stacked)
        for weight, values in zip(alone, stacked, strict=True):
            np.testing.assert_array_equal(values[index], weight.numpy())
    # Different seeds do draw different weights.
    assert not np.array_equal(stacked[0][0], stacked[0][1])


def test_a_second_population_draws_its_seeds_weights_without_tracing_the_draw_again():
    # A search trains a population per batch of trials: each batch's draw reuses the first's.
    template = built_alone(lambda: build_mlp(2, [2]), 3)
    first = population.initial_weights(template, [0, 1])
    drawings = list(population._DRAWINGS.values())
    traced = [drawing.experimental_get_tracing_count() for drawing in drawings]
    second = population.initial_weights(template, [1, 5, 9])
    assert [drawing.experimental_get_tracing_count() for drawing in drawings] == traced
    for index, seed in [(1, 5), (2, 9)]:
        alone = built_alone(lambda: build_mlp(2, [2]), seed).weights
        for weight, values in zip(alone, second, strict=True):
            np.testing.assert_array_equal(values[index], weight.numpy())
    for weight_first, weight_second in zip(first, second, strict=True):
        np.testing.assert_array_equal(weight_first[1], weight_second[0])  # seed 1 in both


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("takes", [[10], [1, 2, 7], [3, 3, 3, 1]])
def test_row_orders_taken_a_few_epochs_at_a_time_are_the_single_runs_orders(shuffle, takes):
    seeds = [0, 5, 126]
    orders_of = EpochOrders(seeds, 4, shuffle)
    orders = np.concatenate([orders_of.take(epochs) for epochs in takes], axis=1)
    for index, seed in enumerate(seeds):
        np.testing.assert_array_equal(orders[index], epoch_orders(4, 10, shuffle, seed))


def same_final_loss(together: float, alone: float) -> bool:
    """Within 1e-5, or both not finite (a diverged run's last loss is inf or NaN)."""
    if not np.isfinite(alone):
        return not np.isfinite(together)
    return abs(together - alone) <= 1e-5


def assert_members_match_their_single_runs(builder, members, dataset, *, at_least=1.0, **trainer):
    template = built_alone(builder, 0)
    optimizer = keras.optimizers.SGD(0.1, nesterov=trainer.get("nesterov", False))
    engine_trainer = {key: value for key, value in trainer.items() if key != "nesterov"}
    result = population.train_population(
        template, optimizer, members, *dataset, Schedule(**engine_trainer)
    )
    initial = population.initial_weights(template, [member.seed for member in members])
    agreeing = 0
    outcomes = set()
    for index, member in enumerate(members):
        weights_alone, alone = train_alone(builder, member, dataset, **trainer)
        for values, weight in zip(initial, weights_alone, strict=True):
            np.testing.assert_array_equal(values[index], weight)
        together = result.member(index)
        outcomes.add(alone.epochs_to_solve is not None)
        agreeing += (
            len(together.loss) == len(alone.loss)
            and same_final_loss(float(together.loss[-1]), float(alone.loss[-1]))
            and together.epochs_to_solve == alone.epochs_to_solve
            and bool(together.solved[-1]) == bool(alone.solved[-1])
        )
    assert agreeing >= at_least * len(members)
    return outcomes


def test_four_seeds_at_two_rates_match_their_single_runs_exactly():
    members = [Member(seed, rate) for seed in range(4) for rate in (0.1, 1.0)]
    outcomes = assert_members_match_their_single_runs(
        lambda: build_mlp(2, [2]), members, XOR, loss="mse", epochs=2000, batch_size=1, shuffle=True
    )
    # Some members solve XOR and some do not: the comparison covers both.
    assert outcomes == {True, False}


@pytest.mark.slow
def test_at_least_99_of_100_members_match_their_single_runs():
    rates = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
    members = [Member(seed, rate) for seed in range(10) for rate in rates]
    assert_members_match_their_single_runs(
        lambda: build_mlp(2, [2]),
        members,
        XOR,
        at_least=0.99,
        loss="mse",
        epochs=2000,
        batch_size=1,
        shuffle=True,
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_members_match_single_runs_with_that_momentum(nesterov):
    members = [Member(1, 0.1, 0.9), Member(2, 0.5, 0.5), Member(3, 0.3, 0.0)]
    assert_members_match_their_single_runs(
        lambda: build_mlp(2, [2]),
        members,
        XOR,
        loss="mse",
        epochs=300,
        batch_size=1,
        shuffle=True,
        nesterov=nesterov,
    )


def test_batches_with_a_short_last_batch_and_binary_crossentropy_match():
    members = [Member(seed, 0.5) for seed in range(3)]
    assert_members_match_their_single_runs(
        lambda: build_perceptron(2),
        members,
        AND,
        loss="binary_crossentropy",
        epochs=200,
        batch_size=3,
        shuffle=True,
    )


def test_a_diverged_member_stops_alone_as_its_single_run_does():
    # A linear unit at a huge rate overflows within a few epochs; the other member trains on.
    linear = lambda: build_perceptron(2, activation="linear")  # noqa: E731
    members = [Member(0, 1e15), Member(0, 0.01)]
    assert_members_match_their_single_runs(
        linear, members, AND, loss="mse", epochs=50, batch_size=1, shuffle=True
    )
    result = population.train_population(
        built_alone(linear, 0),
        keras.optimizers.SGD(),
        members,
        *AND,
        Schedule(loss="mse", epochs=50, batch_size=1, shuffle=True),
        chunk_epochs=7,
    )
    assert result.member(0).diverged and result.epochs_run[0] < 50
    assert not result.member(1).diverged and result.epochs_run[1] == 50
    assert np.isnan(result.loss[0, result.epochs_run[0] :]).all()


def test_chunks_give_the_same_result_as_one_chunk():
    members = [Member(seed, 1.0) for seed in range(3)]
    runs = [
        population.train_population(
            built_alone(lambda: build_mlp(2, [2]), 0),
            keras.optimizers.SGD(),
            members,
            *XOR,
            Schedule(loss="mse", epochs=40, batch_size=1, shuffle=True),
            chunk_epochs=chunk_epochs,
        )
        for chunk_epochs in (40, 6)
    ]
    np.testing.assert_allclose(runs[0].loss, runs[1].loss, rtol=0, atol=1e-6)
    np.testing.assert_allclose(runs[0].outputs, runs[1].outputs, rtol=0, atol=1e-6)


def test_unsupported_models_and_optimizers_are_named():
    mlp = build_mlp(2, [2])
    assert population.unsupported_reason(mlp, keras.optimizers.SGD(0.1, momentum=0.5)) is None
    assert "Adam" in population.unsupported_reason(mlp, keras.optimizers.Adam())
    assert "clipnorm" in population.unsupported_reason(mlp, keras.optimizers.SGD(clipnorm=1.0))
    dropout = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dropout(0.5)])
    assert "Dropout" in population.unsupported_reason(dropout, keras.optimizers.SGD())
    # The chapter's draws depend on TensorFlow's global generator: members run one by one.
    chapter = build_mlp(2, [2], kernel_initializer=initializer("chapter_normal", seed=126))
    assert "ChapterNormal" in population.unsupported_reason(chapter, keras.optimizers.SGD())
    normal = build_mlp(2, [2], kernel_initializer=initializer("random_normal", stddev=1.0))
    assert population.unsupported_reason(normal, keras.optimizers.SGD()) is None
