"""Assertions shared by the CLI tests: exit codes, JSON output, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import Result

DATA_KEY_NOTICE = "Created the data key file"


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
    # the first command on a new store announces its data key file (R32) first
    lines = result.stderr.strip().splitlines()
    err = "\n".join(line for line in lines if not line.startswith(DATA_KEY_NOTICE)).strip()
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
