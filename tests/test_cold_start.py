"""A fast cold start: the command line imports only what the command needs.

``esmc-licensing ... licenses --json`` must not import the HTTP clients
(httpx), Redis, the offline-file code and its crypto, Rich, the TOML parser or
pydantic (which Typer uses to coerce parameters). Each check runs in a fresh
interpreter, so that what the test process imported does not count; a test
here fails when someone brings back an eager import.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import esmc_licensing
from esmc_licensing import LicenseManagement, cli
from esmc_licensing.testing import stores

#: what ``licenses --json`` on the demo vendor, without a config file, never needs
NOT_NEEDED = (
    "httpx",
    "redis",
    "cryptography",
    "rich",
    "tomllib",
    "pydantic",
    "esmc_licensing.adapters.http",
    "esmc_licensing.adapters.offline_file",
    "esmc_licensing.adapters.redis_agents",
)

_SOURCE = str(Path(esmc_licensing.__file__).resolve().parent.parent)


def _fresh(script: str, cwd: Path) -> dict[str, object]:
    """Run ``script`` in a new interpreter importing this checkout's package; the
    script's last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESMC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _loaded(names: object, prefixes: tuple[str, ...] = NOT_NEEDED) -> list[str]:
    assert isinstance(names, list)
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


_RUN_CLI = """
    import io, json, sys
    from contextlib import redirect_stdout
    out = io.StringIO()
    sys.argv = ["esmc-licensing", "--store", {store!r}, "licenses", "--json"]
    with redirect_stdout(out):
        try:
            {call}
        except SystemExit as e:
            code = e.code or 0
        else:
            code = 0
    print(json.dumps({{"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}}))
"""


@pytest.mark.parametrize(
    "call",
    [
        # the console script's entry point
        "from esmc_licensing.cli import main; main()",
        # the whole Typer app, as the tests and `python -m esmc_licensing.cli` use it
        "from esmc_licensing.cli import app; app(sys.argv[1:], prog_name='esmc-licensing')",
    ],
    ids=["main", "app"],
)
def test_licenses_json_imports_only_what_it_needs(tmp_path: Path, call: str) -> None:
    store = tmp_path / "EMPTY.db"
    # an empty store made beforehand: a query does not create one (it exits 3)
    LicenseManagement(env=stores.sqlite_env(store)).close()
    result = _fresh(_RUN_CLI.format(store=str(store), call=call), cwd=tmp_path)
    assert result["code"] == 0, result["out"]
    assert json.loads(str(result["out"])) == []
    assert _loaded(result["modules"]) == [], (
        "`esmc-licensing licenses --json` imported modules it does not need; import them "
        "where they are used (see tests/test_cold_start.py)"
    )


def test_importing_the_package_imports_none_of_its_parts(tmp_path: Path) -> None:
    result = _fresh(
        """
        import json, sys
        import esmc_licensing
        print(json.dumps({"modules": sorted(sys.modules)}))
        """,
        cwd=tmp_path,
    )
    assert _loaded(result["modules"], ("esmc_licensing",)) == ["esmc_licensing"]
    assert _loaded(result["modules"], ("eventsourcing", "attrs", "attr", "typer")) == []


def test_the_default_adapters_import_no_crypto_until_a_file_is_verified(tmp_path: Path) -> None:
    result = _fresh(
        """
        import json, sys
        from datetime import datetime, UTC
        from esmc_licensing import Adapters, InvalidLicenseFile
        adapters = Adapters()
        before = "cryptography" in sys.modules
        try:
            adapters.offline_verifier.verify(b"not a file", "token", datetime.now(UTC))
        except InvalidLicenseFile:
            pass
        print(json.dumps({"before": before, "after": "cryptography" in sys.modules}))
        """,
        cwd=tmp_path,
    )
    assert result == {"before": False, "after": True}


def test_the_lazy_verifier_verifies_as_the_vendors_own() -> None:
    from datetime import UTC, datetime

    from esmc_licensing import Adapters, InMemoryActivationServer, ManualClock
    from esmc_licensing.adapters.offline_file import Ed25519OfflineFileVerifier

    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    vendor.issue(public_id="3AB-C12-D34", product="ESET Endpoint Security", units=5,
                 expires=datetime(2027, 1, 1, tzinfo=UTC).date())
    adapters = Adapters(activation_server=vendor)
    eager = Ed25519OfflineFileVerifier(vendor.public_key)
    lazy = adapters.offline_verifier
    content = vendor.offline_file("3AB-C12-D34", "console-1")
    assert lazy.verify(content, "console-1", clock.now()) == eager.verify(
        content, "console-1", clock.now()
    )
    assert lazy.key_id == eager.key_id  # type: ignore[attr-defined]
    assert lazy.public_key == vendor.public_key  # type: ignore[attr-defined]


