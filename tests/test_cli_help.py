"""The command line's help and its vocabulary (issue 13, "What must hold").

Every command's ``--help``: a one-line summary, help text on every option, no
rule ids (``R8a``, ``R13``: the user does not have the rules document), and
the examples docs/cli.md shows for it. And the table in docs/cli.md mapping
every command to the Python method it calls, and every public method of
``LicenseManagement`` to a command or to a reason it is Python only.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from eventsourcing.application import Application
from typer.testing import CliRunner

from esmc_licensing import LicenseManagement, cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
RULE_ID = re.compile(r"\bR\d{1,2}[a-z]?\b")


def _commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        if path:
            yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(cli.app), ())


def _help(*path: str) -> str:
    result = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, (path, result.output)
    return result.stdout


def test_every_command_has_a_one_line_summary_and_documented_options() -> None:
    paths = [path for path, _ in _commands()]
    assert len(paths) > 50
    for path, command in _commands():
        summary = (command.help or "").strip().splitlines()
        assert summary and summary[0].strip(), path
        assert len(summary[0]) <= 100, (path, summary[0])
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert (param.help or "").strip(), (path, param.opts)
        # the options every command takes after its name are in its help too
        text = _help(*path)
        assert "--store" in text and "--json" in text, path


def test_no_rule_ids_in_any_help_text() -> None:
    assert not RULE_ID.findall(_help()), _help()
    for path, _ in _commands():
        text = _help(*path)
        assert not RULE_ID.findall(text), (path, RULE_ID.findall(text))


def _doc_examples() -> dict[tuple[str, ...], list[str]]:
    """The ``esmc-licensing ...`` lines of docs/cli.md's shell blocks, by command."""
    commands = {path for path, _ in _commands()}
    found: dict[tuple[str, ...], list[str]] = {}
    for block in re.findall(r"```sh\n(.*?)```", DOCS.read_text(), flags=re.S):
        for line in block.splitlines():
            if "esmc-licensing " not in line:
                continue
            example = line[line.index("esmc-licensing "):].strip()
            words = example.split()[1:]
            while words and words[0] in ("--as", "--store"):  # a global option first
                words = words[2:]
            if not words or words[0].startswith("["):
                continue  # the synopsis
            path = tuple(words[:2]) if tuple(words[:2]) in commands else (words[0],)
            assert path in commands, (line, path)
            found.setdefault(path, []).append(example)
    return found


def test_help_shows_the_examples_docs_cli_md_has() -> None:
    documented = _doc_examples()
    assert len(documented) >= 10
    for path, examples in documented.items():
        text = _help(*path)
        assert "Examples" in text, path
        for example in examples:
            assert example in text, (path, example)
    # and nothing is shown as an example that the documentation does not show
    for name, lines in cli.EXAMPLES.items():
        for line in lines:
            assert line in documented[tuple(name.split())], (name, line)


# -- one vocabulary: the command line and the Python API ------------------------------------------


def _mapping() -> tuple[dict[str, list[str]], dict[str, str]]:
    """docs/cli.md's two tables: command -> Python names; Python-only name -> why."""
    text = DOCS.read_text().split("## The command line and the Python API", 1)[1]
    by_command: dict[str, list[str]] = {}
    python_only: dict[str, str] = {}
    mapping, only = text.split("Python only, and why:", 1)
    for row in re.findall(r"^\| (`.*?) \| (.*?) \|$", mapping, flags=re.M):
        for command in re.findall(r"`([^`]+)`", row[0]):
            by_command[command] = re.findall(r"`([a-z_]+)`", row[1])
    for row in re.findall(r"^\| (`.*?) \| (.*?) \|$", only, flags=re.M):
        for name in re.findall(r"`([a-z_]+)`", row[0]):
            python_only[name] = row[1]
    return by_command, python_only


def test_every_command_names_the_python_it_calls() -> None:
    by_command, _ = _mapping()
    assert set(by_command) == {" ".join(path) for path, command in _commands()
                               if not hasattr(command, "commands") or path == ("alerts",)}
    for path, command in _commands():
        name = " ".join(path)
        if name not in by_command:
            continue
        methods = [m for m in by_command[name] if hasattr(LicenseManagement, m)]
        source = inspect.getsource(inspect.unwrap(command.callback))
        for method in methods:
            # the command itself, or the helpers it names, call it
            assert any(f".{method}" in text for text in _sources(source)), (name, method)


def _sources(source: str) -> Iterator[str]:
    """A command's source, then that of the helpers it calls (the CLI's own, and
    those it imports from the package)."""
    yield source
    imported = {name: module for module, names in re.findall(
        r"from \.([\w.]+) import ([\w, ]+)", source) for name in names.split(", ")}
    for helper in set(re.findall(r"\b([a-z_]+)\(", source)):
        if helper in imported:  # the module it comes from, whole
            yield inspect.getsource(importlib.import_module(f"esmc_licensing.{imported[helper]}"))
            continue
        found = getattr(cli, helper, None)
        if inspect.isfunction(found):
            yield inspect.getsource(found)


def test_every_public_method_has_a_command_or_a_reason() -> None:
    by_command, python_only = _mapping()
    on_the_command_line = {m for methods in by_command.values() for m in methods}
    public = {n for n in dir(LicenseManagement)
              if not n.startswith("_") and not hasattr(Application, n)}
    missing = public - on_the_command_line - set(python_only)
    assert not missing, f"not in docs/cli.md's command/Python tables: {sorted(missing)}"
    assert all(len(why.split()) >= 4 for why in python_only.values()), python_only
