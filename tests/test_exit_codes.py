"""Exit codes as api.md documents them, and the faults an operator meets (issue 12).

3 for any store that cannot be opened, read or written (corrupt, not SQLite,
another application's database, a full disk, a read-only file asked to
record), 2 for a value out of range, 4 for an unexpected internal error; one
line on stderr that says what happened in words. A read-only store still
answers queries, and after every fault the store opens as before.

The faults run for real where the machine allows: a full disk is a tiny tmpfs
and a read-only store a read-only bind mount, each in a private mount namespace
(``unshare``); where that is not allowed, a size-limited process
(``RLIMIT_FSIZE``) and a file without write permission (or, for root, who may
write anyway, a store the CLI is told is not writable) stand in.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import cli
from esmc_licensing.testing import stores

from .cli_support import _script, js, ok, refused

ENV = {
    "COLUMNS": "200",
    "ESMC_LICENSING_STORE": None,
    "ESMC_LICENSING_USER": None,
    "ESMC_CONFIG": None,
}


def run(store: str | Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli.app, ["--store", str(store), *args], input=input, env=ENV)


def plain_line(err: str) -> None:
    """A sentence, not an exception's class name alone."""
    text = err.removeprefix("error: ")
    assert len(text.split()) >= 4, err
    assert "unexpected" not in text and "Traceback" not in text


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "licenses.db"
    ok(run(path, "demo"))
    return path


def _opens(store: Path) -> set[str]:
    rows = js(run(store, "licenses", "--json"))
    assert isinstance(rows, list)
    return {r["public_id"] for r in rows}


# -- stores that cannot be used: exit 3 -------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"garbage\n", os.urandom(5000), b"SQLite format 2\x00" + bytes(100)],
    ids=["text", "random", "not-sqlite-3"],
)
def test_api_exit_3_a_file_that_is_not_a_sqlite_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(content)
    err = refused(run(path, "licenses"), 3, "not a SQLite database")
    plain_line(err)
    assert path.read_bytes() == content  # untouched


def test_api_exit_3_proc_version_as_a_store() -> None:
    plain_line(refused(run("/proc/version", "licenses"), 3, "/proc/version"))


def test_api_exit_3_a_directory_or_a_missing_directory(tmp_path: Path) -> None:
    refused(run(tmp_path, "licenses"), 3, "is a directory")
    refused(run(tmp_path / "nowhere" / "x.db", "licenses"), 3, "does not exist")


def test_api_exit_3_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    before = path.read_bytes()
    err = refused(run(path, "licenses"), 3, "another application")
    plain_line(err)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"customers"}  # no event table added


def test_api_exit_3_a_damaged_store_and_the_copy_still_opens(store: Path, tmp_path: Path) -> None:
    good = _opens(store)
    damaged = tmp_path / "damaged.db"
    data = bytearray(store.read_bytes())
    for offset in range(4096, len(data), 4096):  # every page after the first
        data[offset : offset + 64] = os.urandom(64)
    damaged.write_bytes(bytes(data))
    result = run(damaged, "licenses")
    err = refused(result, 3)
    plain_line(err)
    assert _opens(store) == good


def test_api_exit_3_unreachable_postgresql_says_so_and_the_store_still_opens(
    postgres_env: dict[str, str],
) -> None:
    schema = postgres_env["POSTGRES_SCHEMA"]
    user, host, db = stores.POSTGRES_USER, stores.POSTGRES_HOST, stores.POSTGRES_DB
    good = f"postgresql://{user}@{host}:{stores.POSTGRES_PORT}/{db}?schema={schema}"
    ok(run(good, "demo"))
    before = _opens_at(good)
    for wrong in (
        f"postgresql://{user}@{host}:1/{db}?schema={schema}",
        f"postgresql://{user}@{host}:{stores.POSTGRES_PORT}/no_such_db_12h",
    ):
        err = refused(run(wrong, "licenses"), 3, "cannot open the store", "PostgreSQL")
        plain_line(err)
    assert _opens_at(good) == before


def _opens_at(store: str) -> set[str]:
    rows = js(run(store, "licenses", "--json"))
    assert isinstance(rows, list) and rows
    return {r["public_id"] for r in rows}


# -- a full disk -------------------------------------------------------------------------------

