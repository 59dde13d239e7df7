"""Alert sinks (R35): in memory, a webhook (httpx) and e-mail (smtplib).

Each implements the ``AlertSink`` port: ``send(alert)`` delivers one alert
(its JSON form) or raises ``AdapterUnavailable``. Delivery is at least once:
an alert whose outcome was not recorded is offered again, so every alert
carries its stable ``alert_id`` for receivers to drop duplicates by. An alert
names a license by its Public ID only, never by its key (R2).

httpx is imported when a webhook sink is made, not before (the command line
starts without it).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..domain.errors import AdapterUnavailable, InvalidInput

if TYPE_CHECKING:  # the e-mail package is imported when an e-mail is made
    from email.message import EmailMessage


class AlertRefused(AdapterUnavailable):
    """The receiver refused this alert for good (an HTTP 4xx): it is not offered again."""


class InMemoryAlertSink:
    """Keeps what it receives, in order (``delivered``); ``fail_next(n)`` refuses
    the next n alerts as an unreachable receiver would."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.delivered: list[dict[str, object]] = []
        self._failures = 0
        self._lock = threading.Lock()

    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._failures += n

    def send(self, alert: dict[str, object]) -> None:
        with self._lock:
            if self._failures > 0:
                self._failures -= 1
                raise AdapterUnavailable(f"alert sink {self.name} is unavailable (simulated)")
            self.delivered.append(dict(alert))

    def __repr__(self) -> str:
        return f"InMemoryAlertSink({self.name!r}, {len(self.delivered)} delivered)"


def signature(secret: bytes, body: bytes) -> str:
    """The webhook signature header's value: HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookAlertSink:
    """POSTs each alert as JSON to ``url``.

    Headers: ``X-ESMC-Signature`` (HMAC-SHA256 of the body with ``secret``, so
    the receiver knows it comes from here) and ``Idempotency-Key`` (the alert
    id). A timeout, a connection error or a 5xx/429 answer is retried
    ``attempts`` times with exponential backoff; any other 4xx is not (the
    receiver refuses this alert: retrying would not change its mind) and
    raises at once. The secret never appears in a repr or an error.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.5,
        name: str | None = None,
        client: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("a webhook URL starts with http:// or https://")
        if not secret:
            raise InvalidInput("a webhook needs a secret to sign its alerts with")
        if attempts < 1:
            raise InvalidInput("a webhook needs at least one attempt per delivery")
        import httpx

        self.url = url
        self.name = name or f"webhook:{url}"
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self.attempts = attempts
        self.backoff = backoff
        self._client = client or httpx.Client(timeout=timeout)
        self._httpx = httpx

    def send(self, alert: dict[str, object]) -> None:
        body = orjson.dumps(alert)
        headers = {
            "Content-Type": "application/json",
            "X-ESMC-Signature": signature(self._secret, body),
            "Idempotency-Key": str(alert["alert_id"]),
        }
        problem = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except self._httpx.HTTPError as e:
                problem = type(e).__name__
                continue
            status = response.status_code
            if 200 <= status < 300:
                return
            if 400 <= status < 500 and status != 429:
                raise AlertRefused(
                    f"webhook {self.url} refused the alert (HTTP {status}); not retried"
                )
            problem = f"HTTP {status}"
        raise AdapterUnavailable(
            f"webhook {self.url} failed after {self.attempts} attempt(s) ({problem})"
        )

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"WebhookAlertSink({self.url!r})"


class SmtpAlertSink:
    """Sends each alert as one e-mail through an SMTP server (the standard
    library's smtplib); ``Message-ID`` derives from the alert id so mail
    clients can drop duplicates. ``starttls`` and ``username``/``password``
    for servers that need them."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        timeout: float = 10.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        name: str | None = None,
    ) -> None:
        if not recipients:
            raise InvalidInput("an e-mail alert sink needs at least one recipient")
        self.host, self.port = host, int(port)
        self.sender = sender
        self.recipients = tuple(recipients)
        self.timeout = timeout
        self.starttls = starttls
        self._username = username
        self._password = password
        self.name = name or f"smtp:{host}:{self.port}"

    def message(self, alert: dict[str, object]) -> EmailMessage:
        from email.message import EmailMessage

        direction = "entered" if alert["entered"] else "left"
        reason = str(alert["reason"]).lower().replace("_", " ")
        msg = EmailMessage()
        msg["Subject"] = f"License {alert['public_id']} {direction} {reason}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Message-ID"] = f"<{alert['alert_id']}@esmc-licensing>"
        msg["X-ESMC-Alert-Id"] = str(alert["alert_id"])
        msg.set_content(
            f"License {alert['public_id']} {direction} the condition {reason} "
            f"at {alert['when']}.\n\nAlert id: {alert['alert_id']}\n"
        )
        return msg

    def send(self, alert: dict[str, object]) -> None:
        import smtplib

        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as e:
            raise AdapterUnavailable(
                f"e-mail to {self.host}:{self.port} failed ({type(e).__name__})"
            ) from None

    def __repr__(self) -> str:
        return f"SmtpAlertSink({self.host!r}, {self.port})"


__all__ = ["AlertRefused", "InMemoryAlertSink", "SmtpAlertSink", "WebhookAlertSink", "signature"]
