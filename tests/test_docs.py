"""The docs say what the code does: every file of the repository they name exists, and the error
lines `docs/config.md` shows are the lines the code prints."""

import re

import pytest

from gatelab.config import validate
from gatelab.errors import CONFIG_ERRORS, one_line
from tests.helpers import REPO

PAGES = sorted(REPO.glob("docs/*.md")) + [REPO / "README.md"]
# A repository path standing alone in backticks (`tests/test_docs.py`, `conf/experiment/`);
# one inside a command (`git log -- benchmarks/...`) may name a file that is gone on purpose.
NAMED_PATH = re.compile(r"`((?:src|tests|conf|tools|benchmarks|docs)/[^`\s]*)`")
# `$ python src/train.py OVERRIDE` followed by the line it prints.
EXAMPLE = re.compile(r"^\$ python src/train\.py (?P<override>\S+)\n(?P<line>error: .*)$", re.M)


def named_paths() -> list[tuple[str, str]]:
    return [(page.name, path) for page in PAGES for path in NAMED_PATH.findall(page.read_text())]


def test_the_docs_name_files_of_the_repository():
    assert len(named_paths()) > 20


@pytest.mark.parametrize(("page", "path"), named_paths())
def test_every_file_the_docs_name_exists(page, path):
    assert (REPO / path).exists(), f"{page} names {path}, which is not in the repository"


def config_examples() -> list[tuple[str, str]]:
    text = (REPO / "docs" / "config.md").read_text()
    return [(found["override"], found["line"]) for found in EXAMPLE.finditer(text)]


def test_the_config_page_shows_its_error_examples():
    assert len(config_examples()) == 5


@pytest.mark.parametrize(("override", "line"), config_examples())
def test_each_error_line_the_config_page_shows_is_the_codes(compose_config, override, line):
    with pytest.raises(CONFIG_ERRORS) as error:
        validate(compose_config(override))
    assert f"error: {one_line(error.value)}" == line
