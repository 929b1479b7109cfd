"""What the single loop and the population loop share on the host: batches, row orders, chunks.

Both loops run whole chunks of epochs in one compiled call and differ only in their kernels
(`single`: a Keras model and optimizer; `population`: K members' stacked weights). Everything
around the kernel is here, so that a member of a population sees exactly the batches, row
orders and padding its single run sees.
"""

from dataclasses import dataclass

import numpy as np

# A call of a compiled loop runs about this long (after the first, which also compiles), so
# Ctrl-C or SIGTERM is acted on within it.
CHUNK_SECONDS = 0.5
# From one call to the next, a chunk grows at most this many times.
CHUNK_GROWTH = 4


@dataclass(frozen=True)
class Batches:
    """An epoch's rows cut into `steps` batches of one static shape.

    A short last batch is padded with row 0 at weight 0, so every step has one shape and the
    padding never counts in a loss or a gradient.
    """

    n_rows: int
    batch_size: int

    @property
    def steps(self) -> int:
        return -(-self.n_rows // self.batch_size)

    @property
    def padding(self) -> int:
        return self.steps * self.batch_size - self.n_rows

    def row_weights(self) -> np.ndarray:
        """[steps, batch_size]: 1 for a row, 0 for padding."""
        weights = np.concatenate([np.ones(self.n_rows), np.zeros(self.padding)])
        return weights.astype(np.float32).reshape(self.steps, self.batch_size)

    def pad(self, orders: np.ndarray) -> np.ndarray:
        """Row orders `[..., n_rows]` as batches `[..., steps, batch_size]`, padded with row 0."""
        widths = [(0, 0)] * (orders.ndim - 1) + [(0, self.padding)]
        padded = np.pad(orders, widths)
        return padded.reshape(*orders.shape[:-1], self.steps, self.batch_size)


def batches(n_rows: int, batch_size: int) -> Batches:
    """The batches of `n_rows` rows at `batch_size` (a batch larger than the data is all of it)."""
    if n_rows < 1 or batch_size < 1:
        raise ValueError(f"n_rows={n_rows} and batch_size={batch_size} must each be at least 1")
    return Batches(n_rows, min(batch_size, n_rows))


def epoch_orders(n_rows: int, epochs: int, shuffle: bool, seed: int) -> np.ndarray:
    """Row order of every epoch: a fresh permutation per epoch drawn from `seed`, or in order."""
    if not shuffle:
        return np.tile(np.arange(n_rows, dtype=np.int32), (epochs, 1))
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_rows) for _ in range(epochs)]).astype(np.int32)


class EpochOrders:
    """`epoch_orders` of every seed, drawn a few epochs at a time: [K, epochs, rows]."""

    # Generator.permuted along axis 1 shuffles each row in turn with the same draws as one
    # `permutation(n_rows)` per epoch, so the stream goes on unchanged from one take to the next.

    def __init__(self, seeds: list[int], n_rows: int, shuffle: bool):
        self.generators = [np.random.default_rng(seed) for seed in seeds] if shuffle else None
        self.count = len(seeds)
        self.n_rows = n_rows

    def take(self, epochs: int) -> np.ndarray:
        in_order = np.tile(np.arange(self.n_rows, dtype=np.int32), (epochs, 1))
        if self.generators is None:
            return np.broadcast_to(in_order, (self.count, epochs, self.n_rows))
        orders = np.empty((self.count, epochs, self.n_rows), np.int32)
        for index, generator in enumerate(self.generators):
            orders[index] = generator.permuted(in_order, axis=1)
        return orders


def next_chunk_epochs(epochs: int, seconds: float, capacity: int) -> int:
    """Epochs for the next call to take about CHUNK_SECONDS, after `epochs` took `seconds`."""
    wanted = int(epochs * CHUNK_SECONDS / max(seconds, 1e-6))
    return max(1, min(capacity, CHUNK_GROWTH * epochs, wanted))
