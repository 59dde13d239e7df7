"""The projection runner: follows the notification log into a view store.

It polls the log (eventsourcing's SQLite recorder cannot be subscribed to) in
pages of 1,000, folds each page into a tracked read model and writes what the
page changed together with the page's last notification id in one
transaction, compare-and-set on the previous id. After a crash or a restart it
loads the views back and resumes from the recorded position; a second runner
racing it loses its write and reloads, so no event is ever applied twice.

Entry points: :func:`run_projections` (``esmc-licensing project``) and
:func:`rebuild_views` (``esmc-licensing rebuild``).
"""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ..adapters.mapper import EventMapper
from ..domain.events import DomainEvent
from .fastpath import FAST_FOLDS
from .memory import ReadModel
from .store import (
    APPLICATION_NAME,
    KINDS,
    CodecDict,
    SplitAuditIndex,
    ViewStore,
    dirty_rows,
    tracked_model,
)

log = logging.getLogger("esmc_licensing.projections")

#: (notification id, originator id, originator version, topic, stored state)
LogRow = tuple[int, str, int, str, bytes]

PAGE_SIZE = 1000


class LogReader(Application[uuid.UUID]):
    """Opens an application's store to read its log; never writes an event."""

    name = APPLICATION_NAME
    log_section_size = PAGE_SIZE

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return EventMapper(cipher=self.factory.cipher(), compressor=self.factory.compressor())


