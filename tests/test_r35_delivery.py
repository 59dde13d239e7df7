"""R35: alerts delivered at least once, with their id, and the outcome recorded.

A local HTTP receiver (127.0.0.1, a free port) that fails, times out after
accepting, and refuses; a local SMTP server the test starts (a few lines of
the protocol, enough for smtplib); the in-memory sink on every store. Every
alert reaches each receiver at least once; dropping duplicates by id leaves
exactly one per crossing; a refused alert (4xx) is not retried.
"""

from __future__ import annotations

import email
import hmac
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from esmc_licensing import (
    AdapterUnavailable,
    InMemoryAlertSink,
    InvalidInput,
    LicenseManagement,
    ManualClock,
    SmtpAlertSink,
    StatusReason,
    WebhookAlertSink,
    alerting,
)
from esmc_licensing.adapters.alert_sinks import signature
from esmc_licensing.adapters.memory import InMemoryActivationServer

from .conftest import PRODUCT, AppFactory

SECRET = "webhook-secret-not-to-be-seen"


def _alerting_licenses(
    app: LicenseManagement, vendor: InMemoryActivationServer, clock: ManualClock, count: int
) -> None:
    """``count`` licenses each raising one alert (expiring in 10 days)."""
    today = clock.now().date()
    for n in range(count):
        app.add_license_key(
            app.administrator,
            vendor.issue(
                public_id=f"DLV-{n // 100:03d}-{n % 100:03d}",
                product=PRODUCT,
                units=10,
                expires=today + timedelta(days=10),
                owner=f"Owner {n}",
            ),
        )


# -- a webhook receiver that misbehaves ---------------------------------------------------


class Receiver:
    """An HTTP receiver: per alert, the answers to its first requests, then 200.

    Answers: an HTTP status, or "slow" (accept the alert, then answer after
    the client gave up: the client retries, the receiver gets it twice).
    """

    def __init__(self, script: dict[int, list[Any]]) -> None:
        self.script = script
        self.requests: list[tuple[str, dict[str, Any], dict[str, str], bytes]] = []
        self.accepted: list[str] = []
        self.order: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                alert = json.loads(body)
                with receiver._lock:
                    k = receiver.order.setdefault(alert["alert_id"], len(receiver.order))
                    seen = sum(1 for r in receiver.requests if r[0] == alert["alert_id"])
                    receiver.requests.append(
                        (alert["alert_id"], alert, dict(self.headers.items()), body)
                    )
                    answers = receiver.script.get(k % len(receiver.script), [])
                    answer = answers[seen] if seen < len(answers) else 200
                    if answer in (200, "slow"):
                        receiver.accepted.append(alert["alert_id"])
                if answer == "slow":
                    time.sleep(0.6)  # the client (timeout 0.2 s) has given up
                    answer = 200
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    # by the order alerts first arrive: fine; 500 once; accepted but answered
    # too late (a duplicate); down for a whole round (3 × 503); refused (400)
    r = Receiver({0: [], 1: [500], 2: ["slow"], 3: [503, 503, 503], 4: [400]})
    yield r
    r.close()