# -- the package's lazy names (PEP 562) ---------------------------------------------------


def test_every_exported_name_resolves() -> None:
    for name in esmc_licensing.__all__:
        value = getattr(esmc_licensing, name)
        module = importlib.import_module(esmc_licensing._LAZY[name], "esmc_licensing")
        assert value is getattr(module, name), name
    assert set(esmc_licensing._LAZY) == set(esmc_licensing.__all__)
    assert set(esmc_licensing.__all__) <= set(dir(esmc_licensing))


def test_star_import_and_from_import_still_work() -> None:
    namespace: dict[str, object] = {}
    exec("from esmc_licensing import *", namespace)
    assert set(esmc_licensing.__all__) <= set(namespace)
    from esmc_licensing import Adapters, LicenseManagement, run_projections

    assert (Adapters.__name__, LicenseManagement.__name__, run_projections.__name__) == (
        "Adapters", "LicenseManagement", "run_projections"
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        esmc_licensing.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from esmc_licensing import no_such_name", {})


# -- the console script builds only the command it runs ------------------------------------


def test_the_root_options_that_take_a_value_are_known() -> None:
    root = typer.main.get_command(cli.app)
    taking_values = {
        opt
        for p in root.params
        if not getattr(p, "is_flag", False)
        for opt in p.opts
    }
    assert taking_values == cli._ROOT_VALUE_OPTIONS


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["licenses", "--json"], "licenses"),
        (["--store", "x.db", "--as", "John", "--debug", "licenses"], "licenses"),
        (["--store=x.db", "pools"], "pools"),
        (["--", "history", "DMO-SDG-001"], "history"),
        (["tag", "create", "red"], "tag"),
        (["save-filter", "mine"], "save-filter"),
    ],
)
def test_app_for_keeps_only_the_named_command(args: list[str], command: str) -> None:
    one = cli.app_for(args)
    assert one is not cli.app
    names = [c.name or typer.main.get_command_name(c.callback.__name__)  # type: ignore[union-attr]
             for c in one.registered_commands] + [g.name for g in one.registered_groups]
    assert names == [command]
    assert one.registered_callback is cli.app.registered_callback


@pytest.mark.parametrize(
    "args",
    [[], ["--help"], ["--store", "x.db"], ["no-such-command"], ["--unknown", "licenses"]],
)
def test_app_for_is_the_whole_app_when_unsure(args: list[str]) -> None:
    assert cli.app_for(args) is cli.app


@pytest.mark.parametrize(
    "args",
    [
        ["licenses", "--json"],
        ["licenses", "--help"],
        ["licenses", "--level", "nonsense"],
        ["pools", "--json", "--tag", "x"],
        ["tag", "create", "  "],
        ["grant", "John", "Tokyo", "ADMIN"],
        ["project", "--interval", "soon"],
        ["licenses", "--no-such-option"],
    ],
)
def test_one_command_answers_as_the_whole_app(tmp_path: Path, args: list[str]) -> None:
    runner = CliRunner()
    full = ["--store", str(tmp_path / "full.db"), *args]
    one = ["--store", str(tmp_path / "one.db"), *args]
    whole = runner.invoke(cli.app, full, prog_name="esmc-licensing")
    alone = runner.invoke(cli.app_for(one), one, prog_name="esmc-licensing")
    assert (alone.exit_code, alone.stdout, alone.stderr) == (
        whole.exit_code,
        whole.stdout.replace("full.db", "one.db"),
        whole.stderr.replace("full.db", "one.db"),
    )


def test_values_that_are_not_strings_are_still_checked(tmp_path: Path) -> None:
    """A number or an enum goes through Typer's own coercion (built when needed)."""
    runner = CliRunner()
    store = ["--store", str(tmp_path / "s.db")]
    bad = runner.invoke(cli.app, [*store, "project", "--interval", "soon"])
    assert bad.exit_code == 2
    assert "--interval" in bad.stderr and "valid number" in bad.stderr
    bad_enum = runner.invoke(cli.app, [*store, "grant", "John", "Tokyo", "ADMIN"])
    assert bad_enum.exit_code == 2
    assert "'ADMIN' is not one of" in bad_enum.stderr
