"""The public surface is typed with the id types (api.md): a type checker
catches swapped arguments, and a name given where an id is expected says
which lookup to use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from esmc_licensing import GroupId, InvalidInput, LicenseManagement, Permission

USER_SCRIPT = """
from esmc_licensing import LicenseManagement, Permission

app = LicenseManagement()
admin = app.administrator
group = app.create_group(admin, "San Diego")
user = app.create_user(admin, "John", group)
app.grant(admin, {first}, {second}, Permission.READ)
app.move_pools(admin, [p.pool_id for p in app.pools(admin)], group)
app.license(admin, "3AB-C12-D34")  # a Public ID's text is accepted
"""


def _mypy(script: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
         "--follow-imports=silent", str(script)],
        capture_output=True, text=True, check=False, cwd=script.parent,
        # no MYPYPATH: mypy must find the installed package's types the way a
        # user's type checker does, after the README's ``pip install -e .``
        env={k: v for k, v in os.environ.items() if k != "MYPYPATH"},
    )


def test_a_swapped_argument_is_reported_by_mypy_and_the_right_order_passes(
    tmp_path: Path,
) -> None:
    swapped = tmp_path / "swapped.py"
    swapped.write_text(USER_SCRIPT.format(first="group", second="user"))
    right = tmp_path / "right.py"
    right.write_text(USER_SCRIPT.format(first="user", second="group"))
    result = _mypy(swapped, tmp_path / "cache")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument 2 to "grant"' in result.stdout and '"UserId"' in result.stdout
    result = _mypy(right, tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_name_where_an_id_is_expected_names_the_lookup_to_use() -> None:
    app = LicenseManagement()
    with pytest.raises(InvalidInput, match=r"group_named\(name\)"):
        app.grant(app.administrator, app.administrator, "San Diego", Permission.READ)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"user_named\(name\)"):
        app.create_user("Administrator", "John", app.all_group)  # type: ignore[arg-type]
    assert isinstance(app.create_group(app.administrator, "Lab"), GroupId)


def test_the_adapters_ports_are_typed_with_their_protocols() -> None:
    """``Adapters.accounts`` and ``agents`` were ``Any``: a wrong object passed mypy."""
    from typing import get_type_hints

    from esmc_licensing import Adapters
    from esmc_licensing.adapters.ports import AccountService, AgentTransport, AlertSink

    hints = get_type_hints(Adapters)
    assert hints["accounts"] == AccountService | None
    assert hints["agents"] is AgentTransport
    assert hints["alert_sinks"] == tuple[AlertSink, ...]
