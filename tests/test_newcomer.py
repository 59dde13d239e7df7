"""A newcomer's path (issue 13, "What must hold"): a fresh virtual environment,
the README's set-up commands, then the tutorial's commands in order, each
output compared with what the tutorial shows.

Slow (it installs the package into a new environment): marked ``slow``, which
CI runs with everything else and ``-m "not slow"`` leaves out locally. Dates
and times differ from day to day (the demo vendor's dates count from today);
they are compared by shape, so the tables' widths still count.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorial.md"
#: the terminal width the tutorial's tables are shown at
TUTORIAL_COLUMNS = "100"

pytestmark = pytest.mark.slow


def demo_keys() -> dict[str, str]:
    """The README's table of the demo vendor's keys, by Public ID."""
    rows = re.findall(r"^\| (DMO-[A-Z0-9]{3}-\d{3}) \| `([A-Z0-9-]+)` \|", README.read_text(),
                      flags=re.M)
    return dict(rows)


def setup_commands() -> list[str]:
    """The README's first set-up command line, split at ``&&``."""
    setup = README.read_text().split("## Set-up", 1)[1]
    block = re.search(r"```sh\n(.*?)\n```", setup, flags=re.S)
    assert block is not None
    return [part.strip() for part in block.group(1).split("&&")]


def tutorial_steps() -> Iterator[tuple[str, list[str]]]:
    """The command-line part of the tutorial: each ``$ command`` and the lines it shows."""
    part = TUTORIAL.read_text().split("## With the command line", 1)[1]
    part = part.split("## With Python", 1)[0]
    for block in re.findall(r"```console\n(.*?)```", part, flags=re.S):
        command: str | None = None
        shown: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    yield command, shown
                command, shown = line[2:], []
            else:
                shown.append(line)
        if command is not None:
            yield command, shown


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}:\d{2}")


def _shape(lines: list[str]) -> list[str]:
    return [_TIME.sub("hh:mm:ss", _DATE.sub("YYYY-MM-DD", line.rstrip())) for line in lines]


def _same(command: str, shown: list[str], output: str) -> None:
    actual = _shape(output.splitlines())
    expected = _shape(shown)
    elided = [i for i, line in enumerate(expected) if line.strip() in ("...", "…")]
    if elided:  # the tutorial leaves the rest out
        expected = expected[:elided[0]]
        actual = actual[:len(expected)]
    assert actual == expected, (
        f"$ {command}\n--- the tutorial shows:\n" + "\n".join(expected)
        + "\n--- it prints:\n" + "\n".join(actual)
    )


def test_the_readme_set_up_then_the_tutorial_as_shown(tmp_path: Path) -> None:
    venv, first, work = tmp_path / "venv", tmp_path / "first", tmp_path / "tutorial"
    first.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ESMC_", "VIRTUAL_ENV", "PYTHON", "PIP_REQUIRE"))}
    # the README's commands, with the environment at tmp_path/venv and the package
    # installed from this checkout
    create, install, demo = setup_commands()
    assert create == "python -m venv .venv"
    assert install == ".venv/bin/pip install -e ."
    assert demo == ".venv/bin/esmc-licensing demo"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-e", str(ROOT)], cwd=first, env=env,
        capture_output=True, text=True, timeout=900, check=False)
    assert installed.returncode == 0, installed.stderr[-2000:]
    shown = subprocess.run([str(venv / "bin" / "esmc-licensing"), "demo"], cwd=first, env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "John (home group San Diego, WRITE on San Diego) sees 2 license(s)" in shown.stdout

    keys = demo_keys()
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
           "COLUMNS": TUTORIAL_COLUMNS, "KEY": keys["DMO-SDG-001"]}
    env.pop("PAGER", None)
    last = 0
    steps = list(tutorial_steps())
    assert len(steps) > 20
    for command, expected in steps:
        if command == "echo $?":
            output = f"{last}\n"
        else:
            done = subprocess.run(["bash", "-c", f"{command} 2>&1"], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=300, check=False,
                                  stdin=subprocess.DEVNULL)
            last, output = done.returncode, done.stdout
        _same(command, expected, output)
        if command.startswith('echo "$KEY" | esmc-licensing add-key'):
            # "Do the same with the keys of DMO-SDG-002, DMO-SYD-001 and DMO-SYD-002."
            for public_id in ("DMO-SDG-002", "DMO-SYD-001", "DMO-SYD-002"):
                added = subprocess.run(
                    f"echo {shlex.quote(keys[public_id])} | esmc-licensing add-key -",
                    shell=True, cwd=work, env=env, capture_output=True, text=True,
                    timeout=300, check=False)
                assert added.returncode == 0, added.stderr
                assert f"Added license {public_id}" in added.stdout
