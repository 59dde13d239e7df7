"""The alert view (R35) and the usage series (R36): one fold over the log and the clock.

A license's *alerted reasons* are the reasons of its status (R8, computed by
the domain's ``license_status``) among EXPIRING, EXPIRED, AT_RISK_OF_OVERUSE,
OVERUSED, SUSPENDED and NOT_REGISTERED, while it is live (a removed license
has none: removing it ends its conditions). Each time that set changes, one
alert per reason entered or left is written, with an id derived from what
it is about -- the license, the reason, the direction and the moment (the
log position of the save that caused it, or the day the calendar did) -- so
a rebuild from the log writes the very same alerts with the very same ids.

Two things move the set:

- **Saves.** The events of one save share one timestamp; the licenses they
  touch are evaluated once the save is complete, i.e. when the fold meets
  an event of another timestamp or the clock is advanced (a save's
  intermediate states -- units raised, then usage -- are never seen by
  anyone, so they raise nothing). Until then the pending save is kept in the
  views (``alert_pending`` and the ``alert_clock`` row) so that a save split
  over two view transactions is still evaluated once.
- **The calendar.** "30 days left" and "expired" come with the date alone.
  The views record the day they are evaluated up to (``alert_clock.day``);
  advancing it to a later day walks the days in between, but touches only
  the licenses due on them: each license's mark keeps the next day its
  expiry-driven reasons change (``alert_marks.next_due``, indexed), so a
  day costs what changes on it, not the number of licenses. The fold
  advances the clock to each event's day before applying the event, and
  reading alerts (``alerts()``, ``deliver_alerts()``) advances it to today,
  in one transaction with the alerts it raises: a restart resumes from the
  recorded day, so a crossing is neither missed after downtime nor raised
  twice.

Because the advance to day D happens after every event of an earlier day
and before any event of day D -- whether a query or the fold triggers it --
live views and a rebuild evaluate the same facts on the same days. (Events
whose timestamps go back in log order, from processes with clocks apart,
are evaluated on the day the views had reached.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple, Protocol

from ..aggregates import KIND_OF
from ..domain.events import (
    DomainEvent,
    LicenseAdded,
    SeatReleased,
    SeatTaken,
    UsageReported,
)
from ..domain.license import LicenseState
from ..domain.status import license_status
from ..domain.values import Policy, StatusReason

#: the reasons whose crossings raise alerts (R35); OBSOLETE is not one of them
ALERTED: frozenset[StatusReason] = frozenset(
    {
        StatusReason.EXPIRING,
        StatusReason.EXPIRED,
        StatusReason.AT_RISK_OF_OVERUSE,
        StatusReason.OVERUSED,
        StatusReason.SUSPENDED,
        StatusReason.NOT_REGISTERED,
    }
)

#: the namespace of alert ids (uuid5 of what an alert is about)
ALERT_NAMESPACE = uuid.UUID("6c1b1f0e-35a1-4c52-9a43-8d7e3c0f5b35")

_USAGE_EVENTS = (LicenseAdded, UsageReported, SeatTaken, SeatReleased)


class AlertStorage(Protocol):
    """What the alert fold needs of a view batch (:class:`~.tables.ViewBatch`)."""

    @property
    def policy(self) -> Policy: ...

    def get(self, kind: str, key: str) -> Any | None: ...
    def alert_clock(self) -> tuple[int | None, datetime | None, int]: ...
    def set_alert_clock(
        self, day: int | None, pending_at: datetime | None, position: int
    ) -> None: ...
    def alert_mark(self, public_id: str) -> tuple[frozenset[str], int | None] | None: ...
    def load_alert_marks(self, public_ids: Sequence[str]) -> None: ...
    def license_facts(self, public_ids: Sequence[str]) -> dict[str, Facts]: ...
    def put_alert_mark(
        self, public_id: str, reasons: frozenset[str], next_due: int | None
    ) -> None: ...
    def due_marks(self, upto: int) -> list[tuple[int, str]]: ...
    def pending_licenses(self) -> list[str]: ...
    def add_pending(self, public_id: str) -> None: ...
    def clear_pending(self) -> None: ...
    def raise_alert(self, row: tuple[Any, ...]) -> None: ...
    def record_usage(self, public_id: str, day: int, used: int) -> None: ...


def alert_id(public_id: str, reason: str, entered: bool, moment: str) -> str:
    """The stable id of a crossing: the same crossing always gets the same id."""
    direction = "entered" if entered else "left"
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{public_id}|{reason}|{direction}|{moment}"))


def stamp(moment: datetime) -> str:
    """A UTC moment as fixed-width text, so that text order is time order."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def _day_of(moment: datetime) -> int:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.toordinal()


class Facts(NamedTuple):
    """What a license's alerted reasons depend on (its row's columns hold them)."""

    live: bool
    units: int
    used_units: int
    expires: date | None
    suspended: bool
    registered: bool
    obsolete: bool


GONE = Facts(False, 0, 0, None, False, True, False)


def live(state: LicenseState | None) -> bool:
    return (
        state is not None
        and state.exists
        and state.pool_id is not None
        and (state.source is not None)
    )


