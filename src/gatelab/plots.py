"""The chapter's figures, drawn off-screen."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def loss_curve(loss: np.ndarray, title: str) -> Figure:
    """Loss per epoch, as the chapter plots `history.history['loss']`."""
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(np.arange(1, len(loss) + 1), loss)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure
