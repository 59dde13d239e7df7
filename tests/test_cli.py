"""The command line, driven through its real entry point over a SQLite file.

Most tests use Typer's runner on ``esmc_licensing.cli.app``; the demo, the
no-terminal refusal and the terminal prompt also run the installed console
script in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import cli
from esmc_licensing.adapters.memory import ManualClock
from esmc_licensing.testing import stores

from .cli_support import _script, ids, js, ok, refused

DEMO_IDS = {d.public_id for d in cli.DEMO_LICENSES if d.in_demo}
SPARE = "DMO-TRY-001"
KEYS = {d.public_id: cli.demo_vendor(ManualClock()).key_of(d.public_id) for d in cli.DEMO_LICENSES}
ALL_KEYS = list(KEYS.values())

Run = Callable[..., Result]

#: the demo vendor whatever the developer's environment configures (docs/cli.md)
NO_VENDOR_CONFIG: dict[str, str | None] = {
    name: None for name in ("ESMC_CONFIG", "ESMC_CREDENTIALS_FILE", "ESMC_ACTIVATION_URL",
                            "ESMC_ACCOUNTS_URL", "ESMC_EMA2_URL", "ESMC_EBA_URL",
                            "ESMC_ELA_URL", "ESMC_SEAL_KEY")
}


def _no_key_in(*texts: str) -> None:
    for text in texts:
        for key in ALL_KEYS:
            assert key not in text
            assert key.replace("-", "") not in text


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "licenses.db"


@pytest.fixture
def run(store: Path) -> Run:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, store_arg: str | None = None) -> Result:
        result = runner.invoke(
            cli.app, ["--store", store_arg or str(store), *args], input=input,
            env={"ESMC_LICENSING_STORE": None, "ESMC_LICENSING_USER": None, "COLUMNS": "200",
                 **NO_VENDOR_CONFIG},
        )
        _no_key_in(result.stdout, result.stderr)
        return result

    return invoke


@pytest.fixture
def demo(run: Run) -> Run:
    result = run("demo")
    assert result.exit_code == 0, result.output
    return run


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESMC_LICENSING_")}
    env["COLUMNS"] = "200"
    return env


def _demo_in(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_script(), "demo"], check=False, cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


# -- the demo --------------------------------------------------------------------


def test_demo_runs_twice_in_a_subprocess_on_the_default_store(tmp_path: Path) -> None:
    first = _demo_in(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "esmc-licensing.db").exists()
    second = _demo_in(tmp_path)
    assert second.returncode == 0, second.stderr
    for out in (first.stdout, second.stdout):
        for who in ("Administrator", "John", "Larry", "Makio"):
            assert f"{who} (home group" in out
        assert "sees 6 license(s)" in out and "sees 2 license(s)" in out
        assert "sees 1 license(s)" in out
        _no_key_in(out)
    assert "added license" in first.stdout and "created user John" in first.stdout
    assert "added license" not in second.stdout and "created" not in second.stdout
    # the tables are the same the second time
    assert first.stdout[first.stdout.index("Administrator ("):] == (
        second.stdout[second.stdout.index("Administrator ("):]
    )
    # R32: the new store's data key file is announced once, then used silently
    assert first.stderr.count("Created the data key file") == 1, first.stderr
    assert second.stderr == ""
    assert (tmp_path / "esmc-licensing.db.datakey").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "esmc-licensing.db").stat().st_mode & 0o777 == 0o600


def test_r13_demo_refuses_a_store_it_did_not_create_before_writing_anything(
    run: Run, store: Path
) -> None:
    ok(run("create-group", "Lab"))
    before = ok(run("audit", "export")).stdout
    message = refused(run("demo"), 2, "demo runs only on a new store or one it created",
                      "group All/Lab", "--store demo.db")
    assert "nothing was changed" in message
    assert ok(run("audit", "export")).stdout == before
    assert not store.with_name(store.name + ".seal-key").exists()


def test_r13_demo_refuses_a_store_holding_a_license_of_its_own(tmp_path: Path) -> None:
    from esmc_licensing import Adapters, InMemoryActivationServer, InvalidInput, LicenseManagement

    vendor = InMemoryActivationServer()
    app = LicenseManagement(adapters=Adapters(activation_server=vendor))
    admin = app.administrator
    app.add_license_key(admin, vendor.issue(public_id="ABC-000-001",
                                            product="ESET Endpoint Security", units=5,
                                            expires=datetime(2030, 1, 1).date()))
    with pytest.raises(InvalidInput, match="license ABC-000-001"):
        cli._refuse_unless_demo_store(app, admin, cli.parse_store(str(tmp_path / "x.db")))


def test_r13_demo_refuses_a_configured_vendor_before_creating_the_store(tmp_path: Path) -> None:
    store = tmp_path / "new.db"
    result = CliRunner().invoke(
        cli.app, ["--store", str(store), "demo"],
        env={"ESMC_LICENSING_STORE": None, "ESMC_LICENSING_USER": None, **NO_VENDOR_CONFIG,
             "ESMC_ACTIVATION_URL": "http://127.0.0.1:9/activation"},
    )
    refused(result, 2, "built-in demo vendor", "a vendor is configured")
    assert list(tmp_path.iterdir()) == []


def test_r13_demo_again_leaves_a_pool_where_an_administrator_moved_it(demo: Run) -> None:
    johns = ids(demo("--as", "John", "licenses", "--json"))
    assert johns
    ok(demo("move", "Acme Corp", "--to", "Sydney"))
    again = ok(demo("demo")).stdout
    assert "moved pool" not in again
    assert ids(demo("--as", "John", "licenses", "--json")) == set()
    assert johns <= ids(demo("--as", "Larry", "licenses", "--json"))


def test_r13_demo_distributes_one_pool_to_each_branch(demo: Run) -> None:
    assert ids(demo("licenses", "--json")) == DEMO_IDS
    assert ids(demo("--as", "John", "licenses", "--json")) == {"DMO-SDG-001", "DMO-SDG-002"}
    assert ids(demo("--as", "larry", "licenses", "--json")) == {"DMO-SYD-001", "DMO-SYD-002"}
    assert ids(demo("--as", "Makio", "licenses", "--json")) == {"DMO-TYO-001"}
    groups = {p["name"]: p["group"] for p in js(demo("pools", "--json"))}  # type: ignore[union-attr]
    assert groups == {"Acme Corp": "San Diego", "Globex Pty Ltd": "Sydney",
                      "Kaiju Systems KK": "Tokyo", "Initech": "All"}


def test_r8_demo_shows_a_mix_of_statuses(demo: Run) -> None:
    rows = {r["public_id"]: r["status"] for r in js(demo("licenses", "--json"))}  # type: ignore[union-attr]
    assert rows["DMO-SDG-001"] == {"level": "OK", "reasons": [], "registration_url": None}
    assert rows["DMO-SDG-002"]["reasons"] == ["EXPIRING"]
    assert rows["DMO-SYD-001"] == {"level": "WARNING", "reasons": ["AT_RISK_OF_OVERUSE"],
                                   "registration_url": None}
    assert rows["DMO-SYD-002"]["level"] == "EXPIRED"
    assert rows["DMO-TYO-001"]["level"] == "ERROR"
    assert rows["DMO-TYO-001"]["reasons"] == ["NOT_REGISTERED"]
    assert rows["DMO-TYO-001"]["registration_url"].startswith("https://")
    assert rows["DMO-HQ0-001"]["level"] == "OK"
    table = ok(demo("licenses")).stdout
    assert "WARNING (at risk of overuse)" in table and "ERROR (not registered)" in table


# -- queries and --json ------------------------------------------------------------


def test_licenses_json_has_the_views_field_names(demo: Run) -> None:
    [row] = js(demo("licenses", "--json", "--text", "DMO-SDG-001"))  # type: ignore[misc]
    assert set(row) >= {
        "public_id", "pool_id", "group", "group_id", "license_type", "product", "units",
        "used_units", "offline_units", "subunits", "expires", "subscription", "owner",
        "contact", "source", "tags", "status",
    }
    assert row["group"] == "San Diego"
    uuid.UUID(row["group_id"])
    uuid.UUID(row["pool_id"])
    assert row["license_type"] == "BUSINESS" and row["source"] == "LICENSE_KEY"
    assert row["units"] == 50 and row["used_units"] == 12
    assert datetime.fromisoformat(row["expires"]).date() > datetime.now(UTC).date()
    assert row["key_last4"] == KEYS["DMO-SDG-001"][-4:]


def test_r8a_license_filters(demo: Run) -> None:
    assert ids(demo("licenses", "--json", "--level", "warning")) == {"DMO-SDG-002", "DMO-SYD-001"}
    assert ids(demo("licenses", "--json", "--level", "EXPIRED", "--level", "ERROR")) == {
        "DMO-SYD-002", "DMO-TYO-001"}
    assert ids(demo("licenses", "--json", "--reason", "not-registered")) == {"DMO-TYO-001"}
    assert ids(demo("licenses", "--json", "--type", "trial")) == set()
    assert ids(demo("licenses", "--json", "--product", "ESET Mail Security")) == {"DMO-SYD-002"}
    assert ids(demo("licenses", "--json", "--text", "globex")) == {"DMO-SYD-001", "DMO-SYD-002"}
    assert ids(demo("--as", "John", "licenses", "--json", "--text", "globex")) == set()
    assert "No licenses" in ok(demo("licenses", "--type", "NFR")).stdout
    refused(demo("licenses", "--level", "PURPLE"), 2, "PURPLE")


def test_license_shows_details_but_never_the_key(demo: Run) -> None:
    data = js(demo("license", "dmo-tyo-001", "--json"))
    assert isinstance(data, dict)
    assert data["public_id"] == "DMO-TYO-001" and data["group"] == "Tokyo"
    table = ok(demo("license", "DMO-TYO-001")).stdout
    assert "Register at" in table and "XXXX-XXXX-XXXX-XXXX-" + KEYS["DMO-TYO-001"][-4:] in table
    refused(demo("license", "not-an-id"), 2, "Public ID")


def test_r14_invisible_license_is_not_found_like_a_missing_one(demo: Run) -> None:
    hidden = refused(demo("--as", "John", "license", "DMO-SYD-001"), 1)
    missing = refused(demo("--as", "John", "license", "ZZZ-ZZZ-ZZZ"), 1)
    assert hidden == "error: license DMO-SYD-001 not found"
    assert missing == "error: license ZZZ-ZZZ-ZZZ not found"
    refused(demo("--as", "John", "history", "DMO-SYD-001"), 1, "not found")
    refused(demo("--as", "John", "history", "Globex Pty Ltd"), 1, "not found")
    refused(demo("--as", "John", "move", "Globex Pty Ltd", "--to", "San Diego"), 1, "not found")


def test_pools_json(demo: Run) -> None:
    rows = js(demo("pools", "--json"))
    assert isinstance(rows, list)
    acme = next(r for r in rows if r["name"] == "Acme Corp")
    assert acme["public_ids"] == ["DMO-SDG-001", "DMO-SDG-002"]
    assert acme["group"] == "San Diego" and acme["source"] == "LICENSE_KEY"
    assert {"pool_id", "group_id", "tags", "indivisible"} <= set(acme)
    assert [r["name"] for r in js(demo("--as", "Makio", "pools", "--json"))] == [  # type: ignore[union-attr]
        "Kaiju Systems KK"]
    assert "Acme Corp" in ok(demo("pools")).stdout


def test_r29_history_timeline_with_since_and_until(demo: Run) -> None:
    entries = js(demo("history", "DMO-SDG-001", "--json"))
    assert isinstance(entries, list)
    whats = [e["what"] for e in entries]
    assert whats[:3] == ["LicenseAdded", "PoolCreated", "LicenseJoinedPool"]
    assert "PoolMoved" in whats
    move = next(e for e in entries if e["what"] == "PoolMoved")  # names beside ids (R29)
    assert (move["details"]["from_group_name"], move["details"]["to_group_name"]) == (
        "All", "San Diego")
    added = entries[0]["details"]
    assert added["units"] == 50 and added["subscription"] is False  # typed in JSON too
    assert {e["actor_name"] for e in entries} == {"Administrator"}
    for e in entries:
        assert datetime.fromisoformat(e["when"]).tzinfo is not None
        assert {"when", "actor", "what", "target", "details"} <= set(e)
    today = datetime.now(UTC).date()
    assert js(demo("history", "DMO-SDG-001", "--json", "--since",
                   str(today + timedelta(days=1)))) == []
    assert js(demo("history", "DMO-SDG-001", "--json", "--until",
                   str(today - timedelta(days=1)))) == []
    assert len(js(demo("history", "DMO-SDG-001", "--json", "--since", str(today),  # type: ignore[arg-type]
                       "--until", str(today)))) == len(entries)
    assert js(demo("history", "DMO-SDG-001", "--json", "--since",
                   "2999-01-01T00:00:00+00:00")) == []
    pool_history = js(demo("history", "acme corp", "--json"))
    assert pool_history[0]["what"] == "PoolCreated"  # type: ignore[index]
    table = ok(demo("history", "DMO-SDG-001")).stdout
    assert "from_group=All, to_group=San Diego" in table
    assert "Nothing happened" in ok(demo("history", "DMO-SDG-001", "--since", "2999-01-01")).stdout
    refused(demo("history", "DMO-SDG-001", "--since", "yesterday"), 2, "--since")


def test_r8a_save_filter_and_filters(demo: Run) -> None:
    assert js(demo("filters", "--json")) == {}
    ok(demo("save-filter", "Needs attention", "--level", "WARNING", "--level", "error"))
    ok(demo("--as", "John", "save-filter", "Mine", "--text", "acme"))
    saved = js(demo("filters", "--json"))
    assert saved == {"Needs attention": {"levels": ["ERROR", "WARNING"], "reasons": [],
                                         "tags": [], "types": [], "products": [], "text": None,
                                         "depleting_within": None}}
    assert list(js(demo("--as", "John", "filters", "--json"))) == ["Mine"]  # type: ignore[call-overload]
    assert ids(demo("licenses", "--json", "--filter", "needs attention")) == {
        "DMO-SDG-002", "DMO-SYD-001", "DMO-TYO-001"}
    assert "level ERROR or WARNING" in ok(demo("filters")).stdout
    refused(demo("licenses", "--filter", "Mine"), 1, "not found")
    refused(demo("save-filter", "Bad", "--type", "FREE"), 2)


# -- directory commands ------------------------------------------------------------


def test_r10_r11_create_group_user_and_grant(demo: Run) -> None:
    ok(demo("create-group", "Berlin", "--parent", "San Diego"))
    ok(demo("create-user", "Greta", "--home", "Berlin"))
    ok(demo("grant", "Greta", "Berlin", "read"))
    assert ids(demo("--as", "Greta", "licenses", "--json")) == set()
    ok(demo("grant", "Greta", "San Diego", "USE"))
    assert ids(demo("--as", "Greta", "licenses", "--json")) == {"DMO-SDG-001", "DMO-SDG-002"}
    refused(demo("create-group", "berlin", "--parent", "San Diego"), 1, "already exists")
    refused(demo("create-user", "greta", "--home", "Berlin"), 1, "already exists")
    refused(demo("create-user", "Hans", "--home", "Atlantis"), 1, "not found")
    refused(demo("grant", "Nobody", "Berlin", "READ"), 1, "not found")
    refused(demo("create-group", "   "), 2, "empty")


def test_r12_branch_administrator_cannot_administer(demo: Run) -> None:
    refused(demo("--as", "John", "create-group", "Rogue"), 1, "administrator")
    refused(demo("--as", "John", "add-key", "-", input=KEYS[SPARE]), 1, "administrator")
    refused(demo("--as", "John", "move", "Acme Corp", "--to", "San Diego"), 1, "administrator")
    # R14: a group John cannot see is "not found", as one that does not exist
    refused(demo("--as", "John", "move", "Acme Corp", "--to", "Sydney"), 1, "Sydney not found")
    refused(demo("--as", "John", "remove", "Acme Corp", "--yes"), 1, "administrator")
    assert SPARE not in ids(demo("licenses", "--json"))


def test_unknown_acting_user_is_bad_input(demo: Run) -> None:
    refused(demo("--as", "Mallory", "licenses"), 2, "--as 'Mallory': no such user")


def test_usage_errors_exit_2(demo: Run) -> None:
    assert demo("move", "Initech").exit_code == 2  # --to missing
    assert demo("grant", "John", "Tokyo", "ADMIN").exit_code == 2
    assert demo("no-such-command").exit_code == 2


# -- adding by key (R2, R15) ----------------------------------------------------------


def test_r2_key_never_printed(demo: Run, store: Path) -> None:
    key = KEYS[SPARE]
    added = ok(demo("add-key", "-", input=key))
    assert SPARE in added.stdout and "Added license" in added.stdout
    again = ok(demo("--debug", "add-key", "-", input=key.lower()))
    assert "already present" in again.stdout
    piped = js(demo("add-key", "-", "--json", input=key + "\n"))
    assert piped == {"public_id": SPARE, "added": False, "pool_id": piped["pool_id"],  # type: ignore[index]
                     "group": "All", "group_id": piped["group_id"]}  # type: ignore[index]
    for args in (("history", SPARE, "--json"), ("history", "Hooli Inc", "--json"),
                 ("license", SPARE, "--json"), ("licenses", "--json"), ("history", SPARE)):
        result = ok(demo(*args))
        _no_key_in(result.stdout, result.stderr)
    # the R2 check is made on every output by the fixture, errors included
    refused(demo("add-key", "-", input=key[:-1] + "#"), 2)


def test_r15_add_key_from_stdin_on_a_fresh_store(run: Run) -> None:
    result = ok(run("add-key", "-", input=f"\n  {KEYS['DMO-SDG-001']}  \n"))
    assert "DMO-SDG-001" in result.stdout and "OK" in result.stdout
    assert ids(run("licenses", "--json")) == {"DMO-SDG-001"}


def test_r15_malformed_key_is_bad_input_and_not_echoed(demo: Run) -> None:
    err = refused(demo("add-key", "-", input="ABCD-1234-SECRET-TYPO"), 2, "not a license key")
    assert "SECRET" not in err
    refused(demo("add-key", "-", input=""), 2, "no license key")


def test_r15_rejected_key_is_refused_showing_only_the_last_four(demo: Run) -> None:
    err = refused(demo("add-key", "-", input="AAAA-BBBB-CCCC-DDDD-WXYZ"), 1, "WXYZ")
    assert "AAAA" not in err


# -- pools: move and remove (R13, R19) ------------------------------------------------


def test_r13_move_pools_by_name_id_and_prefix(demo: Run) -> None:
    rows = {r["name"]: r for r in js(demo("pools", "--json"))}  # type: ignore[union-attr]
    initech = rows["Initech"]["pool_id"]
    ok(demo("move", "initech", "--to", "Tokyo"))
    assert ids(demo("--as", "Makio", "licenses", "--json")) == {"DMO-TYO-001", "DMO-HQ0-001"}
    ok(demo("move", initech[:8], rows["Acme Corp"]["pool_id"], "--to", "Sydney"))
    assert "DMO-HQ0-001" in ids(demo("--as", "Larry", "licenses", "--json"))
    assert ids(demo("--as", "John", "licenses", "--json")) == set()
    refused(demo("move", "Nope Inc", "--to", "Tokyo"), 1, "not found")
    refused(demo("move", "Initech", "--to", "Atlantis"), 1, "not found")
    refused(demo("move", str(uuid.uuid4()), "--to", "Tokyo"), 1, "not found")


def test_r37_move_dry_run_shows_the_impact_and_moves_nothing(demo: Run) -> None:
    before = js(demo("pools", "--json"))
    shown = js(demo("move", "Acme Corp", "--to", "Sydney", "--dry-run", "--json"))
    assert shown["gains"] == {"Larry": ["DMO-SDG-001", "DMO-SDG-002"]}  # type: ignore[index]
    assert shown["loses"] == {"John": ["DMO-SDG-001", "DMO-SDG-002"]}  # type: ignore[index]
    assert js(demo("pools", "--json")) == before
    text = ok(demo("move", "Acme Corp", "--to", "Sydney", "--dry-run")).stdout
    assert "Larry would gain DMO-SDG-001, DMO-SDG-002" in text
    assert "nothing moved" in text
    refused(demo("--as", "John", "move", "Acme Corp", "--to", "Sydney", "--dry-run"), 1)


def test_r19_remove_asks_for_confirmation(demo: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    declined = demo("remove", "Initech", input="n\n")
    assert "Remove 1 license pool(s) (Initech) with 1 license(s)?" in declined.stdout
    refused(declined, 1, "not confirmed")
    assert "DMO-HQ0-001" in ids(demo("licenses", "--json"))
    ok(demo("remove", "Initech", input="y\n"))
    assert "DMO-HQ0-001" not in ids(demo("licenses", "--json"))
    history = js(demo("history", "DMO-HQ0-001", "--json"))
    assert history[-1]["what"] in {"LicenseRemoved", "PoolRemoved"}  # type: ignore[index]


def test_r19_remove_without_a_tty_refuses(demo: Run) -> None:
    refused(demo("remove", "Initech"), 1, "--yes", "no terminal")
    assert "DMO-HQ0-001" in ids(demo("licenses", "--json"))


def test_r19_remove_with_yes(demo: Run) -> None:
    ok(demo("remove", "Initech", "Kaiju Systems KK", "--yes"))
    assert ids(demo("licenses", "--json")) == DEMO_IDS - {"DMO-HQ0-001", "DMO-TYO-001"}
    assert ids(demo("--as", "Makio", "licenses", "--json")) == set()
    refused(demo("remove", "Initech", "--yes"), 1, "not found")


def test_r19_remove_in_a_subprocess_without_a_tty_refuses(demo: Run, store: Path) -> None:
    result = subprocess.run([*_script(), "--store", str(store), "remove", "Initech"],
                            check=False, env=_env(), capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "--yes" in result.stderr
    assert "DMO-HQ0-001" in ids(demo("licenses", "--json"))


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_r19_remove_prompts_on_a_real_terminal(demo: Run, store: Path) -> None:
    import pty  # noqa: F401 - POSIX only

    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen([*_script(), "--store", str(store), "remove", "Initech"],
                                env=_env(), stdin=follower, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.write(leader, b"y\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, err
    assert "Remove 1 license pool(s)" in out and "Removed 1 license pool(s)" in out
    assert "DMO-HQ0-001" not in ids(demo("licenses", "--json"))


# -- tags (R28) ---------------------------------------------------------------------------


def test_r28_tags(demo: Run) -> None:
    ok(demo("tag", "create", "audit"))
    ok(demo("tag", "assign", "DMO-SDG-001", "audit"))
    ok(demo("--as", "John", "tag", "assign", "Acme Corp", "audit"))  # John has WRITE there
    assert ids(demo("licenses", "--json", "--tag", "audit")) == {"DMO-SDG-001", "DMO-SDG-002"}
    [pool] = [p for p in js(demo("pools", "--json")) if p["name"] == "Acme Corp"]  # type: ignore[union-attr]
    assert pool["tags"] == ["audit"]
    tagged_pools = js(demo("pools", "--json", "--tag", "AUDIT"))
    assert [p["name"] for p in tagged_pools] == ["Acme Corp"]  # type: ignore[index]
    ok(demo("--as", "John", "tag", "unassign", "Acme Corp", "audit"))
    assert ids(demo("licenses", "--json", "--tag", "audit")) == {"DMO-SDG-001"}
    refused(demo("--as", "Larry", "tag", "assign", "DMO-SYD-001", "audit"), 1, "WRITE")
    refused(demo("--as", "John", "tag", "assign", "DMO-SYD-001", "audit"), 1, "not found")
    refused(demo("--as", "John", "tag", "delete", "audit"), 1, "administrator")
    refused(demo("tag", "create", "AUDIT"), 1, "already exists")
    ok(demo("tag", "delete", "audit", "--yes"))
    assert ids(demo("licenses", "--json", "--tag", "audit")) == set()
    refused(demo("tag", "assign", "DMO-SDG-001", "audit"), 1, "not found")


# -- stores and exit code 3 --------------------------------------------------------------


def test_unreachable_postgres_exits_3(run: Run) -> None:
    err = refused(run("pools", store_arg="postgresql://nobody@127.0.0.1:1/x?connect_timeout=1"),
                  3, "PostgreSQL nobody@127.0.0.1:1/x")
    assert "cannot open the store" in err


def test_unwritable_store_path_exits_3_and_creates_nothing(run: Run, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused(run("demo", store_arg=str(blocker / "store.db")), 3, "cannot open the store")
    refused(run("licenses", store_arg=str(tmp_path / "missing-dir" / "x.db")), 3, "does not exist")
    refused(run("pools", store_arg=str(tmp_path)), 3, "is a directory")
    assert not (tmp_path / "missing-dir").exists()


def test_store_settings_and_secrets(run: Run, tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    ok(run("create-group", "Lab", store_arg=f"PERSISTENCE_MODULE=eventsourcing.sqlite,"
                                           f"SQLITE_DBNAME={db}"))
    assert db.exists()
    assert ok(run("demo", store_arg=":memory:")).stdout.count("sees") == 4
    refused(run("pools", store_arg="PERSISTENCE_MODULE=no.such.module"), 2, "settings")
    err = refused(run("pools", store_arg="postgresql://me:hunter2@127.0.0.1:1/x"), 2,
                  "POSTGRES_PASSWORD")
    assert "hunter2" not in err
    err = refused(run("pools", store_arg="PERSISTENCE_MODULE=eventsourcing.postgres,"
                                         "POSTGRES_PASSWORD=hunter2"), 2, "environment")
    assert "hunter2" not in err


def test_demo_on_postgres(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = stores.postgres_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    with stores.postgres_schema() as schema:
        url = (f"postgresql://{stores.POSTGRES_USER}@{stores.POSTGRES_HOST}:"
               f"{stores.POSTGRES_PORT}/{stores.POSTGRES_DB}?schema={schema}")
        # R32: a PostgreSQL store gets no key made for it: one must be configured
        monkeypatch.delenv("ESMC_DATA_KEY", raising=False)
        monkeypatch.delenv("ESMC_DATA_KEY_FILE", raising=False)
        refused(run("demo", store_arg=url), 2, "no data key is configured", "ESMC_DATA_KEY")
        monkeypatch.setenv("ESMC_DATA_KEY", stores.TEST_DATA_KEY)
        ok(run("demo", store_arg=url))
        ok(run("demo", store_arg=url))
        assert ids(run("--as", "John", "licenses", "--json", store_arg=url)) == {
            "DMO-SDG-001", "DMO-SDG-002"}


def test_debug_shows_the_traceback(demo: Run) -> None:
    quiet = refused(demo("license", "ZZZ-ZZZ-ZZZ"), 1)
    loud = demo("--debug", "license", "ZZZ-ZZZ-ZZZ")
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr and "NotFound" in loud.stderr
    assert loud.stderr.strip().endswith(quiet)


def test_every_command_has_help(run: Run) -> None:
    for args in (["demo"], ["licenses"], ["license"], ["pools"], ["history"], ["filters"],
                 ["create-group"], ["create-user"], ["grant"], ["add-key"], ["move"],
                 ["remove"], ["tag"], ["tag", "create"], ["tag", "delete"], ["tag", "assign"],
                 ["tag", "unassign"], ["save-filter"]):
        result = run(*args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.stdout


def test_readme_lists_the_demo_vendor_keys() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for pid, key in KEYS.items():
        assert f"| {pid} | `{key}` |" in readme


def test_store_option_maps_to_eventsourcing_settings(tmp_path: Path) -> None:
    pg = cli.parse_store("postgresql://nobody@127.0.0.1:1/x?schema=s1")
    assert pg.env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (pg.env["POSTGRES_USER"], pg.env["POSTGRES_HOST"], pg.env["POSTGRES_PORT"],
            pg.env["POSTGRES_DBNAME"], pg.env["POSTGRES_SCHEMA"]) == (
        "nobody", "127.0.0.1", "1", "x", "s1")
    default = cli.parse_store(None)
    assert default.env == {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                           "SQLITE_DBNAME": "esmc-licensing.db"}
    other = cli.parse_store(str(tmp_path / "a.db"))
    assert other.sqlite_path == tmp_path / "a.db"
    settings = cli.parse_store("PERSISTENCE_MODULE=eventsourcing.sqlite,SQLITE_DBNAME=b.db")
    assert settings.env == {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": "b.db"}


def test_store_from_the_environment(store: Path) -> None:
    runner = CliRunner()
    env = {"ESMC_LICENSING_STORE": str(store), "ESMC_LICENSING_USER": "Administrator"}
    assert runner.invoke(cli.app, ["demo"], env=env).exit_code == 0
    result = runner.invoke(cli.app, ["--as", "Makio", "licenses", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert {r["public_id"] for r in json.loads(result.stdout)} == {"DMO-TYO-001"}


def test_r11_groups_users_permissions_and_revoke_on_the_command_line(demo: Run) -> None:
    paths = [g["path"] for g in js(demo("groups", "--json"))]  # type: ignore[union-attr]
    assert paths == ["All", "All/San Diego", "All/Sydney", "All/Tokyo"]
    assert [g["path"] for g in js(demo("--as", "Larry", "groups", "--json"))] == [  # type: ignore[union-attr]
        "All/Sydney"
    ]
    users = {u["name"]: u for u in js(demo("users", "--json"))}  # type: ignore[union-attr]
    assert users["Larry"]["grants"] == {"All/Sydney": "USE"}
    ok(demo("create-group", "Lab", "--parent", "Sydney"))
    shown = js(demo("permissions", "Larry", "--json"))
    assert {"group": "All/Sydney/Lab", "permission": "USE", "inherited": True} in shown  # type: ignore[operator]
    refused(demo("--as", "John", "revoke", "Larry", "San Diego"), 1, "administrator")
    refused(demo("--as", "John", "revoke", "Larry", "Sydney"), 1, "not found")  # R14
    assert "Revoked USE on Sydney from Larry" in ok(demo("revoke", "Larry", "Sydney")).stdout
    assert "nothing changed" in ok(demo("revoke", "Larry", "Sydney")).stdout
    assert ids(demo("--as", "Larry", "licenses", "--json")) == set()
    assert js(demo("tag", "list", "--json")) == []


def test_version_quiet_and_completion(run: Run) -> None:
    from importlib.metadata import version

    assert ok(run("--version")).stdout.strip() == f"esmc-licensing {version('esmc-licensing')}"
    assert ok(run("-q", "tag", "create", "renewal")).stdout == ""
    assert ok(run("--quiet", "tag", "list")).stdout.strip() == "renewal"
    assert "--install-completion" in ok(run("--help")).stdout


def test_a_query_on_a_store_that_does_not_exist_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "esmc-licensing.dbb"
    runner = CliRunner()
    for query in (["licenses", "--json"], ["pools"], ["groups"], ["alerts"], ["tag", "list"]):
        result = runner.invoke(cli.app, ["--store", str(missing), *query])
        err = refused(result, 3, "does not exist", "does not create")
        assert str(missing) in err
    assert not missing.exists()
    ok(runner.invoke(cli.app, ["--store", str(missing), "create-group", "Lab"]))
    assert missing.exists()


def test_r14_unknown_names_get_suggestions_from_what_the_actor_sees_and_groups_take_paths(
    demo: Run,
) -> None:
    err = refused(demo("create-user", "Greta", "--home", "San Diag"), 1, "not found")
    assert "did you mean 'San Diego'" in err and "esmc-licensing groups" in err
    err = refused(demo("grant", "Jon", "San Diego", "READ"), 1, "not found")
    assert "did you mean 'John'" in err
    # John cannot see Sydney: no suggestion names it (R14)
    err = refused(demo("--as", "John", "create-user", "Greta", "--home", "Sydny"), 1)
    assert "Sydney" not in err
    ok(demo("create-group", "Lab", "--parent", "All/San Diego"))
    assert "All/San Diego/Lab" in [g["path"] for g in js(demo("groups", "--json"))]  # type: ignore[union-attr]
    refused(demo("create-group", "Lab2", "--parent", "All/Sydny"), 1, "did you mean 'All/Sydney'")


def test_r30_every_query_takes_as_of(demo: Run) -> None:
    for query in (["computers"], ["filters"], ["licenses"], ["pools"], ["alerts"]):
        shown = ok(demo(*query, "--as-of", "2000-01-01"))
        assert "Nothing was recorded before 2000-01-01" in shown.stdout, query
    today = datetime.now(UTC).date().isoformat()
    assert js(demo("filters", "--as-of", today, "--json")) == js(demo("filters", "--json"))
    assert js(demo("computers", "--as-of", today, "--json")) == js(demo("computers", "--json"))
    live = js(demo("alerts", "--json"))
    assert live and js(demo("alerts", "--as-of", today, "--json")) == [
        {**a, "deliveries": {}} for a in live  # type: ignore[dict-item]
    ]