def facts_of(state: LicenseState | None) -> Facts:
    if state is None or not live(state):
        return GONE
    return Facts(
        True,
        state.units,
        state.used_units,
        state.expires,
        state.suspended,
        state.registered,
        state.obsolete,
    )


def alerted_reasons(facts: Facts, day: int, policy: Policy) -> frozenset[str]:
    """The license's alerted reasons on ``day`` (a date ordinal), by name."""
    if not facts.live:
        return frozenset()
    status = license_status(
        units=facts.units,
        used_units=facts.used_units,
        expires=facts.expires,
        today=date.fromordinal(day),
        policy=policy,
        suspended=facts.suspended,
        registered=facts.registered,
        obsolete=facts.obsolete,
    )
    return frozenset(r.name for r in status.reasons if r in ALERTED)


def next_due(facts: Facts, day: int, policy: Policy) -> int | None:
    """The next day after ``day`` on which the date alone may change the license's
    reasons: the first day of "expiring" and the day after its expiration."""
    if not facts.live or facts.expires is None:
        return None
    last = facts.expires.toordinal()
    later = [d for d in (last - policy.expiring_days, last + 1) if d > day]
    return min(later) if later else None


def _crossings(
    s: AlertStorage,
    public_id: str,
    now: frozenset[str],
    before: frozenset[str],
    *,
    moment: str,
    at: str,
    position: int,
) -> None:
    for reason in sorted(now - before):
        s.raise_alert(
            (alert_id(public_id, reason, True, moment), public_id, reason, 1, at, position)
        )
    for reason in sorted(before - now):
        s.raise_alert(
            (alert_id(public_id, reason, False, moment), public_id, reason, 0, at, position)
        )


def _evaluate(
    s: AlertStorage,
    public_id: str,
    facts: Facts,
    day: int,
    *,
    moment: str,
    at: str,
    position: int,
) -> None:
    mark = s.alert_mark(public_id)
    before = mark[0] if mark is not None else frozenset()
    now = alerted_reasons(facts, day, s.policy)
    due = next_due(facts, day, s.policy)
    if now != before:
        _crossings(s, public_id, now, before, moment=moment, at=at, position=position)
    if mark is None or now != before or due != mark[1]:
        s.put_alert_mark(public_id, now, due)


def flush(s: AlertStorage) -> None:
    """Evaluate the licenses of the pending save (it is complete)."""
    day, pending_at, position = s.alert_clock()
    if pending_at is None:
        return
    assert day is not None
    moment = f"p{position}"
    at = stamp(pending_at)
    pending = sorted(s.pending_licenses())
    s.load_alert_marks(pending)
    facts = s.license_facts(pending)
    for public_id in pending:
        _evaluate(s, public_id, facts[public_id], day, moment=moment, at=at, position=position)
    s.clear_pending()
    s.set_alert_clock(day, None, position)


def advance(s: AlertStorage, upto: int) -> None:
    """Bring the alerts up to the day ``upto`` (a date ordinal): finish the
    pending save, then raise what the calendar changes on each day since."""
    flush(s)
    day, _, position = s.alert_clock()
    if day is None:
        s.set_alert_clock(upto, None, position)
        return
    if upto <= day:
        return
    due_marks = s.due_marks(upto)
    s.load_alert_marks([pid for _, pid in due_marks])
    facts = s.license_facts([pid for _, pid in due_marks])
    for first, public_id in due_marks:
        # a license's due days, in order, until none is left before ``upto``
        due: int | None = first
        while due is not None and due <= upto:
            d = date.fromordinal(due)
            at = stamp(datetime.combine(d, time(), tzinfo=UTC))
            _evaluate(
                s,
                public_id,
                facts[public_id],
                due,
                moment=f"d{d.isoformat()}",
                at=at,
                position=position,
            )
            mark = s.alert_mark(public_id)
            later = None if mark is None else mark[1]
            due = later if later is not None and later > due else None
    s.set_alert_clock(upto, None, position)


def before_event(s: AlertStorage, event: DomainEvent) -> None:
    """Before an event is folded: close the previous save, move to its day."""
    day, pending_at, _ = s.alert_clock()
    if pending_at is not None and pending_at != event.timestamp:
        flush(s)
    event_day = _day_of(event.timestamp)
    if day is None or event_day > day:
        advance(s, event_day)


_LICENSE_EVENTS = frozenset(cls for cls, kind in KIND_OF.items() if kind.name == "license")


def after_event(s: AlertStorage, position: int, event: DomainEvent) -> None:
    """After an event is folded: its license joins the pending save."""
    day = s.alert_clock()[0]
    if type(event) in _LICENSE_EVENTS:
        public_id = str(event.public_id)  # type: ignore[attr-defined]
        s.add_pending(public_id)
        if isinstance(event, _USAGE_EVENTS):
            state = s.get("license", public_id)
            if state is not None:
                s.record_usage(public_id, _day_of(event.timestamp), state.used_units)
    s.set_alert_clock(day, event.timestamp, position)


__all__ = [
    "ALERTED",
    "Facts",
    "facts_of",
    "AlertStorage",
    "advance",
    "after_event",
    "alert_id",
    "alerted_reasons",
    "before_event",
    "flush",
    "live",
    "next_due",
    "parse_stamp",
    "stamp",
]
