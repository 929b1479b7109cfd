"""The colours of a sweep's settings, the same in its figures and in `mlflow ui`.

A sweep's cells (and a study's trials) are told apart in MLflow's charts only by their colour:
its bars carry no names, its legend does. So each gets its own colour, from one sequential
colormap in the order of its values (`lr=0.05` darkest, the largest rate lightest; a trial by
its number), and the parent's figures colour each value as its cell's run is coloured.
"""

import matplotlib
from matplotlib.colors import to_hex

# Dark blue through purple and orange to yellow, never the outcome's green or red alone; cut
# before its palest yellow, lost on a white page.
SEQUENCE_COLOURMAP = "plasma"
SEQUENCE_END = 0.85


def sequence_colours(count: int) -> list[str]:
    """`count` distinct colours (`#rrggbb`), from the first in order to the last."""
    return [sequence_colour(position, count) for position in range(count)]


def sequence_colour(position: int, count: int) -> str:
    """The colour of the `position`-th of `count` things in order (0-based; past the last, the
    last's): the first darkest."""
    fraction = min(max(position, 0), count - 1) / (count - 1) if count > 1 else 0.0
    return to_hex(matplotlib.colormaps[SEQUENCE_COLOURMAP](fraction * SEQUENCE_END))
