"""Keeping views current: after a save, on catch-up, in the runner, in a rebuild.

All four are :class:`ViewUpdater` applying events through the one fold
(:func:`.fold.apply`) into a view store, each batch committed with its
tracking position (compare-and-set: the store's tracking row is locked for
the batch). An application catches its views up with everything recorded
since (its own saves and other processes') before a query answers; ``esmc-licensing project``
(:func:`run_projections`) does the same continuously for deployments that
read views somewhere the writers are not; ``esmc-licensing rebuild``
(:func:`rebuild_views`) empties the views and applies the whole log, a page
at a time, in bounded memory.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper

from ..adapters.field_cipher import cipher_for
from ..adapters.mapper import EventMapper
from ..domain.events import DomainEvent
from ..eventlog import PAGE_SIZE, EventLog
from .fold import apply, entity_key
from .tables import APPLICATION_NAME, ViewStore, open_views

log = logging.getLogger("esmc_licensing.projections")

#: events per transaction when catching up (a page of the log)
CATCH_UP_BATCH = PAGE_SIZE
#: events per transaction in a rebuild: fewer, larger writes
REBUILD_BATCH = 50_000
#: events per transaction of a long catch-up (a store opened after many writes)
LONG_BATCH = 20_000


class ViewUpdater:
    """Applies a log's events to a view store, exactly once each."""

    def __init__(self, log: EventLog, views: ViewStore) -> None:
        self.log = log
        self.views = views

    def apply_known(
        self,
        pairs: Sequence[tuple[int, DomainEvent]],
        seeds: Mapping[tuple[str, str], Any] | None = None,
        folded: Mapping[int, tuple[Any, Any, Any]] | None = None,
    ) -> int | None:
        """Apply events already in memory (an application's own saves, in log
        order, no gap) in one batch; returns the position reached, or None --
        nothing written -- when the views do not stand just before them.

        ``seeds``: the rows of entities as they stand just before ``pairs``
        (the states the deciders started from), so they are not read back;
        ``folded``: what the deciders folded from them (id(event) -> (event,
        state before, state after)), so an event is not folded twice.
        """
        if not pairs:
            return None
        with self.views.batch() as b:
            if pairs[0][0] != b.position + 1:
                return None
            for (kind, key), state in (seeds or {}).items():
                b.seed(kind, key, state)
            if folded:
                b.folded = folded
            if len(pairs) > 20:  # a bulk save (a sync): its rows read in a few queries
                b.prefetch(filter(None, (entity_key(e) for _, e in pairs)))
            for position, event in pairs:
                apply(b, position, event)
            b.reached = pairs[-1][0]
            return b.reached

    def apply_stream(
        self, pairs: Iterable[tuple[int, DomainEvent]], batch_size: int
    ) -> int | None:
        """Apply events in log order, ``batch_size`` to a transaction, whatever
        the views' position (a replay into fresh views); returns the last
        position applied, or None for none."""
        events = iter(pairs)
        reached = None
        while True:
            with self.views.batch() as b:
                for position, event in itertools.islice(events, batch_size):
                    apply(b, position, event)
                    b.reached = position
                if b.reached is None:
                    return reached
                reached = b.reached

    def catch_up(
        self,
        stop: int | None = None,
        *,
        batch_size: int | None = None,
        cache: OrderedDict[Any, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply what the log holds after the views' position (up to ``stop``);
        one transaction per ``batch_size`` events (default: a page when little
        is new, larger batches for a long catch-up). Returns the position reached.

        Decoded entities are kept across the call's batches (bounded) as long
        as nobody else writes the views in between: a batch that finds the
        views elsewhere than where the previous one left them starts afresh.
        """
        cache = OrderedDict() if cache is None else cache
        expected: int | None = None
        while True:
            with self.views.batch(cache) as b:
                position = b.position
                if expected is not None and position != expected:
                    cache.clear()  # another writer moved the views: our states may be stale
                if stop is not None and position >= stop:
                    return position
                size = batch_size
                if size is None:
                    behind = (stop if stop is not None else self.log.end()) - position
                    size = CATCH_UP_BATCH if behind <= 10 * CATCH_UP_BATCH else LONG_BATCH
                limit = size if stop is None else min(size, stop - position)
                count = 0
                decode = self.log.decode
                for page in self.log.pages(position, stop, min(PAGE_SIZE, limit)):
                    events = [decode(row) for row in page]
                    b.prefetch(filter(None, map(entity_key, events)))
                    for row, event in zip(page, events, strict=True):
                        apply(b, row[0], event)
                    count += len(page)
                    b.reached = page[-1][0]
                    if count >= limit:
                        break
                reached = b.reached
            if reached is None:
                return position
            expected = reached
            if progress is not None:
                progress(reached)
            if count < limit:
                return reached


def seeds_of(
    events: Sequence[DomainEvent], spans: Mapping[int, tuple[Any, Any]] | None
) -> list[tuple[str, str, Any]]:
    """The states a decision started from, for the view rows its events change.

    ``spans`` maps each aggregate (its id's ``.int``) to (the state the
    decision started from, the state it left): the start of each entity's
    aggregate is the state its row holds before them.
    """
    if not spans:
        return []
    out = []
    seen: set[tuple[str, str]] = set()
    for e in events:
        key = entity_key(e)
        span = spans.get(e.originator_id.int)
        if span is None or key is None or key in seen:
            continue
        seen.add(key)
        out.append((key[0], key[1], span[0]))
    return out


class LogReader(Application[uuid.UUID]):
    """Opens an application's store to read its log; never writes an event."""

    name = APPLICATION_NAME
    log_section_size = PAGE_SIZE

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return EventMapper(
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
            secrets=cipher_for(self.env),  # R32: license rows show a key's last four
        )


def _reader(env: Mapping[str, str]) -> tuple[LogReader, EventLog]:
    reader = LogReader(env=dict(env))
    mapper = reader.mapper
    assert isinstance(mapper, EventMapper)
    return reader, EventLog(reader.recorder, mapper)


def run_projections(
    env: Mapping[str, str],
    views: ViewStore | None = None,
    *,
    once: bool = False,
    interval: float = 0.2,
    stop: threading.Event | None = None,
) -> int:
    """Follow the store named by ``env`` into its views (``esmc-licensing project``).

    With ``once`` it catches up and returns; otherwise it follows until
    ``stop`` is set. Returns the position reached.
    """
    reader, event_log = _reader(env)
    own = views is None
    views = views or open_views(env, reader.recorder)
    stop = stop or threading.Event()
    try:
        updater = ViewUpdater(event_log, views)
        position = updater.catch_up()
        while not once and not stop.is_set():
            try:
                reached = updater.catch_up()
            except Exception:  # a database hiccup: log it and keep following
                log.exception("projection runner failed a batch; retrying")
                reached = position
            if reached == position:
                stop.wait(interval)
            position = reached
        return position
    finally:
        if own:
            views.close()
        reader.close()


def rebuild_views(
    env: Mapping[str, str] | None,
    views: ViewStore | None = None,
    *,
    app: Any = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = REBUILD_BATCH,
) -> int:
    """Empty every view and apply the whole log again (``esmc-licensing rebuild``).

    The log is streamed a page at a time, with one transaction per
    ``batch_size`` events and a bounded cache of decoded entities, so memory
    does not grow with the log. An interrupted rebuild is safe: the views
    were emptied (position 0) in a transaction of their own, and each batch
    commits with its position, so an application or a runner catching up
    afterwards resumes from the last batch (a new rebuild starts over).
    Returns the position reached.

    Python's cyclic garbage collector is paused while the log is folded (for
    the whole process); reference counting frees everything as usual.
    """
    if app is not None:
        event_log: EventLog = app._core.event_log
        reader = None
    else:
        reader, event_log = _reader(env or {})
    own = views is None
    if views is None:
        views = app._core.views if app is not None else open_views(env or {}, event_log.recorder)
    total = event_log.end()
    collecting = gc.isenabled()
    gc.disable()
    try:
        views.drop()
        cache: OrderedDict[Any, Any] = OrderedDict()
        return ViewUpdater(event_log, views).catch_up(
            batch_size=batch_size,
            cache=cache,
            progress=None if progress is None else (lambda p: progress(p, total)),
        )
    finally:
        if collecting:
            gc.enable()
        if own and app is None:
            views.close()
        if reader is not None:
            reader.close()


__all__ = [
    "CATCH_UP_BATCH",
    "REBUILD_BATCH",
    "LogReader",
    "ViewUpdater",
    "rebuild_views",
    "run_projections",
    "seeds_of",
]
