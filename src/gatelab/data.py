"""The chapter's data: truth tables of logic gates, and explicit rows for the single neuron."""

from typing import NamedTuple

import numpy as np

# 2**16 rows is already far past what a truth-table experiment needs; 2**40 would not fit in memory.
MAX_INPUTS = 16

# Each gate maps a 0/1 table of shape (rows, n_inputs) to its 0/1 output per row. With more than
# two inputs AND is all-true, OR any-true and XOR the parity (an odd number of trues), as the
# chapter defines them; the N-gates are their negations.
GATES = {
    "and": lambda table: table.all(axis=1),
    "or": lambda table: table.any(axis=1),
    "xor": lambda table: table.sum(axis=1) % 2 == 1,
    "nand": lambda table: ~table.all(axis=1),
    "nor": lambda table: ~table.any(axis=1),
    "xnor": lambda table: table.sum(axis=1) % 2 == 0,
}


# Row orders of a truth table: binary counting up (00, 01, 10, 11), or down as the chapter's
# loops visit them (11, 10, 01, 00).
ORDERS = ("ascending", "chapter")


class Dataset(NamedTuple):
    """Inputs of shape (rows, n_inputs) and targets of shape (rows, 1), both float32."""

    inputs: np.ndarray
    targets: np.ndarray

    @property
    def n_inputs(self) -> int:
        return self.inputs.shape[1]


def truth_table(gate: str, n_inputs: int = 2, order: str = "ascending") -> Dataset:
    """All 2**n_inputs rows of `gate`, counting up in binary (00, 01, 10, 11) or down (chapter)."""
    rows = np.arange(2**n_inputs)
    if order == "chapter":
        rows = rows[::-1]
    # Most significant input first, so the rows read as the chapter prints them.
    table = (rows[:, None] >> np.arange(n_inputs - 1, -1, -1)) & 1
    targets = GATES[gate](table.astype(bool))
    return Dataset(table.astype(np.float32), targets.astype(np.float32).reshape(-1, 1))


def from_lists(inputs: list[list[float]], targets: list[float]) -> Dataset:
    """Rows given explicitly, such as the chapter's single input 1 with target 0."""
    return Dataset(
        np.asarray(inputs, dtype=np.float32),
        np.asarray(targets, dtype=np.float32).reshape(-1, 1),
    )
