"""The repository's own reference stands alone: README and docs/ link only inside it."""

import argparse
import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_link_stays_in_the_repository_and_leads_somewhere() -> None:
    """Markdown links in README.md and docs/ are relative and name a file that exists."""
    assert len(PAGES) >= 6
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            assert "://" not in target and not target.startswith(("/", "mailto:")), (page, target)
            path = (page.parent / target.partition("#")[0]).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), (page, target)


def table_keys(table: type) -> list[str]:
    """The keys of a config table, whether it is a pydantic model or a dataclass."""
    if dataclasses.is_dataclass(table):
        return [item.name for item in dataclasses.fields(table)]
    return list(getattr(table, "model_fields", {}))


def test_the_docs_name_every_config_key() -> None:
    """docs/config.md names every key of every table of the schema."""
    from aggregator.config import schema

    doc = (ROOT / "docs" / "config.md").read_text()
    tables = [
        value
        for name, value in vars(schema).items()
        if isinstance(value, type) and value.__module__ == schema.__name__ and name[0] != "_"
    ]
    assert len(tables) > 10
    for table in tables:
        for key in table_keys(table):
            assert re.search(rf"`{re.escape(key)}\b", doc), (table.__name__, key)


def test_the_docs_name_every_command_and_option() -> None:
    """docs/cli.md names every command of the parser and every option of each."""
    from aggregator.arguments import build_parser

    doc = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for command, sub in commands.choices.items():
        assert f"`aggregator {command}" in doc, command
        for option in sub._actions:
            for flag in option.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in doc, (command, flag)


def test_the_readme_is_a_front_door() -> None:
    """README.md fits on a screen or two, gives SPEC §1's two commands as they are, and links
    every page of docs/ (the reference lives there, not in the README)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024
    assert "    python3 -m pip install . && aggregator run -c config.example.toml\n" in readme
    assert "    python3 -m pip install -e '.[test]' && python3 -m pytest\n" in readme
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, page.name