class LogSource:
    """Pages of the notification log, read the fastest way the store allows.

    On SQLite it selects the rows itself (eventsourcing's recorder builds a row
    object, a UUID and a frozen dataclass per row); elsewhere it uses the
    recorder's ``select_notifications``. Decoding skips the cipher and
    compressor steps when the store uses neither.
    """

    def __init__(self, app: Application[Any]) -> None:
        self.app = app
        self.recorder = app.recorder
        mapper = app.mapper
        assert isinstance(mapper, EventMapper)
        self.mapper = mapper
        #: neither encrypted nor compressed: stored states are plain JSON
        self.plain = not (mapper.cipher or mapper.compressor)

    def max_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def pages(self, start: int, stop: int | None = None, limit: int = PAGE_SIZE) -> Iterator[
        list[LogRow]
    ]:
        """Pages after ``start`` (exclusive) up to ``stop`` (inclusive)."""
        while True:
            page = self._page(start, stop, limit)
            if not page:
                return
            yield page
            start = page[-1][0]
            if len(page) < limit or (stop is not None and start >= stop):
                return

    def _page(self, start: int, stop: int | None, limit: int) -> list[LogRow]:
        r = self.recorder
        if isinstance(r, SQLiteApplicationRecorder):
            statement = (
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {r.events_table_name} WHERE rowid > ? "
            )
            params: list[Any] = [start]
            if stop is not None:
                statement += "AND rowid <= ? "
                params.append(stop)
            statement += "ORDER BY rowid LIMIT ?"
            params.append(limit)
            with r.datastore.transaction(commit=False) as c:
                # plain tuples: eventsourcing's connections make ``sqlite3.Row``
                # objects, which cost more to build and then to copy than the
                # whole fetch
                cursor = c.sqlite_cursor
                cursor.row_factory = None
                cursor.execute(statement, params)
                rows: list[LogRow] = cursor.fetchall()
                return rows
        notifications = r.select_notifications(
            start=start, limit=limit, stop=stop, inclusive_of_start=False
        )
        return [
            (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in notifications
        ]

    def decode(self, row: LogRow) -> DomainEvent:
        _, oid, version, topic, state = row
        if self.plain:
            event = self.mapper.decode_state(topic, orjson.loads(state), oid, version)
        else:
            event = self.mapper.to_domain_event(
                StoredEvent(
                    originator_id=oid, originator_version=version, topic=topic, state=state
                )
            )
        return event

    def decode_data(self, row: LogRow, data: dict[str, Any]) -> DomainEvent:
        """Decode a plain row whose state was already parsed into ``data``."""
        return self.mapper.decode_state(row[3], data, row[1], row[2])

    def events_at(self, positions: Sequence[int]) -> list[tuple[int, DomainEvent]]:
        """The events at these log positions (a history's), in log order."""
        wanted = sorted(set(positions))
        rows: list[LogRow] = []
        r = self.recorder
        if isinstance(r, SQLiteApplicationRecorder):
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                with r.datastore.transaction(commit=False) as c:
                    c.execute(
                        "SELECT rowid, originator_id, originator_version, topic, state "
                        f"FROM {r.events_table_name} WHERE rowid IN "
                        f"({', '.join('?' * len(chunk))}) ORDER BY rowid",
                        chunk,
                    )
                    rows.extend(tuple(row) for row in c.fetchall())
        else:
            for p in wanted:
                rows.extend(self._page(p - 1, p, 1))
        return [(row[0], self.decode(row)) for row in rows]


class ViewProjector:
    """A tracked read model over a view store: apply events, then commit them.

    ``fast`` (the default) folds the high-volume events on their stored JSON
    (:mod:`.fastpath`) when the store is neither encrypted nor compressed;
    everything else is decoded and folded by the read model with the domain's
    ``evolve``.

    Audit references are collected as an index by target (one array of
    positions per target, see :data:`~.store.AuditIndex`): a reference then
    costs one append of 4 bytes instead of a tuple, which is what lets a
    rebuild hold a million events' references until it commits. Those to
    licenses and computers are kept beside the entities, by the entity's own
    key (see :class:`~.store.SplitAuditIndex`).
    """

    def __init__(
        self, store: ViewStore, application_name: str = APPLICATION_NAME, *, fast: bool = True
    ) -> None:
        self.store = store
        self.application_name = application_name
        self.fast = fast
        self.model: ReadModel = ReadModel()
        self.committed: int | None = None
        self._singletons: dict[str, Any] = {}
        #: references to targets other than licenses and computers (theirs are
        #: kept in their CodecDict's ``refs``, by the entity's key)
        self._audit: dict[str, array[int]] = {}
        #: positions as 4-byte unsigned ints until the log passes 2**32 - 1 events
        self._typecode = "I"
        #: references added to ``_audit`` since the last commit
        self._pending_refs = 0
        self._codecs: dict[str, CodecDict] = {}
        self.load()

    def load(self) -> None:
        """(Re)load the views as committed: after a restart or a lost race."""
        _, rows = self.store.changes_since(0)
        committed = self.store.max_tracking_id(self.application_name)
        self.model = tracked_model(rows, position=committed or 0)
        self.committed = committed
        self._singletons = {}
        for _ in dirty_rows(self.model, self._singletons):  # marks the loaded singletons
            pass
        self._audit = {}
        self._pending_refs = 0
        self._codecs = {
            kind.name + ":": value
            for kind in KINDS
            if isinstance(value := getattr(self.model, kind.attribute), CodecDict)
        }
        for codec in self._codecs.values():
            codec.typecode = self._typecode

    @property
    def position(self) -> int:
        return self.model.position

    @property
    def pending_refs(self) -> int:
        """Audit references collected since the last commit."""
        return self._pending_refs + sum(c.pending_refs for c in self._codecs.values())

    def _widen(self) -> None:
        """Positions past 2**32 - 1: hold every reference array as 8-byte ints."""
        self._typecode = "q"
        self._audit = {t: array("q", p) for t, p in self._audit.items()}
        for codec in self._codecs.values():
            codec.typecode = "q"
            codec.refs = {k: array("q", p) for k, p in codec.refs.items()}

    def apply_row(self, row: LogRow, source: LogSource) -> None:
        """Apply one stored event: by a fast fold if there is one, else decoded."""
        self.apply_rows((row,), source)

    def apply_rows(self, rows: Sequence[LogRow], source: LogSource) -> None:
        """Apply stored events in log order: by fast folds where there are, else decoded.

        The loop binds everything it touches per event once (this is the
        rebuild's inner loop: a million iterations). The folds record the
        references to licenses and computers themselves and return the other
        targets (most return none).
        """
        if not rows:
            return
        if rows[-1][0] > 0xFFFFFFFF and self._typecode == "I":
            self._widen()
        typecode = self._typecode
        folds = FAST_FOLDS if self.fast and source.plain else {}
        get_fold = folds.get
        model = self.model
        audit = self._audit
        get_refs = audit.get
        loads = orjson.loads
        apply = self.apply
        added = 0
        for row in rows:
            fold = get_fold(row[3])
            if fold is None:
                apply(row, source.decode(row))
                continue
            data = loads(row[4])
            position = row[0]
            targets = fold(model, row[1], row[2], data, position)
            if targets is None:
                apply(row, source.decode_data(row, data))
                continue
            for t in targets:
                refs = get_refs(t)
                if refs is None:
                    audit[t] = array(typecode, (position,))
                elif refs[-1] != position:  # a target named twice by one event
                    refs.append(position)
                else:
                    continue
                added += 1
        self._pending_refs += added
        last = rows[-1][0]
        model.position = max(model.position, last)

    def apply(self, row: LogRow, event: DomainEvent) -> None:
        model = self.model
        before = len(model.audit)
        model.apply(row[0], event)
        if row[0] > 0xFFFFFFFF and self._typecode == "I":
            self._widen()
        audit = self._audit
        codecs = self._codecs
        for record in model.audit[before:]:
            position = record.position
            for t in record.targets:
                kind, colon, key = t.partition(":")
                codec = codecs.get(kind + colon) if colon else None
                if codec is not None:
                    codec.ref(key, position)
                    continue
                refs = audit.get(t)
                if refs is None:
                    audit[t] = array(self._typecode, (position,))
                elif refs[-1] != position:
                    refs.append(position)
                else:
                    continue
                self._pending_refs += 1
        del model.audit[:]  # the rows keep it; memory stays flat however long the log

    def commit(self) -> bool:
        """Write what changed since the last commit, with the tracking record.

        Returns False (and reloads) when another runner committed first.
        """
        if self.committed is not None and self.model.position <= self.committed:
            return True
        if self.model.position == 0:
            return True
        rows = dirty_rows(self.model, self._singletons)
        index = SplitAuditIndex(self._audit, {p: c.refs for p, c in self._codecs.items()})
        try:
            self.store.write(
                Tracking(self.application_name, self.model.position),
                rows,
                index,
                previous=self.committed,
            )
        except IntegrityError:
            log.info("another runner committed first; reloading the views")
            self.load()
            return False
        except BaseException:
            self.load()
            raise
        self.committed = self.model.position
        self._audit = {}
        self._pending_refs = 0
        for codec in self._codecs.values():
            codec.refs = {}
            codec.pending_refs = 0
        return True


class ViewRunner:
    """Follows one application's log into a view store.

    Give it the application's settings (``env``) -- it opens the store itself
    and never writes events -- or an open application (``app``).
    """

    def __init__(
        self,
        views: ViewStore,
        env: Mapping[str, str] | None = None,
        *,
        app: Application[Any] | None = None,
        page_size: int = PAGE_SIZE,
        fast: bool = True,
    ) -> None:
        self.views = views
        self._own_app = app is None
        self.app: Application[Any] = app if app is not None else LogReader(env=dict(env or {}))
        self.source = LogSource(self.app)
        self.page_size = page_size
        self.projector = ViewProjector(views, self.app.name, fast=fast)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def position(self) -> int:
        return self.projector.position

    def run_once(
        self,
        *,
        max_events: int | None = None,
        commit_every: int | None = None,
        max_pending_refs: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Apply what the log holds beyond the views; returns how many events.

        One transaction per ``commit_every`` events (default the page size;
        0 for "only at the end"), and sooner once ``max_pending_refs`` audit
        references wait to be written (the bound on a rebuild's memory);
        ``max_events`` stops early (tests use it to simulate a crash).
        """
        projector = self.projector
        start = projector.position
        stop = None if max_events is None else start + max_events
        every = self.page_size if commit_every is None else commit_every
        max_refs = max_pending_refs
        total = self.source.max_id()
        done = 0
        pending = 0
        source = self.source
        apply_rows = projector.apply_rows
        for page in source.pages(start, stop, self.page_size):
            i, n = 0, len(page)
            while i < n:
                take = n - i if not every else min(n - i, every - pending)
                apply_rows(page if take == n else page[i : i + take], source)
                i += take
                done += take
                pending += take
                if (every and pending >= every) or (
                    max_refs is not None and projector.pending_refs >= max_refs
                ):
                    if not projector.commit():
                        return done
                    pending = 0
            if progress is not None:
                progress(projector.position, total)
        if pending and not projector.commit():
            return done
        return done

    def wait(self, position: int, timeout: float = 10.0) -> None:
        """Block until the views have applied the log up to ``position``."""
        self.views.wait(self.app.name, position, timeout=timeout)

    def run_forever(self, interval: float = 0.2, stop: threading.Event | None = None) -> None:
        """Follow the log until ``stop`` (or :meth:`stop`) is set."""
        stop = stop or self._stop
        while not stop.is_set():
            try:
                applied = self.run_once()
            except Exception:  # a database hiccup: log it, reload, keep following
                log.exception("projection runner failed a batch; retrying")
                self.projector.load()
                applied = 0
            if not applied:
                stop.wait(interval)

    def start(self, interval: float = 0.05) -> ViewRunner:
        """Follow in a background thread (for embedding and tests)."""
        self._thread = threading.Thread(
            target=self.run_forever, args=(interval,), name="esmc-views", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._own_app:
            self.app.close()


def run_projections(
    env: Mapping[str, str],
    views: ViewStore,
    *,
    once: bool = False,
    interval: float = 0.2,
    stop: threading.Event | None = None,
) -> int:
    """Follow the store named by ``env`` into ``views`` (``esmc-licensing project``).

    With ``once`` it catches up and returns; otherwise it follows until
    ``stop`` is set. Returns the position reached.
    """
    runner = ViewRunner(views, env)
    try:
        if once:
            runner.run_once()
        else:
            runner.run_forever(interval, stop)
        return runner.position
    finally:
        runner.close()


#: audit references a rebuild holds before it commits (about 25 bytes each with
#: their share of the index; a 1,000,000-event log has about 1.3 million)
REBUILD_MAX_PENDING_REFS = 4_000_000


def rebuild_views(
    env: Mapping[str, str] | None,
    views: ViewStore,
    *,
    app: Application[Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    commit_every: int | None = None,
    fast: bool = True,
) -> int:
    """Drop every view and rebuild it from the log (``esmc-licensing rebuild``).

    The log is streamed in pages of 1,000 into the runner's read model, and
    the views are written when the log is done: every entity once, the audit
    index in key order, with the tracking record, in one transaction. Writing
    as it goes (what live following does) would rewrite most entity rows and
    their indexes at every commit, which cost more than all the folding.

    Only when the audit references waiting to be written pass
    :data:`REBUILD_MAX_PENDING_REFS` (a log of several million events) does
    it commit earlier, like any runner, so memory stays bounded however long
    the log; ``commit_every`` commits every so many events instead (tests).

    An interrupted rebuild is safe either way: the views were dropped (no
    tracking record) in a transaction of their own before anything was
    applied, so until the first commit they are empty views at position 0 --
    true of them -- and a runner (or another rebuild) started afterwards
    applies the whole log; after a commit it resumes from that commit's
    tracking record like any runner. Returns the number of events applied.

    Python's cyclic garbage collector is paused while the log is folded (for
    the whole process: an application calling this from one of its threads
    should know); reference counting frees everything as usual, and the
    collector is restored, as it was, when the rebuild ends.
    """
    views.drop()
    runner = ViewRunner(views, env, app=app, fast=fast)
    # The cyclic garbage collector is paused while the log is folded: the fold
    # makes millions of short-lived objects without cycles and holds some
    # hundred thousand containers for the whole run, and the collector's full
    # passes over them took a tenth of a 1,000,000-event rebuild (1.1 s)
    # and found nothing to free. Reference counting frees everything as before.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return runner.run_once(
            progress=progress,
            commit_every=commit_every or 0,
            max_pending_refs=REBUILD_MAX_PENDING_REFS,
        )
    finally:
        if collecting:
            gc.enable()
        runner.close()


__all__ = [
    "LogReader",
    "LogSource",
    "ViewProjector",
    "ViewRunner",
    "rebuild_views",
    "run_projections",
]
