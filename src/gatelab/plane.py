"""The input plane of the decision-boundary pictures, and what a network computes over it."""

from dataclasses import dataclass

import numpy as np

# As TensorFlow Playground draws it.
PLANE = (-0.5, 1.5)
GRID_POINTS = 81
# A run's final boundary as numbers (outputs over the plane, hidden lines, the table): an
# artifact, and in the job's folder, from which a sweep draws its gallery.
BOUNDARY_FILE = "boundary.npz"


@dataclass(frozen=True)
class BoundaryView:
    """What a 2-input network computes over the plane, for a decision-boundary picture.

    Args:
        outputs: the output at each point of `plane_grid()`, shape (GRID_POINTS, GRID_POINTS),
            rows along the second input.
        hidden_lines: per unit of the first hidden layer, its kernel and bias `(w1, w2, b)`:
            the unit's line is where `w1 * x1 + w2 * x2 + b = 0`. Empty for a perceptron.
    """

    outputs: np.ndarray
    hidden_lines: np.ndarray


def plane_grid() -> np.ndarray:
    """The points of the plane as rows `(x1, x2)`, x1 varying fastest."""
    axis = np.linspace(*PLANE, GRID_POINTS, dtype=np.float32)
    first, second = np.meshgrid(axis, axis)
    return np.column_stack([first.ravel(), second.ravel()])


def line_in_plane(w1: float, w2: float, bias: float) -> np.ndarray | None:
    """The ends `[[x1, x2], [x1, x2]]` of the line `w1 x1 + w2 x2 + bias = 0` inside the plane."""
    low, high = PLANE
    points = []
    for edge in (low, high):
        if w2 != 0:
            points.append((edge, -(w1 * edge + bias) / w2))
        if w1 != 0:
            points.append((-(w2 * edge + bias) / w1, edge))
    inside = [
        point
        for point in points
        if low - 1e-9 <= point[0] <= high + 1e-9 and low - 1e-9 <= point[1] <= high + 1e-9
    ]
    if len(inside) < 2:
        return None
    inside = np.array(inside)
    # Of the crossings (a corner gives two), the two farthest apart.
    distances = np.linalg.norm(inside[:, None] - inside[None], axis=-1)
    first, second = np.unravel_index(np.argmax(distances), distances.shape)
    return inside[[first, second]] if distances[first, second] > 0 else None
