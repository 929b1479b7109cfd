"""The package's shape: layers that import only downwards, no cycle, one TensorFlow importer.

Every import counts, including one inside a function: a lazy import hides a cycle, it does not
remove it. Imports under `if TYPE_CHECKING:` are for type hints only and do not count.
"""

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

SOURCE = REPO / "src"
# Each layer may import from its own layer and those above it in this list, never below.
LAYERS = [
    ("gatelab.errors", "gatelab.redaction", "gatelab.stopping"),
    ("gatelab.data", "gatelab.history", "gatelab.plane"),
    ("gatelab.config",),
    ("gatelab.engine",),
    ("gatelab.tracking", "gatelab.views"),
    ("gatelab.console", "gatelab.build"),
    ("gatelab.pipeline", "gatelab.sweeps"),
    ("gatelab.cli", "gatelab.runs", "gatelab.rerun", "gatelab.hydra_job", "train", "hydra_plugins"),
]
TENSORFLOW = ("tensorflow", "keras")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def layer_of(module: str) -> int:
    if module in ("gatelab", "hydra_plugins.gatelab_vectorized_sweeper"):
        return 0  # a package's __init__, which imports nothing
    for rank, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")


def imports_of(module: str) -> set[str]:
    """Every module `module` imports (at any depth in its code), but for type hints only."""
    tree = ast.parse(MODULES[module].read_text())
    type_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for statement in branch.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from gatelab.tracking import store` imports the module gatelab.tracking.store.
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def own_imports(module: str) -> set[str]:
    return {name for name in imports_of(module) if name in MODULES and name != module}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_own_layer_or_the_layers_below(module):
    upward = [name for name in own_imports(module) if layer_of(name) > layer_of(module)]
    assert not upward, f"{module} imports {upward} from a layer above its own"


def test_no_import_cycle():
    graph = {module: own_imports(module) - {_package(module)} for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def _package(module: str) -> str:
    # A module imports its own package's __init__ by being in it, not a cycle.
    return module.rpartition(".")[0]


def test_only_the_engine_imports_tensorflow():
    importers = [
        module
        for module in MODULES
        if any(name.split(".")[0] in TENSORFLOW for name in imports_of(module))
    ]
    assert importers and all(module.startswith("gatelab.engine.") for module in importers), (
        importers
    )


def test_the_layer_test_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    # The checks above, on a made-up package: they would fail if the code had either.
    (tmp_path / "gatelab").mkdir()
    (tmp_path / "gatelab" / "errors.py").write_text("def f():\n    from gatelab import cli\n")
    (tmp_path / "gatelab" / "cli.py").write_text("from gatelab import errors\n")
    monkeypatch.setattr(
        __import__(__name__, fromlist=["MODULES"]),
        "MODULES",
        {
            "gatelab.errors": tmp_path / "gatelab/errors.py",
            "gatelab.cli": tmp_path / "gatelab/cli.py",
        },
    )
    with pytest.raises(
        AssertionError, match=r"gatelab.errors imports \['gatelab.cli'\] from a layer above"
    ):
        test_a_module_imports_only_from_its_own_layer_or_the_layers_below("gatelab.errors")
    test_a_module_imports_only_from_its_own_layer_or_the_layers_below("gatelab.cli")
    with pytest.raises(AssertionError, match="import cycle: gatelab.cli -> gatelab.errors"):
        test_no_import_cycle()


@pytest.mark.parametrize("path", sorted((SOURCE / "gatelab").rglob("*.py")), ids=str)
def test_a_module_is_read_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (at most {MAX_LINES})"
