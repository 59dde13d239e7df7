"""The command line's configuration is checked when it is loaded (issue 12).

Timeouts are finite, positive and bounded; attempts bounded (``MAX_ATTEMPTS``);
no URL carries a credential in any part; and a license key is never taken as a
command-line argument (R2: other users see arguments in the process list).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from esmc_licensing import cli
from esmc_licensing.adapters.memory import ManualClock
from esmc_licensing.config import MAX_ATTEMPTS, MAX_TIMEOUT, ConfigError, load_config

from .cli_support import ok, refused

KEYS = {d.public_id: cli.demo_vendor(ManualClock()).key_of(d.public_id) for d in cli.DEMO_LICENSES}
URL = "ESMC_ACTIVATION_URL"


def load(env: dict[str, str], tmp_path: Path, toml: str | None = None):  # type: ignore[no-untyped-def]
    path = None
    if toml is not None:
        path = tmp_path / "esmc-licensing.toml"
        path.write_text(toml)
    return load_config(path, env, cwd=tmp_path)


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "1e400", "0", "-1", "abc", str(MAX_TIMEOUT + 1)]
)
def test_config_timeout_must_be_finite_positive_and_bounded(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="ESMC_HTTP_TIMEOUT"):
        load({"ESMC_HTTP_TIMEOUT": value}, tmp_path)


def test_config_timeout_in_the_file_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http\.timeout"):
        load({}, tmp_path, "[http]\ntimeout = nan\n")
    with pytest.raises(ConfigError, match=r"http\.timeout"):
        load({}, tmp_path, "[http]\ntimeout = inf\n")
    assert load({}, tmp_path, "[http]\ntimeout = 2.5\n").timeout == 2.5


@pytest.mark.parametrize("value", ["100000000", "0", "-3", "2.5", "nan", str(MAX_ATTEMPTS + 1)])
def test_config_attempts_are_bounded(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="ESMC_HTTP_ATTEMPTS"):
        load({"ESMC_HTTP_ATTEMPTS": value}, tmp_path)


def test_config_attempts_in_the_file_must_be_whole(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="whole number"):
        load({}, tmp_path, "[http]\nattempts = 2.5\n")
    assert load({"ESMC_HTTP_ATTEMPTS": str(MAX_ATTEMPTS)}, tmp_path).attempts == MAX_ATTEMPTS


@pytest.mark.parametrize(
    "url",
    [
        "https://vendor.example/?password=S3cr3t",
        "https://vendor.example/api?user=me&passwd=S3cr3t",
        "https://vendor.example/?api_key=S3cr3t",
        "https://vendor.example/?token=S3cr3t",
        "https://vendor.example/#access_token=S3cr3t",
        "https://me:S3cr3t@vendor.example/",
        "https://me@vendor.example/",
    ],
)
def test_config_no_credentials_in_any_url_part(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="credentials") as caught:
        load({URL: url}, tmp_path)
    assert "S3cr3t" not in str(caught.value)
    with pytest.raises(ConfigError) as in_file:
        load({}, tmp_path, f'[vendor]\nactivation_url = "{url}"\n')
    assert "S3cr3t" not in str(in_file.value)


def test_config_a_bad_url_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid URL"):
        load({URL: "https://vendor.example:99999999/"}, tmp_path)
    with pytest.raises(ConfigError) as caught:
        load({URL: "ftp://S3cr3t@vendor.example/"}, tmp_path)
    assert "S3cr3t" not in str(caught.value)


def test_config_a_plain_url_is_accepted(tmp_path: Path) -> None:
    cfg = load({URL: "https://vendor.example/api/?region=eu"}, tmp_path)
    assert cfg.activation_url == "https://vendor.example/api/?region=eu"


def test_config_errors_exit_2_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli.app,
        ["--store", str(tmp_path / "s.db"), "sync"],
        env={"ESMC_HTTP_TIMEOUT": "nan", "ESMC_ACTIVATION_URL": "http://127.0.0.1:1"},
    )
    refused(result, 2, "ESMC_HTTP_TIMEOUT")


# -- add-key: never the key as an argument (R2) ---------------------------------------------------


def test_r2_add_key_refuses_the_key_as_an_argument_and_reads_stdin_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.db"
    key = KEYS["DMO-TRY-001"]

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(
            cli.app, ["--store", str(store), *args], input=input, env={"COLUMNS": "200"}
        )

    err = refused(run("add-key", key), 2, "add-key -", "--file")
    assert key not in err and key[-4:] not in err
    assert "DMO-TRY-001" not in ok(run("licenses")).stdout  # nothing added
    assert "DMO-TRY-001" in ok(run("add-key", "-", input=key + "\n")).stdout
    other = KEYS["DMO-SDG-001"]
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"\n{other}\n")
    added = ok(run("add-key", "--file", str(key_file)))
    assert "DMO-SDG-001" in added.stdout and other not in added.stdout
    refused(run("add-key", "-", "--file", str(key_file)), 2, "not both")
    refused(run("add-key", "--file", str(tmp_path / "missing.txt")), 2, "does not exist")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    refused(run("add-key", "--file", str(empty)), 2, "no license key in the file")
