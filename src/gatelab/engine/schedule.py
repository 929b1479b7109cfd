"""How a run trains, as one typed value: the trainer's settings both compiled loops take."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """What `model.fit(x, y, batch_size, epochs, shuffle)` and `compile(loss)` would be given.

    Args:
        loss: a Keras loss name (`mse`, `binary_crossentropy`).
        jit_compile: compile the loop with XLA (as `model.compile(jit_compile=True)`).
    """

    loss: str
    epochs: int
    batch_size: int
    shuffle: bool
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs={self.epochs} and batch_size={self.batch_size} must each be at least 1"
            )
