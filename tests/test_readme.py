"""The README's Python example runs, and prints what its comment says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def _first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match is not None, "README.md has no ```python block"
    return match.group(1)


def test_readme_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # in case the example writes files
    code = _first_python_block()
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    promised = re.findall(r"print\(.*\)\s*#\s*(.+)", code)
    assert promised, "the example's print() should say in a comment what it prints"
    for line in promised:
        assert line.strip() in printed


def test_readme_gives_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert (
        "python -m venv .venv && .venv/bin/pip install -e . && .venv/bin/esmc-licensing demo"
        in text
    )
    assert (
        "python -m venv .venv && .venv/bin/pip install -e '.[test]' && "
        ".venv/bin/python -m pytest -n auto" in text
    )
