"""Assertions shared by the CLI tests: exit codes, JSON output, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import Result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def js(result: Result) -> object:
    return json.loads(ok(result).stdout)


def ids(result: Result) -> set[str]:
    data = js(result)
    assert isinstance(data, list)
    return {row["public_id"] for row in data}


def refused(result: Result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in err, err
    return err


def _script() -> list[str]:
    script = Path(sys.executable).with_name("esmc-licensing")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "esmc_licensing.cli"]
