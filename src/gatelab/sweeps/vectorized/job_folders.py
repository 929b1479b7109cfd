"""The job folders of a population: Hydra's `.hydra/config.yaml` and `overrides.yaml` per job,
without the credentials a `tracking.uri` may carry."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gatelab.redaction import redact

# Jobs between two calls of `JobFolders.write`'s `done`.
DONE_EVERY = 500


class JobFolders:
    """Each job's `.hydra/config.yaml` and `overrides.yaml`, from one rendering of the config."""

    def __init__(self, cfg: DictConfig, value_keys: tuple[str, ...]):
        tree = OmegaConf.to_container(cfg, resolve=False)
        tree.pop("hydra", None)
        self.markers = {}
        for index, key in enumerate(value_keys):
            *parents, leaf = key.split(".")
            node = tree
            for parent in parents:
                node = node.get(parent, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and leaf in node:
                marker = f"GATELAB_VALUE_{index}_MARKER"
                self.markers[key] = (marker, node[leaf])
                node[leaf] = marker
        self.template = redact(OmegaConf.to_yaml(OmegaConf.create(tree)))
        self.scalars: dict[str, str] = {}
        self.lines: dict[str, str] = {}

    def write(
        self,
        jobs: list[tuple[Path, list[str], dict[str, Any]]],
        done: Callable[[int], None] = lambda count: None,
    ) -> None:
        """Each job's files from its folder, its overrides and its values of the marked keys;
        `done(count)` every `DONE_EVERY` jobs, once the first `count` are written."""
        for index, (output_dir, overrides, values) in enumerate(jobs):
            if index % DONE_EVERY == 0:
                done(index)
            folder = output_dir / ".hydra"
            folder.mkdir(parents=True, exist_ok=True)
            text = self.template
            for key, (marker, default) in self.markers.items():
                value = values.get(key, default)
                if isinstance(default, float) and isinstance(value, int):
                    value = float(value)  # as the schema's float field holds it
                text = text.replace(marker, self._scalar(value))
            (folder / "config.yaml").write_text(text)
            (folder / "overrides.yaml").write_text("".join(map(self._line, overrides)))
        done(len(jobs))

    def _scalar(self, value: Any) -> str:
        key = repr(value)
        if key not in self.scalars:
            self.scalars[key] = OmegaConf.to_yaml({"v": value})[len("v: ") :].rstrip("\n")
        return self.scalars[key]

    def _line(self, override: str) -> str:
        if override not in self.lines:
            self.lines[override] = redact(OmegaConf.to_yaml([override]))
        return self.lines[override]