_FULL_DISK = r"""
import os, shutil, subprocess, sys
cli, src, where = sys.argv[1:4]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", where], check=True)
shutil.copy(src, os.path.join(where, "s.db"))
st = os.statvfs(where)
with open(os.path.join(where, "fill"), "wb") as f:  # leave room for SQLite's index, no more
    f.write(bytes(st.f_bavail * st.f_frsize - 36 * 1024))
store = os.path.join(where, "s.db")
w = subprocess.run([*cli.split("\x00"), "--store", store, "create-group", "Full"],
                   capture_output=True, text=True)
os.remove(os.path.join(where, "fill"))
r = subprocess.run([*cli.split("\x00"), "--store", store, "licenses", "--json"],
                   capture_output=True, text=True)
print(w.returncode, r.returncode, sep="\n")
print(w.stderr.strip())
"""


def _unshare() -> list[str] | None:
    tool = shutil.which("unshare")
    if tool is None:
        return None
    for args in ([tool, "-m"], [tool, "-rm"]):
        probe = subprocess.run([*args, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return args
    return None


def _tmpfs_full_disk(store: Path, tmp_path: Path) -> tuple[int, int, str] | None:
    unshare = _unshare()
    if unshare is None:
        return None
    where = tmp_path / "tiny"
    where.mkdir()
    result = subprocess.run(
        [
            *unshare,
            sys.executable,
            "-c",
            _FULL_DISK,
            "\x00".join(_script()),
            str(store),
            str(where),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:  # no tmpfs allowed here
        return None
    wrote, read, err = result.stdout.split("\n", 2)
    return int(wrote), int(read), err.strip()


def _size_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [*_script(), *args],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=limited,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_api_exit_3_a_full_disk_records_nothing_and_the_store_still_opens(
    store: Path, tmp_path: Path
) -> None:
    tmpfs = _tmpfs_full_disk(store, tmp_path)
    if tmpfs is not None:
        wrote, read, err = tmpfs
        assert wrote == 3, err
        assert err.startswith("error: ") and "full" in err and len(err.splitlines()) == 1, err
        plain_line(err)
        assert read == 0
    # a process that may not grow files: the same answer, on any machine
    fresh = tmp_path / "fresh.db"
    limited = _size_limited(16 * 1024, "--store", str(fresh), "demo")
    assert limited.returncode == 3, limited.stderr
    err = limited.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    plain_line(err)
    assert "demo" in ok(run(fresh, "demo")).stdout  # the store opens and works afterwards
    assert _opens(fresh)


# -- read-only stores answer queries ------------------------------------------------------------

_READ_ONLY = r"""
import subprocess, sys
cli, where, store = sys.argv[1:4]
subprocess.run(["mount", "--bind", where, where], check=True)
subprocess.run(["mount", "-o", "remount,ro,bind", where], check=True)
for args in (["licenses", "--json"], ["create-group", "Audit"]):
    r = subprocess.run([*cli.split("\x00"), "--store", store, *args], capture_output=True,
                       text=True)
    print(r.returncode)
    print(r.stdout.replace("\n", " "))
    print(r.stderr.strip())
"""


def test_api_read_only_store_answers_queries_and_refuses_writes_with_exit_3(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _opens(store)
    audit = tmp_path / "audit"
    audit.mkdir()
    copy = audit / "copy.db"
    shutil.copy(store, copy)
    unshare = _unshare()
    result = None
    if unshare is not None:
        result = subprocess.run(
            [
                *unshare,
                sys.executable,
                "-c",
                _READ_ONLY,
                "\x00".join(_script()),
                str(audit),
                str(copy),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if result is not None and result.returncode == 0:
        lines = result.stdout.split("\n")
        assert lines[0] == "0", result.stdout
        assert all(pid in lines[1] for pid in good)
        assert lines[3] == "3", result.stdout
        assert "read-only" in lines[5] and "nothing was recorded" in lines[5]
    # without mounts: a file without write permission (root writes anyway, so
    # it is told the file is not writable)
    copy.chmod(0o444)
    audit.chmod(0o555)
    try:
        if os.geteuid() == 0:
            real = os.access
            monkeypatch.setattr(
                cli.os,
                "access",
                lambda p, mode, **kw: (
                    False
                    if mode == os.W_OK and Path(p).resolve().parent == audit.resolve()
                    else real(p, mode, **kw)
                ),
            )
        assert _opens(copy) == good
        err = refused(run(copy, "create-group", "Audit"), 3, "read-only")
        plain_line(err)
        assert _opens(copy) == good
    finally:
        audit.chmod(0o755)
        copy.chmod(0o644)
    assert "Audit" not in ok(run(copy, "licenses")).stdout


# -- out of range: exit 2 -------------------------------------------------------------------------


def test_api_exit_2_values_out_of_range(store: Path) -> None:
    refused(run(store, "licenses", "--as-of", "9999-12-31"), 2, "out of range")
    result = run(store, "delete-not-connecting", "All", "--days", "999999999999")
    assert result.exit_code == 2 and "unexpected" not in result.output
    assert run(store, "project", "--once", "--interval", "nan").exit_code == 2


def test_api_exit_2_an_empty_store_name_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    refused(run("", "licenses"), 2, "--store is empty")
    refused(run("   ", "licenses"), 2, "--store is empty")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("store_arg", "fragment"),
    [
        ("persistence_module=eventsourcing.sqlite,sqlite_dbname=x.db", "upper-case"),
        ("PERSISTENCE_MODULE=eventsourcing.sqlite,SQLITE_DBNAME=x.db,TYPO=1", "'TYPO'"),
        ("PERSISTENCE_MODULE=os", "PERSISTENCE_MODULE is one of"),
        ("PERSISTENCE_MODULE=eventsourcing.postgres,POSTGRES_SCHEMA=bad;drop", "schema"),
        ("postgresql://me@127.0.0.1:5432/test?schema=bad;drop", "schema"),
        ("postgresql://me@127.0.0.1:5432/test?schema=x%22%3B%20drop", "schema"),
        ("postgresql://me@127.0.0.1:5432/test?password=hunter2", "secret"),
        ("postgresql://me@127.0.0.1:5432/test?sslpassword=hunter2", "secret"),
        ("postgresql://me@127.0.0.1:5432/test?nonsense=1", "unknown"),
    ],
)
def test_api_exit_2_store_settings_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_arg: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    err = refused(run(store_arg, "licenses"), 2, fragment)
    assert "hunter2" not in err
    assert list(tmp_path.iterdir()) == []  # no file named after a setting


# -- 4: unexpected; output conventions ------------------------------------------------------------


def test_api_exit_4_an_internal_error_asks_for_debug(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("views")

    monkeypatch.setattr(cli.LicenseManagement, "licenses", broken)
    err = refused(run(store, "licenses"), 4, "--debug", "internal error")
    assert "KeyError" in err and len(err.split()) > 4


@pytest.mark.parametrize("columns", ["", "abc", "0", "-5", "99999999999999999999"])
def test_api_columns_that_are_not_a_width_do_not_break_tables(store: Path, columns: str) -> None:
    result = CliRunner().invoke(
        cli.app, ["--store", str(store), "licenses"], env={**ENV, "COLUMNS": columns}
    )
    assert result.exit_code == 0, result.output
    assert "DMO-SDG-001" in result.stdout


def test_api_a_reader_that_goes_away_ends_the_command_quietly(store: Path) -> None:
    proc = subprocess.Popen(
        [*_script(), "--store", str(store), "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head -1` does once it has its line (here: before any)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert err == b""
    assert _opens(store)


def test_api_the_library_refuses_a_foreign_sqlite_database_before_touching_it(
    tmp_path: Path,
) -> None:
    from esmc_licensing import AdapterUnavailable, LicenseManagement

    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    before = path.read_bytes()
    for name in (str(path), f"{path.as_uri()}?mode=rw"):
        with pytest.raises(AdapterUnavailable, match="another application"):
            LicenseManagement(env={**stores.sqlite_env(path), "SQLITE_DBNAME": name})
    assert path.read_bytes() == before  # not even switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-app.db"]
    # an empty file and a store of ours open
    empty = tmp_path / "empty.db"
    empty.touch()
    LicenseManagement(env=stores.sqlite_env(empty)).close()
    LicenseManagement(env=stores.sqlite_env(empty)).close()
