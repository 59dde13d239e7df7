"""The rest of the public API on the command line, and its configuration (issue 6).

Offline files, accounts and sync, computers and tasks, the installer, the
history's seals, and ``esmc_licensing.config``: vendor URLs from the
environment or a TOML file, secrets only from the environment or a 0600
credentials file. Driven through the real entry point (Typer's runner over a
SQLite file in tmp_path); the sync against the test vendor HTTP server and a
TTY-less confirmation also run the console script in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import Credentials, InMemoryAccounts, InMemoryActivationServer, cli
from esmc_licensing.adapters.clock import SystemClock
from esmc_licensing.adapters.memory import ManualClock
from esmc_licensing.config import ConfigError, load_config, load_secrets
from esmc_licensing.testing.vendor_http import VendorHttpServer

from .cli_support import _script, js, ok, refused

KEYS = {d.public_id: cli.demo_vendor(ManualClock()).key_of(d.public_id) for d in cli.DEMO_LICENSES}
PASSWORD = "Pa55-w0rd-never-shown"
OTHER_PASSWORD = "An0ther-s3cret-pw"
SECRETS = [*KEYS.values(), PASSWORD, OTHER_PASSWORD]

#: every variable the CLI reads, unset for each run unless a test sets it
CLEAN_ENV: dict[str, str | None] = {
    name: None for name in (
        "ESMC_LICENSING_STORE", "ESMC_LICENSING_USER", "ESMC_CONFIG", "ESMC_CREDENTIALS_FILE",
        "ESMC_ACTIVATION_URL", "ESMC_ACCOUNTS_URL", "ESMC_EMA2_URL", "ESMC_EBA_URL",
        "ESMC_ELA_URL", "ESMC_VENDOR_PUBLIC_KEY", "ESMC_HTTP_TIMEOUT", "ESMC_HTTP_ATTEMPTS",
        "ESMC_AGENTS_URL", "ESMC_ACCOUNT_PASSWORD", "ESMC_SEAL_KEY",
    )
}

Run = Callable[..., Result]


def _no_secret_in(*texts: str, secrets: list[str] | None = None) -> None:
    for text in texts:
        for secret in secrets or SECRETS:
            assert secret not in text
            assert secret.replace("-", "") not in text


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "licenses.db"


@pytest.fixture
def run(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The CLI over the SQLite file, in tmp_path, with a clean environment."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None,
               env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(cli.app, ["--store", str(store), *args], input=input,
                               env={**CLEAN_ENV, "COLUMNS": "200", **(env or {})})
        _no_secret_in(result.stdout, result.stderr)
        return result

    return invoke


@pytest.fixture
def demo(run: Run) -> Run:
    ok(run("demo"))
    return run


def _subprocess(args: list[str], cwd: Path, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    result = subprocess.run([*_script(), *args], check=False, cwd=cwd,
                            env={**base, "COLUMNS": "200", **(env or {})},
                            capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    _no_secret_in(result.stdout, result.stderr)
    return result


def _private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- a vendor over HTTP ----------------------------------------------------------------


@pytest.fixture
def vendor() -> Iterator[tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer]]:
    server_vendor = InMemoryActivationServer(clock=SystemClock(), seed="cli-http")
    expires = date.today() + timedelta(days=365)
    for pid in ("ACM-000-001", "ACM-000-002", "GLX-000-001"):
        server_vendor.issue(public_id=pid, product="ESET Endpoint Security", units=10,
                            expires=expires, owner="Acme Corp" if pid[0] == "A" else "Globex")
    accounts = InMemoryAccounts(server_vendor)
    accounts.add_eba_account(Credentials("admin@acme.example", PASSWORD), "Acme Corp",
                             ["ACM-000-001"])
    accounts.add_ela_account(Credentials("legacy@globex.example", OTHER_PASSWORD),
                             ["GLX-000-001"])
    with VendorHttpServer(server_vendor, accounts) as server:
        yield server_vendor, accounts, server


def _urls(server: VendorHttpServer) -> dict[str, str]:
    return {"ESMC_ACTIVATION_URL": server.url, "ESMC_ACCOUNTS_URL": server.url,
            "ESMC_HTTP_ATTEMPTS": "1", "ESMC_HTTP_TIMEOUT": "5"}


# -- add-file (R16) ---------------------------------------------------------------------


def _console_token(run: Run) -> str:
    data = js(run("info", "--json"))
    assert isinstance(data, dict)
    return str(data["console_token"])


def test_r16_add_file_from_a_path_and_from_stdin(demo: Run, tmp_path: Path) -> None:
    info = js(demo("info", "--json"))
    assert isinstance(info, dict) and info["demo_vendor"] is True
    content = cli.demo_vendor(SystemClock()).offline_file("DMO-TRY-001", _console_token(demo))
    lf = tmp_path / "trial.lf"
    lf.write_bytes(content)
    added = ok(demo("add-file", str(lf)))
    assert "Added license DMO-TRY-001" in added.stdout and "offline file" in added.stdout
    again = js(demo("add-file", "-", "--json", input=content))
    assert again == {"public_id": "DMO-TRY-001", "added": False, "group": "All",
                     "pool_id": again["pool_id"], "group_id": again["group_id"]}  # type: ignore[index]
    [row] = js(demo("licenses", "--json", "--text", "DMO-TRY-001"))  # type: ignore[misc]
    assert row["source"] == "OFFLINE_FILE"


def test_r16_add_file_refusals(demo: Run, tmp_path: Path) -> None:
    other = cli.demo_vendor(SystemClock()).offline_file("DMO-TRY-001", "another-console")
    (tmp_path / "other.lf").write_bytes(other)
    refused(demo("add-file", str(tmp_path / "other.lf")), 1, "console")
    (tmp_path / "junk.lf").write_bytes(b"not a license file")
    refused(demo("add-file", str(tmp_path / "junk.lf")), 1)
    refused(demo("add-file", str(tmp_path / "missing.lf")), 2, "does not exist")
    refused(demo("add-file", "-", input=b""), 2, "stdin")
    refused(demo("--as", "John", "add-file", str(tmp_path / "other.lf")), 1, "administrator")
    assert "DMO-TRY-001" not in ok(demo("licenses", "--json")).stdout


def test_r16_add_file_with_a_real_vendor_needs_its_public_key(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer],
        tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    server_vendor, _, server = vendor
    env = _urls(server)
    content = server_vendor.offline_file("ACM-000-002", _console_token(lambda *a, **k: run(
        *a, env=env, **k)))
    lf = tmp_path / "acme.lf"
    lf.write_bytes(content)
    refused(run("add-file", str(lf), env=env), 3, "ESMC_VENDOR_PUBLIC_KEY")
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(server_vendor.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ok(run("add-file", str(lf), env={**env, "ESMC_VENDOR_PUBLIC_KEY": str(pem)}))


# -- accounts (R17) ------------------------------------------------------------------------


def test_r17_connect_account_with_the_password_from_the_environment(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer]
) -> None:
    env = _urls(vendor[2])
    # a query does not create the store the first connection creates
    refused(run("accounts", "--json", env=env), 3, "does not exist")
    connected = js(run("connect-account", "eba", "--username", "admin@acme.example", "--json",
                       env={**env, "ESMC_ACCOUNT_PASSWORD": PASSWORD}))
    assert isinstance(connected, dict)
    assert connected["kind"] == "EBA" and connected["username"] == "admin@acme.example"
    assert [p["public_ids"] for p in connected["pools"]] == [["ACM-000-001"]]
    [account] = js(run("accounts", "--json", env=env))  # type: ignore[misc]
    assert set(account) == {"kind", "username", "connected", "account_type", "connected_at",
                            "last_synced", "pools"}
    assert account["connected"] is True and account["kind"] == "EBA"
    assert "admin@acme.example" in ok(run("accounts", env=env)).stdout
    for args in (("history", "ACM-000-001", "--json"), ("history", "Acme Corp", "--json"),
                 ("licenses", "--json"), ("pools", "--json")):
        result = ok(run(*args, env=env))
        _no_secret_in(result.stdout)
    # a password is never an option
    assert run("connect-account", "EBA", "-u", "x", "--password", PASSWORD,
               env=env).exit_code == 2


def test_r17_wrong_password_and_unsupported_accounts_are_refused(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer]
) -> None:
    _, accounts, server = vendor
    env = _urls(server)
    err = refused(run("connect-account", "EBA", "-u", "admin@acme.example",
                      env={**env, "ESMC_ACCOUNT_PASSWORD": "wrong-one"}), 1, "refused")
    assert "wrong-one" not in err
    accounts.add_eba_account(Credentials("site@acme.example", PASSWORD), "Acme Corp",
                             ["ACM-000-002"], site="Branch")
    refused(run("connect-account", "EBA", "-u", "site@acme.example",
                env={**env, "ESMC_ACCOUNT_PASSWORD": PASSWORD}), 1, "site")
    refused(run("--as", "Nobody", "accounts", env=env), 2, "no such user")
    assert js(run("accounts", "--json", env=env)) == []


def test_r17_password_from_a_0600_credentials_file(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer],
        tmp_path: Path) -> None:
    creds = _private_file(tmp_path / "credentials.toml",
                          f'[accounts.ELA]\n"legacy@globex.example" = "{OTHER_PASSWORD}"\n')
    env = {**_urls(vendor[2]), "ESMC_CREDENTIALS_FILE": str(creds)}
    ok(run("connect-account", "ELA", "-u", "legacy@globex.example", env=env))
    assert "GLX-000-001" in ok(run("licenses", "--json", env=env)).stdout
    ok(run("disconnect-account", "ela", "-u", "legacy@globex.example", env=env))
    [account] = js(run("accounts", "--json", env=env))  # type: ignore[misc]
    assert account["connected"] is False
    refused(run("disconnect-account", "ELA", "-u", "legacy@globex.example", env=env), 1,
            "not found")


def test_r17_a_0644_credentials_file_is_refused_and_nothing_is_recorded(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer],
        tmp_path: Path) -> None:
    creds = _private_file(tmp_path / "credentials.toml",
                          f'[accounts.EBA]\n"admin@acme.example" = "{PASSWORD}"\n', 0o644)
    env = _urls(vendor[2])
    err = refused(run("--credentials", str(creds), "connect-account", "EBA", "-u",
                      "admin@acme.example", env=env), 2, "0644", "chmod 600")
    assert str(creds) in err
    # refused for every command, before the store is opened
    refused(run("licenses", env={**env, "ESMC_CREDENTIALS_FILE": str(creds)}), 2, "0644")
    creds.chmod(0o640)
    refused(run("--credentials", str(creds), "licenses", env=env), 2, "0640")
    creds.chmod(0o600)
    ok(run("--credentials", str(creds), "connect-account", "EBA", "-u", "admin@acme.example",
           env=env))
    refused(run("--credentials", str(tmp_path / "none.toml"), "licenses", env=env), 2,
            "does not exist")


def test_r17_password_prompted_on_a_terminal_or_piped(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = _urls(vendor[2])
    refused(run("connect-account", "EBA", "-u", "admin@acme.example", env=env), 2,
            "ESMC_ACCOUNT_PASSWORD")
    ok(run("connect-account", "ELA", "-u", "legacy@globex.example", "--password-stdin",
           input=OTHER_PASSWORD + "\n", env=env))
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    prompted = ok(run("connect-account", "EBA", "-u", "admin@acme.example",
                      input=PASSWORD + "\n", env=env))
    assert "Password of EBA account admin@acme.example" in prompted.stdout
    assert len(js(run("accounts", "--json", env=env))) == 2  # type: ignore[arg-type]


# -- sync (R18) -------------------------------------------------------------------------------


def test_r18_sync_in_a_subprocess_against_the_vendor_http_server(
        run: Run, store: Path, tmp_path: Path,
        vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer]) -> None:
    server_vendor, accounts, server = vendor
    env = _urls(server)
    ok(run("connect-account", "EBA", "-u", "admin@acme.example",
           env={**env, "ESMC_ACCOUNT_PASSWORD": PASSWORD}))
    accounts.add_eba_account(Credentials("admin@acme.example", PASSWORD), "Acme Corp",
                             ["ACM-000-001", "ACM-000-002"])
    server_vendor.set_units("ACM-000-001", 20)

    first = _subprocess(["--store", str(store), "sync", "--json"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] is True and report["failed"] == []
    [acme] = report["synced"]
    assert acme["source"] == "EBA account admin@acme.example"
    assert acme["added"] == ["ACM-000-002"] and acme["changed"] == ["ACM-000-001"]
    assert first.stderr == ""  # quiet without a terminal

    table = _subprocess(["--store", str(store), "sync"], tmp_path, env)
    assert table.returncode == 0 and "EBA account admin@acme.example" in table.stdout

    server.fault("/eba/", "500")
    failed = _subprocess(["--store", str(store), "sync", "--json"], tmp_path, env)
    assert failed.returncode == 3
    report = json.loads(failed.stdout)
    assert report["ok"] is False
    assert [f["source"] for f in report["failed"]] == ["EBA account admin@acme.example"]
    assert failed.stderr.startswith("error: 1 source(s) failed to sync")
    assert len(failed.stderr.strip().splitlines()) == 1
    units = {r["public_id"]: r["units"] for r in js(run("licenses", "--json", env=env))}  # type: ignore[union-attr]
    assert units == {"ACM-000-001": 20, "ACM-000-002": 10}


def test_r18_sync_and_run_due_on_the_demo_vendor(demo: Run) -> None:
    report = js(demo("sync", "--json"))
    assert isinstance(report, dict) and report["ok"] is True
    assert [s["source"] for s in report["synced"]] == ["license keys"]
    assert "license keys" in ok(demo("sync")).stdout
    due = js(demo("run-due", "--json"))
    assert isinstance(due, dict) and due["due"] == ["license keys"] and due["ok"] is True
    refused(demo("--as", "John", "sync"), 1, "administrator")


def test_r18_run_due_with_nothing_due(
        run: Run, vendor: tuple[InMemoryActivationServer, InMemoryAccounts, VendorHttpServer]
) -> None:
    env = _urls(vendor[2])
    assert "Nothing is due" in ok(run("run-due", env=env)).stdout
    ok(run("connect-account", "EBA", "-u", "admin@acme.example",
           env={**env, "ESMC_ACCOUNT_PASSWORD": PASSWORD}))
    # just connected (synced): not due for a day
    assert js(run("run-due", "--json", env=env)) == {"synced": [], "failed": [], "ok": True,
                                                    "due": []}


def test_unreachable_vendor_exits_3(demo: Run) -> None:
    env = {"ESMC_ACTIVATION_URL": "http://127.0.0.1:1", "ESMC_HTTP_ATTEMPTS": "1",
           "ESMC_HTTP_TIMEOUT": "2"}
    refused(demo("add-key", "-", input=KEYS["DMO-TRY-001"], env=env), 3, "activation server")
    result = demo("sync", env=env)
    assert result.exit_code == 3 and "license DMO-" in result.stderr
    refused(demo("connect-account", "EBA", "-u", "x", env={**env, "ESMC_ACCOUNT_PASSWORD": "p"}),
            3, "no account service")


# -- computers and tasks (R20-R26) --------------------------------------------------------------


ESS = "ESET Endpoint Security"


@pytest.fixture
def pcs(demo: Run) -> Run:
    for name, fp in (("pc-1", "fp-1"), ("pc-2", "fp-2")):
        ok(demo("register-computer", name, "--group", "San Diego", "--fingerprint", fp,
                "--product", ESS, "--product", "ESET Server Security"))
    return demo


def test_r20_register_computer_and_list(pcs: Run) -> None:
    rows = js(pcs("computers", "--json"))
    assert isinstance(rows, list) and [r["name"] for r in rows] == ["pc-1", "pc-2"]
    assert {"computer_id", "name", "group", "group_id", "fingerprint", "last_connected",
            "products", "managed", "registered_at", "tags"} <= set(rows[0])
    assert rows[0]["group"] == "San Diego" and rows[0]["fingerprint"] == "fp-1"
    assert rows[0]["products"][0] == {"product": ESS, "public_id": None, "activated": False,
                                      "validity": None, "suspended": False}
    again = js(pcs("register-computer", "pc-1", "--group", "San Diego", "--fingerprint",
                   "fp-1", "--product", ESS, "--json"))
    # same hardware: same computer, and nothing recorded (R14: no success for nothing)
    assert again == {"computer_id": rows[0]["computer_id"], "registered": False}
    one = js(pcs("computer", "PC-1", "--json"))
    assert isinstance(one, dict) and one["computer_id"] == rows[0]["computer_id"]
    assert js(pcs("computer", rows[1]["computer_id"][:8], "--json"))["name"] == "pc-2"  # type: ignore[index]
    assert "fp-2" in ok(pcs("computer", "pc-2")).stdout and "pc-2" in ok(pcs("computers")).stdout
    assert [r["name"] for r in js(pcs("--as", "John", "computers", "--json"))] == [  # type: ignore[union-attr]
        "pc-1", "pc-2"]
    assert js(pcs("--as", "Makio", "computers", "--json")) == []
    refused(pcs("--as", "Makio", "computer", "pc-1"), 1, "not found")
    refused(pcs("register-computer", "pc-3", "--group", "San Diego", "--product", ESS), 2,
            "fingerprint")
    refused(pcs("register-computer", "pc-3", "--group", "Atlantis", "--fingerprint", "x"), 1,
            "not found")
    refused(pcs("--as", "Larry", "register-computer", "pc-3", "--group", "San Diego",
                "--fingerprint", "x"), 1)
    ok(pcs("register-computer", "printer", "--group", "Tokyo", "--unmanaged"))


def test_r21_r23_activate_install_and_task(pcs: Run) -> None:
    task = js(pcs("activate", "DMO-SDG-001", "pc-1", "pc-2", "--json"))
    assert isinstance(task, dict)
    assert task["kind"] == "PRODUCT_ACTIVATION" and task["public_id"] == "DMO-SDG-001"
    assert {r["state"] for r in task["results"].values()} == {"SUCCEEDED"}
    assert js(pcs("task", task["task_id"], "--json")) == task
    assert "SUCCEEDED" in ok(pcs("task", task["task_id"])).stdout
    [row] = js(pcs("licenses", "--json", "--text", "DMO-SDG-001"))  # type: ignore[misc]
    pc1 = js(pcs("computer", "pc-1", "--json"))
    assert pc1["products"][0]["activated"] is True  # type: ignore[index]
    assert pc1["products"][0]["public_id"] == "DMO-SDG-001"  # type: ignore[index]
    assert pc1["products"][0]["validity"]["valid_until"] == row["expires"]  # type: ignore[index]
    installed = js(pcs("install", "ESET Server Security", "DMO-SDG-002", "pc-1", "--json"))
    assert installed["kind"] == "SOFTWARE_INSTALL"  # type: ignore[index]
    assert "Product activation" in ok(pcs("activate", "DMO-SDG-001", "pc-1")).stdout
    refused(pcs("activate", "DMO-SYD-002", "pc-1"), 2, "installed")
    ok(pcs("register-computer", "mail-1", "--group", "Sydney", "--fingerprint", "fp-m",
           "--product", "ESET Mail Security"))
    refused(pcs("activate", "DMO-SYD-002", "mail-1"), 1, "expired")  # unusable (R21)
    refused(pcs("--as", "Makio", "activate", "DMO-TYO-001", "pc-1"), 1, "not found")
    refused(pcs("activate", "DMO-SDG-001", "no-such-pc"), 1, "not found")
    refused(pcs("task", "not-a-task"), 2, "UUID")
    refused(pcs("task", "00000000-0000-0000-0000-000000000000"), 1, "not found")
    refused(pcs("--as", "Makio", "task", task["task_id"]), 1, "not found")
    # a unique id prefix, as pools and computers take (issue 13)
    assert js(pcs("task", task["task_id"][:8], "--json")) == task
    refused(pcs("--as", "Makio", "task", task["task_id"][:8]), 1, "not found")


def test_r22_installer_never_prints_the_key(pcs: Run, tmp_path: Path) -> None:
    key = KEYS["DMO-SDG-001"]
    shown = js(pcs("installer", "DMO-SDG-001", "--json"))
    assert shown == {"public_id": "DMO-SDG-001", "product": ESS,
                     "expires": shown["expires"], "license_key": "XXXX-XXXX-XXXX-XXXX-" + key[-4:],  # type: ignore[index]
                     "written_to": None}
    assert "--output" in ok(pcs("installer", "DMO-SDG-001")).stdout
    out = tmp_path / "installer.json"
    written = ok(pcs("--as", "John", "installer", "DMO-SDG-001", "--output", str(out)))
    assert str(out) in written.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    configuration = json.loads(out.read_text())
    assert configuration["license_key"] == key and configuration["public_id"] == "DMO-SDG-001"
    refused(pcs("installer", "DMO-SDG-001", "--output", str(out)), 2, "already exists")
    refused(pcs("--as", "Makio", "installer", "DMO-TYO-001"), 1)  # READ is not USE
    refused(pcs("installer", "DMO-SYD-002"), 1)  # expired
    for args in (("history", "DMO-SDG-001", "--json"), ("history", "DMO-SDG-001")):
        _no_secret_in(ok(pcs(*args)).stdout)


def _activated(run: Run, computer: str) -> dict[str, bool]:
    view = js(run("computer", computer, "--json"))
    assert isinstance(view, dict)
    return {p["product"]: p["activated"] for p in view["products"]}


def test_r24_deactivate_frees_the_seats(pcs: Run) -> None:
    ok(pcs("activate", "DMO-SDG-001", "pc-1", "pc-2"))
    task = js(pcs("deactivate", "pc-1", "--product", ESS, "--json"))
    assert task["kind"] == "DEACTIVATION"  # type: ignore[index]
    assert _activated(pcs, "pc-1") == {ESS: False, "ESET Server Security": False}
    assert _activated(pcs, "pc-2")[ESS] is True
    assert "Deactivation" in ok(pcs("deactivate", "pc-2")).stdout
    refused(pcs("deactivate", "pc-1", "--product", "ESET Mail Security"), 2, "installed")
    refused(pcs("--as", "Makio", "deactivate", "pc-1"), 1, "not found")


def test_r25_remove_computer_needs_confirmation_without_a_terminal(pcs: Run) -> None:
    ok(pcs("activate", "DMO-SDG-001", "pc-1"))
    refused(pcs("remove-computer", "pc-1"), 1, "--yes", "no terminal")
    assert len(js(pcs("computers", "--json"))) == 2  # type: ignore[arg-type]
    result = js(pcs("remove-computer", "pc-1", "--yes", "--json"))
    assert isinstance(result, dict) and "stay used" in result["warning"]
    assert result["seats_left"] == [["DMO-SDG-001", ESS]]
    refused(pcs("computer", "pc-1"), 1, "not found")
    whats = [e["what"] for e in js(pcs("history", result["computer_id"], "--json"))]  # type: ignore[union-attr]
    assert whats[0] == "ComputerRegistered" and whats[-1] == "ComputerRemoved", whats
    assert "ComputerRegistered" in ok(pcs("history", "pc-2")).stdout
    refused(pcs("--as", "Makio", "history", result["computer_id"]), 1, "not found")
    refused(pcs("history", "no-such-thing"), 1, "not found")


def test_r25_remove_computer_with_deactivation_after_a_prompt(
        pcs: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(pcs("activate", "DMO-SDG-001", "pc-2"))
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    declined = pcs("remove-computer", "pc-2", "--deactivate", input="n\n")
    refused(declined, 1, "not confirmed")
    assert "Remove computer pc-2?" in declined.stdout
    removed = ok(pcs("remove-computer", "pc-2", "--deactivate", input="y\n"))
    assert "warning" not in removed.stdout
    history = js(pcs("history", "DMO-SDG-001", "--json"))
    assert isinstance(history, list) and len(history) > 2


def test_r25_remove_computer_in_a_subprocess_without_a_tty_refuses(
        pcs: Run, store: Path, tmp_path: Path) -> None:
    result = _subprocess(["--store", str(store), "remove-computer", "pc-1"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "--yes" in result.stderr
    assert len(js(pcs("computers", "--json"))) == 2  # type: ignore[arg-type]


def test_r26_delete_not_connecting(pcs: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(pcs("register-computer", "printer", "--group", "San Diego", "--unmanaged"))
    nothing = js(pcs("delete-not-connecting", "San Diego", "--days", "30", "--json"))
    assert nothing["results"] == {}  # type: ignore[index]
    later = datetime.now(UTC) + timedelta(days=40)
    monkeypatch.setattr(cli, "SystemClock", lambda: ManualClock(later))
    before = js(pcs("computers", "--json"))
    refused(pcs("delete-not-connecting", "All", "--days", "30"), 1, "--yes", "pc-1, pc-2")
    preview = js(pcs("delete-not-connecting", "All", "--days", "30", "--dry-run", "--json"))
    assert [c["name"] for c in preview["computers"]] == ["pc-1", "pc-2"]  # type: ignore[index]
    assert js(pcs("computers", "--json")) == before  # neither recorded anything
    task = js(pcs("delete-not-connecting", "All", "--days", "30", "--json", "--yes"))
    assert task["kind"] == "DELETE_NOT_CONNECTING" and len(task["results"]) == 2  # type: ignore[index]
    assert [c["name"] for c in js(pcs("computers", "--json"))] == ["printer"]  # type: ignore[union-attr]
    assert "Removed 1 computer(s)" in ok(pcs("delete-not-connecting", "All", "--days", "30",
                                              "--remove-unmanaged", "--yes")).stdout
    assert pcs("delete-not-connecting", "All", "--days", "0").exit_code == 2
    refused(pcs("--as", "Makio", "delete-not-connecting", "Tokyo", "--days", "1"), 1)


# -- seals (R31) ---------------------------------------------------------------------------------


def test_r31_seal_verify_and_tampering_found(demo: Run, store: Path, tmp_path: Path) -> None:
    key_file = store.with_name(store.name + ".seal-key")
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600  # the demo made it
    receipt = tmp_path / "receipt.json"
    sealed = ok(demo("seal-history", "--receipt", str(receipt))).stdout
    assert "Sealed the history" in sealed and receipt.exists()
    report = js(demo("verify-history", "--json"))
    assert isinstance(report, dict) and report["ok"] is True and report["problems"] == []
    assert {"checked", "sealed_up_to", "unsealed", "problems"} <= set(report)
    assert report["checked"] == report["sealed_up_to"]
    assert "history verified" in ok(demo("verify-history", "--receipt", str(receipt))).stdout
    conn = sqlite3.connect(store)
    try:  # the owner's name changed in the stored LicenseAdded of DMO-SDG-001
        rows = conn.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE "
                            "'%LicenseAdded'").fetchall()
        [(target, state)] = [(r, bytes(st)) for r, st in rows if b'"DMO-SDG-001"' in bytes(st)]
        forged = bytes(state).replace(b"Acme Corp", b"Acme Corq")
        assert forged != state
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, target))
        conn.commit()
    finally:
        conn.close()
    tampered = demo("verify-history", "--json")
    err = refused(tampered, 1, "tampered", "altered", f"position {target}")
    assert "LicenseAdded" in err
    problems = json.loads(tampered.stdout)["problems"]
    assert [(p["position"], p["kind"]) for p in problems] == [(target, "altered")]
    assert "altered" in demo("verify-history").stdout


def test_r31_deleted_tail_found_with_the_receipt_file(demo: Run, store: Path,
                                                      tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    ok(demo("seal-history", "--receipt", str(receipt)))
    with sqlite3.connect(store) as conn:
        (end,) = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()
        # (the seals are on the events' rows: they go with them)
        conn.execute("DELETE FROM stored_events WHERE rowid > ?", (end - 3,))
    ok(demo("verify-history"))  # the key alone cannot tell a shorter history
    refused(demo("verify-history", "--receipt", str(receipt)), 1, "truncated")


def test_r31_seal_key_from_the_credentials_file_or_the_environment(
        run: Run, tmp_path: Path) -> None:
    creds = _private_file(tmp_path / "credentials.toml", 'seal_key = "k-from-file"\n')
    ok(run("--credentials", str(creds), "demo"))
    ok(run("--credentials", str(creds), "seal-history"))
    ok(run("--credentials", str(creds), "verify-history"))
    ok(run("verify-history", env={"ESMC_SEAL_KEY": "k-from-file"}))
    # another key: named as the wrong key, not as every event altered
    refused(run("verify-history", env={"ESMC_SEAL_KEY": "other"}), 1, "wrong key (id")
    # and no key at all: the store's saves are sealed, so none is recorded unsealed
    refused(run("create-group", "Elsewhere"), 2, "ESMC_SEAL_KEY")
    refused(run("--store", "PERSISTENCE_MODULE=eventsourcing.popo,ESMC_SEAL_KEY=x",
                "verify-history"), 2, "environment")


def test_r31_rotate_seal_key_keeps_old_seals_verifiable(run: Run, tmp_path: Path) -> None:
    key_file = tmp_path / "seal.key"
    env = {"ESMC_SEAL_KEY_FILE": str(key_file)}
    assert "Created the seal key file" in ok(run("rotate-seal-key", "--key-file",
                                                 str(key_file))).stdout
    ok(run("demo", env=env))
    assert "still verify older seals" in ok(run("rotate-seal-key", "--key-file",
                                                str(key_file))).stdout
    ok(run("create-group", "Elsewhere", env=env))
    report = js(run("verify-history", "--json", env=env))
    assert isinstance(report, dict) and report["ok"] is True
    assert len(report["key_ids"]) == 2


def test_r31_a_branch_user_may_not_seal_or_verify(demo: Run) -> None:
    for command in ("seal-history", "verify-history"):
        err = refused(demo("--as", "John", command), 1, "READ on All")
        assert "events" not in err


def test_r31_audit_export_jsonl_and_csv_say_what_a_verified_seal_covers(
    demo: Run, store: Path, tmp_path: Path
) -> None:
    lines = ok(demo("audit", "export")).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["position"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["sealed"] is True for r in records)
    out = tmp_path / "audit.csv"
    assert "Exported" in ok(demo("audit", "export", "--format", "csv", "--since", "3",
                                 "--until", "5", "--output", str(out))).stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["position"]) for r in rows] == [3, 4, 5]
    assert json.loads(rows[0]["details"]) == records[2]["details"]
    target = len(records) - 2
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE stored_events SET state = state || x'20' WHERE rowid = ?",
                     (target,))
    after = [json.loads(line) for line in ok(demo("audit", "export")).stdout.splitlines()]
    assert [r["position"] for r in after if not r["sealed"]] == [target, target + 1, target + 2]
    refused(demo("--as", "John", "audit", "export"), 1, "READ on All")


def test_r30_as_of_takes_a_position_and_says_when_nothing_was_recorded(demo: Run) -> None:
    assert "Nothing was recorded before" in ok(demo("licenses", "--as-of", "2000-01-01")).stdout
    empty = demo("pools", "--as-of", "0", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    history = js(demo("history", "DMO-SDG-001", "--json"))
    assert isinstance(history, list)
    added = history[0]["position"]
    assert js(demo("licenses", "--as-of", str(added - 1), "--json")) == []
    at = js(demo("history", "DMO-SDG-001", "--as-of", str(added), "--json"))
    assert [e["position"] for e in at] == [added]  # type: ignore[index,union-attr]
    # a user who did not exist yet is named, not shown as an internal id
    err = refused(demo("--as", "John", "licenses", "--as-of", "1"), 1, "John")
    assert "not found" in err and not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", err)


# -- configuration ---------------------------------------------------------------------------------


def test_config_file_names_the_vendor(run: Run, tmp_path: Path,
                                      vendor: tuple[InMemoryActivationServer, InMemoryAccounts,
                                                    VendorHttpServer]) -> None:
    server = vendor[2]
    config = tmp_path / "vendor.toml"
    config.write_text(f'[vendor]\nactivation_url = "{server.url}"\naccounts_url = '
                      f'"{server.url}"\n[http]\nattempts = 1\n')
    info = js(run("--config", str(config), "info", "--json"))
    assert isinstance(info, dict) and info["demo_vendor"] is False
    assert server.url in info["vendor"] and info["config_file"] == str(config)
    ok(run("--config", str(config), "connect-account", "EBA", "-u", "admin@acme.example",
           env={"ESMC_ACCOUNT_PASSWORD": PASSWORD}))
    # ./esmc-licensing.toml is read when no file is named
    (tmp_path / "esmc-licensing.toml").write_text(config.read_text())
    assert js(run("info", "--json"))["demo_vendor"] is False  # type: ignore[index]
    assert "ACM-000-001" in ok(run("licenses")).stdout


@pytest.mark.parametrize(("text", "fragment"), [
    ('[vendor]\nactivation_url = "http://x"\npassword = "hunter2"\n', "secret"),
    ('[accounts]\n"a@b" = { password = "hunter2" }\n', "secret"),
    ('[vendor]\nactivation_url = "http://me:hunter2@vendor.example"\n', "credentials"),
    ('[vendor]\naccounts_url = "http://vendor.example"\n', "ESMC_ACTIVATION_URL"),
    ('[vendor]\nactivation_url = "ftp://vendor.example"\n', "http"),
    ('[vendor]\nactivaton_url = "http://vendor.example"\n', "unknown"),
    ('[vendor\n', "TOML"),
    ('[http]\ntimeout = -1\n', "positive"),
])
def test_bad_config_files_exit_2(run: Run, tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    err = refused(run("--config", str(config), "licenses"), 2, fragment)
    assert "hunter2" not in err


def test_config_environment_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[vendor]\nactivation_url = "http://file.example/"\n'
                      'public_key_file = "vendor.pem"\n[http]\ntimeout = 3\n')
    cfg = load_config(config, {"ESMC_ACTIVATION_URL": "https://env.example",
                               "ESMC_HTTP_ATTEMPTS": "5"}, tmp_path)
    assert cfg.activation_url == "https://env.example" and cfg.timeout == 3.0
    assert cfg.attempts == 5 and cfg.public_key_file == tmp_path / "vendor.pem"
    assert not cfg.uses_demo_vendor
    assert load_config(None, {}, tmp_path).uses_demo_vendor
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", {}, tmp_path)


def test_credentials_file_format_and_repr(tmp_path: Path) -> None:
    creds = _private_file(tmp_path / "c.toml", f'seal_key = "s"\n[accounts.ema2]\n'
                                               f'"MSP@Example.com" = "{PASSWORD}"\n')
    secrets = load_secrets(creds)
    from esmc_licensing import AccountKind

    assert secrets.password(AccountKind.EMA2, " msp@example.com ") == PASSWORD
    assert secrets.password(AccountKind.EBA, "msp@example.com") is None
    assert PASSWORD not in repr(secrets) and "'s'" not in repr(secrets)
    creds.write_text('[accounts.SITE]\n"a" = "b"\n')
    with pytest.raises(ConfigError, match="EBA, EMA2 and ELA"):
        load_secrets(creds)
    creds.write_text(f'password = "{PASSWORD}"\n')
    with pytest.raises(ConfigError, match="unknown entry") as e:
        load_secrets(creds)
    assert PASSWORD not in str(e.value)


def test_help_names_the_demo_vendor_and_every_new_command(run: Run) -> None:
    top = ok(run("--help")).stdout
    assert "demo vendor" in top and "0600" in top
    for command in ("add-file", "info", "accounts", "connect-account", "disconnect-account",
                    "sync", "run-due", "computers", "computer", "register-computer", "activate",
                    "install", "installer", "deactivate", "remove-computer",
                    "delete-not-connecting", "task", "verify-history", "seal-history"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout, (command, result.output)



def test_r31_verify_history_names_an_event_that_no_longer_loads(demo: Run, store: Path) -> None:
    with sqlite3.connect(store) as conn:
        (rowid,) = conn.execute(
            "SELECT rowid FROM stored_events WHERE topic = 'PoolMoved' LIMIT 1"
        ).fetchone()
    moved = [
        v["public_id"] for v in js(demo("licenses", "--json"))  # type: ignore[union-attr]
        if rowid in [h["position"] for h in js(demo("history", v["public_id"], "--json"))]  # type: ignore[union-attr]
    ]
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE stored_events SET state = x'00' WHERE rowid = ?", (rowid,))
    ok(demo("licenses"))  # queries read the views: the store still answers
    refused(demo("history", moved[0]), 3)  # but the event no longer loads where it is read
    result = demo("verify-history", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [(p["position"], p["kind"]) for p in report["problems"]] == [(rowid, "altered")]
