"""The second process of `drawn_ahead`: `python -m gatelab.sweeps.draw_figures FOLDER` draws a
sweep's summary figures from `FOLDER/INPUT_FILE` into PNG files in `FOLDER`, and lists them in
`FOLDER/MANIFEST_FILE` once every one is written.

It imports matplotlib and numpy, not TensorFlow or MLflow: it starts in under a second
(`drawn_ahead` sets `MPLBACKEND=Agg`).
"""

import json
import os
import pickle
import sys
import time
from pathlib import Path

from gatelab.sweeps.summary_figures import KnownArrays, save_kwargs, summary_figures

# What the sweep's process hands over: (swept, cells, results, losses, boundaries, fingerprint).
INPUT_FILE = "input.pickle"
# {"fingerprint": ..., "figures": {target: {file name: path in FOLDER}}, "seconds": drawing}:
# written last.
MANIFEST_FILE = "figures.json"


def draw(folder: Path) -> None:
    """Draw every figure of the sweep described in `folder`, then write its manifest."""
    started = time.perf_counter()
    with (folder / INPUT_FILE).open("rb") as file:
        swept, cells, results, losses, boundaries, fingerprint = pickle.load(file)
    figures: dict[str, dict[str, str]] = {}
    arrays = KnownArrays(losses, boundaries)
    for index, (target, file_name, figure) in enumerate(
        summary_figures(swept, cells, results, arrays)
    ):
        path = Path(str(index)) / file_name
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / path, **(save_kwargs(file_name) or {}))
        figures.setdefault(target, {})[file_name] = str(path)
    new = folder / f".{MANIFEST_FILE}.{os.getpid()}"
    seconds = time.perf_counter() - started
    new.write_text(json.dumps({"fingerprint": fingerprint, "figures": figures, "seconds": seconds}))
    os.replace(new, folder / MANIFEST_FILE)


if __name__ == "__main__":
    draw(Path(sys.argv[1]))
