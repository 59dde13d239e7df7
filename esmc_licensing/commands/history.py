"""Sealing and verifying the stored history (R31); see ``esmc_licensing.seals``."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from eventsourcing.persistence import Notification, RecordConflictError

from .. import seals
from ..domain.events import SYSTEM_ACTOR, Emitter, HistorySealed
from ..domain.ids import SEALS_ID
from ..seals import HistoryReport
from ..service import ServiceBase

SEAL_PAGE = 1000


class HistoryCommands(ServiceBase):
    _sealing = False

    def _seal_key(self) -> bytes:
        key = self.env.get("ESMC_SEAL_KEY")
        return key.encode() if key else seals.DEFAULT_KEY

    @functools.cached_property
    def _seal_every(self) -> int:
        # read once: eventsourcing's Environment.get tries several spellings
        # of the name, and this is asked after every save
        value = self.env.get("ESMC_SEAL_EVERY")
        return int(value) if value else 1000

    def _seals(self) -> seals.SealState:
        return self._load(SEALS_ID, seals.initial, seals.evolve)

    def _after_save(self, positions: list[int]) -> None:
        if self._sealing or not positions:
            return
        every = self._seal_every
        if every > 0 and positions[-1] - self._seals().sealed_up_to >= every:
            self.seal_history()

    def seal_history(self) -> int:
        """Seal every stored event not sealed yet; returns the last sealed position.

        Called automatically every ``ESMC_SEAL_EVERY`` events (default 1000);
        call it before an audit so that nothing is left unsealed.

        The events to seal are read from the store a page at a time after the
        last seal.
        """
        key = self._seal_key()
        self._sealing = True
        try:
            for _ in range(10_000):
                self._refresh()
                state = self._seals()
                rows: Sequence[Notification] = self.event_log.notifications(
                    state.sealed_up_to, SEAL_PAGE
                )
                if not rows:
                    break
                # one HistorySealed per page of positions, all saved in one call
                emit = Emitter(SEALS_ID, state.version, self._now(), SYSTEM_ACTOR)
                chain = state.chain
                for i in range(0, len(rows), SEAL_PAGE):
                    page = rows[i : i + SEAL_PAGE]
                    positions = tuple(r.id for r in page)
                    digests = seals.digests(key, page)
                    chain = seals.chain(key, chain, positions, digests)
                    emit(HistorySealed, positions=positions, digests=digests, chain=chain)
                try:
                    self._save_events(emit.events)
                except RecordConflictError:
                    with self._lock:
                        self._states.pop(SEALS_ID.int, None)  # someone else sealed: look again
                    continue
                if len(rows) < SEAL_PAGE:
                    break
        finally:
            self._sealing = False
        return self._seals().sealed_up_to

    def verify_history(self) -> HistoryReport:
        """Check the stored history against its seals and its own structure (R31).

        See :func:`esmc_licensing.seals.verify`; :func:`esmc_licensing.seals.verify_store`
        does the same without opening the application, for a store too damaged
        to open.
        """
        return seals.verify(self.recorder, self.mapper, self._seal_key())
