"""The reference pages are generated from the code and up to date: every setting, command and
metric is on its page (habit 17). `make docs` regenerates them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from eventfwd.core.settings import _FIELDS, PREFIX
from eventfwd.core.settings_help import HELP
from eventfwd.ops.metrics import FAMILIES
from producers.metrics import FAMILIES as PRODUCER_FAMILIES

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "scripts" / "gen_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["configuration.md", "cli.md", "metrics.md", "../index.md"])
def test_each_reference_page_is_what_the_code_generates(page: str) -> None:
    expected = generator().PAGES[page]()
    assert (REFERENCE / page).read_text() == expected, f"docs/reference/{page} is stale: make docs"


def test_the_readme_is_short_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    for page in pages - {"index.md"}:
        assert f"(docs/{page})" in readme, page


def test_every_setting_is_described_and_on_the_configuration_page() -> None:
    assert set(HELP) == set(_FIELDS)
    text = (REFERENCE / "configuration.md").read_text()
    for suffix in _FIELDS:
        assert f"`{PREFIX}{suffix}`" in text


def test_every_command_is_on_the_cli_page() -> None:
    from eventfwd.cli.main import cli

    text = (REFERENCE / "cli.md").read_text()
    paths = [" ".join(path) for path, _ in generator().walk(cli, ("eventfwd",))]
    assert len(paths) > 20
    for path in paths:
        assert f"## `{path}`" in text


def test_every_metric_is_on_the_metrics_page() -> None:
    text = (REFERENCE / "metrics.md").read_text()
    for name in [*FAMILIES, *PRODUCER_FAMILIES]:
        assert f"| `{name}` |" in text