def test_r35_webhook_delivers_each_alert_at_least_once_with_its_id(
    make_app: AppFactory,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    """R35: against a receiver that fails, times out and so receives duplicates,
    every alert arrives at least once, signed and with its id as idempotency
    key; de-duplicated by id, exactly one per alert; the alert it refuses (4xx)
    is asked once and recorded refused; outcomes are recorded per alert."""
    sink = WebhookAlertSink(receiver.url, SECRET, timeout=0.2, attempts=3, backoff=0.01)
    app = make_app(alert_sinks=(sink,))
    _alerting_licenses(app, vendor, clock, 10)
    raised = app.alerts(app.administrator)
    assert len(raised) == 10
    rounds = []
    for _ in range(4):
        rounds.append(app.deliver_alerts())
    assert rounds[0].failed[sink.name] >= 1  # the round the receiver was down
    assert rounds[-1].delivered[sink.name] == 0 and rounds[-1].failed[sink.name] == 0
    ids = {a.alert_id for a in raised}
    refused = {a for a, k in receiver.order.items() if k % 5 == 4}
    assert len(refused) == 2
    # at least once each, duplicates among them; by id exactly one per alert
    assert set(receiver.accepted) == ids - refused
    assert len(receiver.accepted) > len(set(receiver.accepted))
    for alert_id, alert, headers, body in receiver.requests:
        assert headers["Idempotency-Key"] == alert_id
        assert hmac.compare_digest(headers["X-ESMC-Signature"], signature(SECRET.encode(), body))
        assert alert["public_id"].startswith("DLV-") and alert["reason"] == "EXPIRING"
        assert SECRET not in body.decode()
    for alert_id in refused:  # a 4xx is not retried, then or later
        assert [r[0] for r in receiver.requests].count(alert_id) == 1
    after = {a.alert_id: a for a in app.alerts(app.administrator)}
    assert set(after) == ids  # delivering raised nothing new
    for alert_id, a in after.items():
        outcome = a.deliveries[sink.name]
        assert outcome.outcome == ("refused" if alert_id in refused else "delivered")
    assert SECRET not in repr(sink)


def test_r35_webhook_sink_settings_are_checked() -> None:
    """R35: a webhook needs an http(s) URL, a secret and at least one attempt."""
    with pytest.raises(InvalidInput):
        WebhookAlertSink("ftp://example.org/", SECRET)
    with pytest.raises(InvalidInput):
        WebhookAlertSink("https://example.org/", "")
    with pytest.raises(InvalidInput):
        WebhookAlertSink("https://example.org/", SECRET, attempts=0)


def test_r35_webhook_unreachable_is_adapter_unavailable() -> None:
    """R35: a receiver that cannot be reached raises AdapterUnavailable, after retries."""
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as s:
        port = s.server_address[1]
    sink = WebhookAlertSink(f"http://127.0.0.1:{port}/", SECRET, attempts=2, backoff=0.01)
    with pytest.raises(AdapterUnavailable, match="after 2 attempt"):
        sink.send(
            {
                "alert_id": "x",
                "public_id": "AAA-BBB-CCC",
                "reason": "EXPIRED",
                "entered": True,
                "when": "2026-01-01T00:00:00+00:00",
            }
        )


# -- a local SMTP server ----------------------------------------------------------------------


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        def say(line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        say("220 test ESMTP")
        while True:
            line = self.rfile.readline().decode().strip()
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 test")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                say("250 ok")
            elif verb == "DATA":
                say("354 go ahead")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += self.rfile.readline()
                self.server.messages.append(data[:-5])  # type: ignore[attr-defined]
                say("250 queued")
            elif verb == "QUIT" or not line:
                say("221 bye")
                return
            else:
                say("500 what")


def test_r35_smtp_sink_sends_one_mail_per_alert(
    make_app: AppFactory,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
) -> None:
    """R35: the e-mail sink sends each alert as one mail naming the license, the
    condition and the alert id (Message-ID derived from it), through a local
    SMTP server; a server that is gone is AdapterUnavailable."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        sink = SmtpAlertSink("127.0.0.1", port, "esmc@example.org", ["ops@example.org"])
        app = make_app(alert_sinks=(sink,))
        _alerting_licenses(app, vendor, clock, 3)
        report = app.deliver_alerts()
        assert report.ok and report.delivered[sink.name] == 3
        assert app.deliver_alerts().delivered[sink.name] == 0
        mails = [email.message_from_bytes(m, policy=email_policy.default) for m in server.messages]  # type: ignore[attr-defined]
        raised = {a.alert_id: a for a in app.alerts(app.administrator)}
        assert {m["X-ESMC-Alert-Id"] for m in mails} == set(raised)
        for m in mails:
            a = raised[m["X-ESMC-Alert-Id"]]
            assert m["Message-ID"] == f"<{a.alert_id}@esmc-licensing>"
            assert str(a.public_id) in m["Subject"] and "entered expiring" in m["Subject"]
            assert m["To"] == "ops@example.org"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(AdapterUnavailable):
        sink.send(
            {
                "alert_id": "x",
                "public_id": "AAA-BBB-CCC",
                "reason": "EXPIRED",
                "entered": True,
                "when": "2026-01-01T00:00:00+00:00",
            }
        )


# -- the in-memory sink, on every store ------------------------------------------------------


@pytest.mark.parametrize("page", [500, 1], ids=["one page", "an alert a page"])
def test_r35_in_memory_sink_at_least_once_and_outcomes_recorded(
    make_app: AppFactory,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    store_env: dict[str, str],
    page: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R35: a failing sink gets its alerts next time, in order, once each; the
    other sinks carry on; outcomes and attempts are recorded; a reopened
    application (or rebuilt views) sends nothing again. With a page of one
    alert, each page starts after the last (alerts of one save share their
    time: the order's other keys decide)."""
    monkeypatch.setattr(alerting, "DELIVERY_PAGE", page)
    good, flaky = InMemoryAlertSink("good"), InMemoryAlertSink("flaky")
    app = make_app(alert_sinks=(good, flaky))
    _alerting_licenses(app, vendor, clock, 3)
    flaky.fail_next(1)
    first = app.deliver_alerts()
    assert first.delivered == {"good": 3, "flaky": 0} and first.failed == {"good": 0, "flaky": 1}
    assert not first.ok
    second = app.deliver_alerts()
    assert second.delivered == {"good": 0, "flaky": 3} and second.ok
    raised = app.alerts(app.administrator)
    assert [a["alert_id"] for a in good.delivered] == [a.alert_id for a in raised]
    assert [a["alert_id"] for a in flaky.delivered] == [a.alert_id for a in raised]
    assert raised[0].deliveries["flaky"].attempts == 2
    assert raised[0].deliveries["flaky"].outcome == "delivered"
    assert raised[1].deliveries["flaky"].attempts == 1
    # the calendar raises more later; only those are sent
    clock.advance(timedelta(days=11))
    report = app.deliver_alerts()
    assert report.delivered == {"good": 6, "flaky": 6}
    later = app.alerts(app.administrator)
    assert {(a.reason, a.entered) for a in later[3:]} == {
        (StatusReason.EXPIRED, True),
        (StatusReason.EXPIRING, False),
    }
    assert {a.when.date() for a in later[3:]} == {clock.now().date()}
    assert len({a["alert_id"] for a in good.delivered}) == len(good.delivered) == 9
    # reopened: outcomes live beside the views -- in a file or PostgreSQL they
    # are kept, nothing is sent again; in-memory views start empty and send
    # everything again, with the same ids (receivers drop them)
    again = make_app(alert_sinks=(good, flaky))
    memory = store_env["PERSISTENCE_MODULE"].endswith("popo")
    assert again.deliver_alerts().delivered["good"] == (9 if memory else 0)
    assert {a["alert_id"] for a in good.delivered} == {a.alert_id for a in later}
