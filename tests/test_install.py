"""A reproducible install: the README's commands and CI take the versions in constraints.txt,
which pin every dependency pyproject.toml declares, each within its declared range."""

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    found = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version
    return found


def test_every_declared_dependency_is_pinned_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{requirement.name}=={pinned[name]} is outside {requirement.specifier}"
        )


def test_the_readme_and_ci_install_with_the_constraints():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert 'pip install -c constraints.txt -e ".[dev]"' in ci
    assert readme.count("pip install -c constraints.txt -e ") == 2
