"""Alerts (R35) and forecasts (R36): the queries, and delivery to the alert sinks.

Alerts are a view (:mod:`.projections.alerts`): raised by the fold from the
log, and by the calendar when they are read -- ``alerts()`` and
``deliver_alerts()`` first bring the views to today, raising on their day
the crossings the date alone caused since they last looked (after downtime
too), in one transaction with the day reached.

Delivery is at least once: an alert is sent to each sink until the sink
accepted it, and each attempt's outcome is recorded (``alert_deliveries``,
beside the views but not one of them: a rebuild keeps it, and raises the
same alerts with the same ids, so nothing is sent twice because of it). A
crash between a sink accepting and the outcome being recorded sends that
alert again next time; receivers drop it by its id.

Forecasts read the daily usage view and are kept per license for the day
(memory, and the ``forecasts`` table for other processes), valid while the
license's used units, units and expiry are unchanged: days before today
cannot change any more, so that is all a forecast of today depends on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from .adapters.alert_sinks import AlertRefused
from .domain.errors import InvalidInput, LicensingError
from .domain.ids import PublicId, UserId
from .domain.values import StatusReason
from .projections.alerts import parse_stamp, stamp
from .projections.views import Alert, Delivery, DeliveryReport, Forecast
from .queries import Queries, visible_groups, visible_license_row

#: alerts sent to one sink per round of ``deliver_alerts``
DELIVERY_PAGE = 500


def _since(since: object) -> str | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise InvalidInput("since must be timezone-aware (UTC)")
        return stamp(since)
    if isinstance(since, date):
        return stamp(datetime(since.year, since.month, since.day, tzinfo=UTC))
    raise InvalidInput("since must be a date or a timezone-aware datetime")


def _alert(row: Sequence[Any], deliveries: Mapping[str, tuple[Any, ...]]) -> Alert:
    alert_id, public_id, reason, entered, at, position = row
    return Alert(
        alert_id=str(alert_id),
        public_id=PublicId(public_id),
        reason=StatusReason[str(reason)],
        entered=bool(entered),
        when=parse_stamp(str(at)),
        deliveries={
            sink: Delivery(
                sink=sink,
                outcome=str(o),
                attempts=int(n),
                at=parse_stamp(str(t)),
                detail=None if d is None else str(d),
            )
            for sink, (o, n, t, d) in sorted(deliveries.items())
        },
        position=int(position),
    )


class AlertQueries(Queries):
    def _advance_alerts(self) -> None:
        """Bring the views, then their alerts, up to now (R35)."""
        self._refresh()
        self.views.advance_alerts(self._now().date().toordinal())

    def alerts(
        self,
        actor: UserId,
        *,
        since: date | datetime | None = None,
        as_of: datetime | int | None = None,
    ) -> list[Alert]:
        """The alerts of the licenses the actor may see, oldest first (R35); with
        ``since`` (a date, or an aware datetime) those raised from then on.

        ``as_of`` (R30) replays the log up to then into views of its own and
        brings their calendar to that day: the alerts raised by then, on the
        licenses the actor could see then, with the same ids. Deliveries are
        not events (a sink's outcome is an operational record, kept as the
        latest attempt only), so an answer as of a past moment has none.
        """
        start = _since(since)
        if as_of is not None:
            with self._reading(as_of) as (views, d, today):
                views.advance_alerts(today.toordinal())
                uid = self._actor(actor, d)
                return [_alert(r, {}) for r in views.alert_rows(visible_groups(d, uid), start)]
        self._advance_alerts()
        d = self._directory()
        uid = self._actor(actor, d)
        rows = self.views.alert_rows(visible_groups(d, uid), start)
        deliveries = self.views.deliveries([r[0] for r in rows]) if rows else {}
        return [_alert(r, deliveries.get(str(r[0]), {})) for r in rows]

    def deliver_alerts(self) -> DeliveryReport:
        """Send every alert not yet accepted by each sink, oldest first, and
        record each outcome (R35). A sink that fails is offered its remaining
        alerts next time; the others carry on."""
        self._advance_alerts()
        delivered: dict[str, int] = {}
        failed: dict[str, int] = {}
        for sink in self.adapters.alert_sinks:
            name = str(sink.name)
            delivered[name] = failed[name] = 0
            # every alert before the sink's mark is settled: a round reads from
            # there, each page after the last, and moves the mark to the first
            # alert it leaves unsettled (or the last it settled) -- unless alerts
            # were raised meanwhile, which may lie before it unseen
            raised = self.views.alerts_raised()
            after = None
            settled_to = None
            while True:
                rows = self.views.undelivered(name, DELIVERY_PAGE, after)
                if not rows:
                    break
                after = rows[-1]
                for row in rows:
                    alert = _alert(row, {})
                    try:
                        sink.send(alert.to_json())
                    except AlertRefused as e:
                        self.views.record_delivery(
                            alert.alert_id, name, "refused", stamp(self._now()), str(e)
                        )
                        failed[name] += 1
                        settled_to = row
                        continue  # refused for good: not offered again
                    except Exception as e:
                        detail = str(e) if isinstance(e, LicensingError) else type(e).__name__
                        self.views.record_delivery(
                            alert.alert_id, name, "failed", stamp(self._now()), detail
                        )
                        failed[name] += 1
                        settled_to = row  # the next round starts with it
                        break  # keep the order: the rest waits for the next round
                    self.views.record_delivery(
                        alert.alert_id, name, "delivered", stamp(self._now()), None
                    )
                    delivered[name] += 1
                    settled_to = row
                else:
                    continue
                break
            if settled_to is not None:
                self.views.move_sink_mark(name, settled_to, raised)
        return DeliveryReport(delivered=delivered, failed=failed)

    # -- forecasts (R36) --------------------------------------------------------------

    def forecast(
        self, actor: UserId, public_id: PublicId | str, *, as_of: datetime | int | None = None
    ) -> Forecast:
        """When the license's used units will reach its units (R36); with ``as_of``,
        the forecast that day made from what was recorded by then (R30)."""
        pid = PublicId(public_id)
        targets = None if as_of is None else (lambda: self._targets_of_license(pid))
        with self._reading(as_of, targets) as (views, d, today):
            uid = self._actor(actor, d)
            (found, _, v), _ = visible_license_row(views, d, uid, pid, today, self.policy)
            return self._forecasts.of(views, [(found, v)], today)[found]

    def prepare_forecasts(self) -> int:
        """Make today's forecast of every license and keep it (R36), so that the
        first ``licenses`` of the day reads them instead of fitting a trend per
        license; returns how many licenses have one for today.

        For the daily job (``esmc-licensing run-due``): a forecast of today
        rests on the usage before today and on the license's used units, units
        and expiry, so it stays valid all day unless those change -- and then
        only that license's is made again.
        """
        self._refresh()
        today = self._now().date()
        rows, _ = self.views.license_rows(None, None, today, self.policy)
        return len(self._forecasts.of(self.views, [(pid, v) for pid, _, v in rows], today))


__all__ = ["AlertQueries"]
