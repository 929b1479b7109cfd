"""Truth tables as the chapter defines them, for two inputs and more."""

import numpy as np
import pytest

from gatelab.data import from_lists, truth_table

TWO_INPUT_TARGETS = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "xor": [0, 1, 1, 0],
    "nand": [1, 1, 1, 0],
    "nor": [1, 0, 0, 0],
    "xnor": [1, 0, 0, 1],
}


@pytest.mark.parametrize("gate", TWO_INPUT_TARGETS)
def test_two_input_tables_match_the_chapter(gate):
    dataset = truth_table(gate, 2)
    np.testing.assert_array_equal(dataset.inputs, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(dataset.targets[:, 0], TWO_INPUT_TARGETS[gate])
    assert dataset.inputs.dtype == np.float32
    assert dataset.targets.shape == (4, 1)


def test_three_inputs_and_is_all_or_is_any_xor_is_parity():
    inputs = truth_table("and", 3).inputs
    assert inputs.shape == (8, 3)
    assert len({tuple(row) for row in inputs}) == 8
    # Row i is i written in binary, most significant input first.
    np.testing.assert_array_equal(inputs[5], [1, 0, 1])
    trues = inputs.sum(axis=1)
    np.testing.assert_array_equal(truth_table("and", 3).targets[:, 0], trues == 3)
    np.testing.assert_array_equal(truth_table("or", 3).targets[:, 0], trues >= 1)
    np.testing.assert_array_equal(truth_table("xor", 3).targets[:, 0], trues % 2 == 1)
    np.testing.assert_array_equal(truth_table("xnor", 3).targets[:, 0], trues % 2 == 0)
    np.testing.assert_array_equal(truth_table("nand", 3).targets[:, 0], trues != 3)
    np.testing.assert_array_equal(truth_table("nor", 3).targets[:, 0], trues == 0)


def test_explicit_rows_for_the_single_neuron():
    dataset = from_lists([[1.0]], [0.0])
    assert dataset.inputs.shape == (1, 1)
    assert dataset.targets.shape == (1, 1)
    assert dataset.n_inputs == 1
    assert dataset.targets[0, 0] == 0.0


def test_chapter_order_is_the_chapters_loop_with_targets_kept_to_their_rows():
    dataset = truth_table("and", 2, order="chapter")
    np.testing.assert_array_equal(dataset.inputs, [[1, 1], [1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(dataset.targets[:, 0], [1, 0, 0, 0])
    ascending = truth_table("xor", 3)
    chapter = truth_table("xor", 3, order="chapter")
    np.testing.assert_array_equal(chapter.inputs, ascending.inputs[::-1])
    np.testing.assert_array_equal(chapter.targets, ascending.targets[::-1])
