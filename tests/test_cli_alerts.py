"""R35/R36 on the command line: ``alerts``, ``alerts deliver``, the forecast column
of ``licenses`` and ``--depleting-within``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import cli

from .cli_support import ids, js, ok, refused
from .test_cli import NO_VENDOR_CONFIG, Run, _no_key_in

NO_SINKS: dict[str, str | None] = {name: None for name in cli.ALERT_SINK_VARIABLES}


@pytest.fixture
def run(tmp_path: Path) -> Run:
    runner = CliRunner()
    store = tmp_path / "licenses.db"

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(
            cli.app,
            ["--store", str(store), *args],
            env={
                "ESMC_LICENSING_STORE": None,
                "ESMC_LICENSING_USER": None,
                "COLUMNS": "250",
                **NO_VENDOR_CONFIG,
                **NO_SINKS,
                **(env or {}),
            },
        )
        _no_key_in(result.stdout, result.stderr)
        return result

    ok(invoke("demo"))
    return invoke


def test_r35_cli_alerts_of_the_demo(run: Run) -> None:
    """R35: the demo's licenses in a condition have each raised one alert; a
    branch administrator sees those of their group only; ``--since`` narrows."""
    rows = js(run("alerts", "--json"))
    assert isinstance(rows, list)
    assert {(r["public_id"], r["reason"], r["entered"]) for r in rows} == {
        ("DMO-SDG-002", "EXPIRING", True),
        ("DMO-SYD-001", "AT_RISK_OF_OVERUSE", True),
        ("DMO-SYD-002", "EXPIRED", True),
        ("DMO-TYO-001", "NOT_REGISTERED", True),
    }
    assert all(r["deliveries"] == {} for r in rows)
    assert ids(run("--as", "John", "alerts", "--json")) == {"DMO-SDG-002"}
    assert js(run("alerts", "--json", "--since", "2999-01-01")) == []
    table = ok(run("alerts")).stdout
    assert "DMO-TYO-001" in table and "not registered" in table and "entered" in table
    refused(run("alerts", "--since", "soon"), 2, "--since")


def test_r36_cli_forecast_column_and_filter(run: Run) -> None:
    """R36: ``licenses`` shows each license's forecast (too little history yet in
    the demo) in the table and in JSON; ``--depleting-within`` filters by it
    and refuses a negative number of days."""
    rows = js(run("licenses", "--json"))
    assert isinstance(rows, list) and rows
    for row in rows:
        f = row["forecast"]
        assert f["public_id"] == row["public_id"] and f["enough_data"] is False
        assert f["based_on_days"] == 1 and f["depletion"] is None
    assert "not enough data" in ok(run("licenses")).stdout
    assert js(run("licenses", "--json", "--depleting-within", "365")) == []
    refused(run("licenses", "--depleting-within", "-1"), 2, "depleting within")


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: ClassVar[list[dict[str, Any]]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_r35_cli_alerts_deliver_once(run: Run, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    """R35: ``alerts deliver`` sends what is due to the webhook the environment
    names, once: run again, it sends nothing; the outcome shows in ``alerts``.
    Without a sink, or with a webhook but no secret, it is bad input (exit 2)."""
    url, received = webhook
    env = {"ESMC_ALERT_WEBHOOK_URL": url, "ESMC_ALERT_WEBHOOK_SECRET": "s3cret-for-the-hook"}
    out = ok(run("alerts", "deliver", env=env)).stdout
    assert f"webhook:{url}: 4 delivered, 0 failed" in out
    assert len(received) == 4
    assert js(run("alerts", "deliver", "--json", env=env)) == {
        "delivered": {f"webhook:{url}": 0},
        "failed": {f"webhook:{url}": 0},
    }
    rows = js(run("alerts", "--json"))
    assert isinstance(rows, list)
    assert {r["alert_id"] for r in rows} == {r["alert_id"] for r in received}
    assert all(r["deliveries"][f"webhook:{url}"]["outcome"] == "delivered" for r in rows)
    refused(run("alerts", "deliver"), 2, "no alert sink configured")
    refused(run("alerts", "deliver", "--every", "0", env=env), 2, "--every")
    refused(
        run("alerts", "deliver", env={"ESMC_ALERT_WEBHOOK_URL": url}),
        2,
        "ESMC_ALERT_WEBHOOK_SECRET",
    )
    refused(
        run(
            "alerts",
            "deliver",
            env={"ESMC_ALERT_SMTP_HOST": "localhost", "ESMC_ALERT_SMTP_PORT": "x"},
        ),
        2,
        "port",
    )
