"""Sealing and verifying the stored history (R31); see ``esmc_licensing.seals``.

The seal keys come from ``ESMC_SEAL_KEY`` or ``ESMC_SEAL_KEY_FILE`` in the
application's env. With a key, the recorder seals every save in its own
transaction, and the first sealed save of a store records
``SealingStarted``. Without one, saves are recorded unsealed -- unless the
store's saves are already sealed, in which case a save is refused rather
than leave a hole in the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import Environment

from .. import seals
from ..adapters.sealing import POSTGRES_TOPIC, SealingPOPORecorder
from ..aggregates import KIND_OF
from ..domain.directory import DirectoryState
from ..domain.errors import InvalidInput, PermissionDenied
from ..domain.events import DomainEvent, Emitter, SealingStarted
from ..domain.ids import DIRECTORY_ID, UserId
from ..domain.values import Permission
from ..handler import Handler
from ..history_names import LIFE_EVENTS, Lives, Names
from ..keyring import Keyring
from ..projections.fold import entity_key
from ..projections.views import HistoryEntry
from ..queries import _entry
from ..seals import HistoryReport, Receipt, SealKeyMissing
from ..service import Decision, ServiceBase

log = logging.getLogger("esmc_licensing")


def may_audit(d: DirectoryState, uid: UserId) -> bool:
    """R31: an administrator, or a user with READ on All, may seal, verify and export."""
    if d.is_administrator(uid):
        return True
    return d.all_group is not None and d.can(uid, d.all_group, Permission.READ)


class SealingService(ServiceBase):
    """The service core over a store whose saves are sealed (R31)."""

    #: eventsourcing names the tables (PostgreSQL) and the settings' prefix by
    #: the class's name unless told: the store's names stay those of the
    #: application that wrote it
    name = "LicenseManagement"

    _seal_ring: Keyring | None = None
    #: the store's saves were sealed when it was opened (so unsealed ones are refused)
    _store_sealed = False

    # -- the store's recorder and its sealer --------------------------------------------

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        environment = super().construct_env(name, env)
        module = environment.get("PERSISTENCE_MODULE") or ""
        if module.endswith("postgres") and not environment.get("APPLICATION_RECORDER_TOPIC"):
            environment["APPLICATION_RECORDER_TOPIC"] = POSTGRES_TOPIC
        return environment

    def construct_recorder(self) -> ApplicationRecorder:
        module = self.env.get("PERSISTENCE_MODULE") or "eventsourcing.popo"
        if module.endswith("popo"):
            return SealingPOPORecorder()
        return super().construct_recorder()

    def _open_store(self, env: Mapping[str, str] | None) -> None:
        super()._open_store(env)
        ring = seals.seal_keyring(self.env)  # the env as given, over the process's
        self._seal_ring = ring
        recorder: Any = self.recorder
        if ring is not None and hasattr(recorder, "sealer"):
            recorder.sealer = seals.Sealer(ring)
        try:
            self._store_sealed = _last_seal(recorder) is not None
        except seals.SealUnreadable:
            self._store_sealed = True  # damaged, but sealed: verify-history says where

    def _ensure_directory(self) -> None:
        ring = self._seal_ring
        if ring is not None and not self._store_sealed:
            self._start_sealing(ring)
        super()._ensure_directory()

    def _start_sealing(self, ring: Keyring) -> None:
        """Record ``SealingStarted``: from here on an unsealed save is a problem."""

        def decide() -> Decision[None]:
            if _last_seal(self.recorder) is not None:
                return None, []  # another process started first
            d = self._directory()
            emit = Emitter(DIRECTORY_ID, d.version, self._now(), "system")
            emit(SealingStarted, key_id=ring.current_id)
            return None, emit.events

        self._execute(decide)
        self._store_sealed = True

    def _save_events(self, new_events: list[DomainEvent]) -> list[int]:
        if self._store_sealed and self._seal_ring is None:
            raise SealKeyMissing(
                "this store seals every save (R31) and no seal key is configured, so "
                f"nothing was recorded; {seals.HOW_TO_CONFIGURE}"
            )
        return super()._save_events(new_events)


class HistoryCommands(Handler):
    _core: SealingService

    def __init__(self, core: SealingService) -> None:
        super().__init__(core)

    @property
    def _seal_ring(self) -> Keyring | None:
        return self._core._seal_ring

    def _start_sealing(self, ring: Keyring) -> None:
        self._core._start_sealing(ring)

    # -- commands and queries -----------------------------------------------------------

    def _auditor(self, actor: object, what: str) -> UserId:
        try:
            self._refresh(views=False)
        except Exception:  # a damaged store: decide on the directory known so far
            log.warning("could not catch up with the store before checking %s rights", what)
        d = self._directory()
        uid = self._actor(actor, d)
        if not may_audit(d, uid):
            raise PermissionDenied(
                f"{what} the whole history needs an administrator or READ on All (R31)"
            )
        return uid

    def seal_history(self, actor: UserId) -> Receipt:
        """A signed receipt of the history as it ends now (R31).

        Every save is already sealed as it is recorded; the receipt, kept by
        an auditor outside the store, lets :meth:`verify_history` also prove
        that nothing up to here was deleted later -- the end of the log
        included. Needs a seal key (``seals.HOW_TO_CONFIGURE``).
        """
        self._auditor(actor, "sealing")
        ring = self._seal_ring
        if ring is None:
            raise SealKeyMissing(f"sealing needs a seal key; {seals.HOW_TO_CONFIGURE}")
        last = _last_seal(self.recorder)
        if last is None:  # a key but no sealed save: seal one now
            self._start_sealing(ring)
            last = _last_seal(self.recorder)
        assert last is not None
        return seals.make_receipt(ring, last, self._now())

    def verify_history(self, actor: UserId, receipt: Receipt | None = None) -> HistoryReport:
        """Check the whole stored history, first event to last, against its seals (R31).

        With ``receipt``, also that the log still holds everything up to the
        receipt's position unchanged (a deleted end is found). See
        :func:`esmc_licensing.seals.verify_store` for a store too damaged to open.
        """
        self._auditor(actor, "verifying")
        if receipt is not None and not isinstance(receipt, Receipt):
            receipt = Receipt.from_bytes(bytes(receipt))
        return seals.verify_recorder(self.recorder, self.mapper, self._seal_ring, receipt)

    def audit_log(
        self,
        actor: UserId,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[HistoryEntry]:
        """Every recorded event as a history entry, streamed in log order (R29, R31).

        ``since`` / ``until`` are times (inclusive) or log positions (inclusive).
        Only an administrator or a user with READ on All may read the whole log.
        Memory holds one page of the log at a time, whatever its length.
        """
        self._auditor(actor, "exporting")  # here, not at the first entry read
        for bound in (since, until):
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, datetime | int)
                or (isinstance(bound, datetime) and bound.tzinfo is None)
            ):
                raise InvalidInput("since and until are timezone-aware datetimes or log positions")
        return self._audit_entries(since, until)

    def _audit_entries(
        self, since: datetime | int | None, until: datetime | int | None
    ) -> Iterator[HistoryEntry]:
        after = since - 1 if isinstance(since, int) else 0
        stop = until if isinstance(until, int) else None
        self._refresh()
        d = self._directory()
        # names as they were at each entry (R29): the lives of pools and computers
        # are followed as the log streams past them, looked up only for objects
        # made before the first entry read
        lives = Lives(self.event_log, self.views)
        names = Names(d, self.views, None, lives=lives)
        complete = after <= 0
        for position, event in self.event_log.read(max(after, 0), stop):
            if isinstance(event, LIFE_EVENTS):
                lives.seen(position, event, complete)
            if isinstance(since, datetime) and event.timestamp < since:
                continue
            if isinstance(until, datetime) and event.timestamp > until:
                continue  # several processes: their clocks need not agree exactly
            yield _entry(d, _target_of(event), position, event, names)


    def first_recorded(self) -> datetime | None:
        """When the store's first event was recorded (None: nothing yet), so that a
        replay "as of" an earlier moment can say so rather than fail (R30)."""
        rows = self.event_log.rows(0, None, 1)
        return self.event_log.decode(rows[0]).timestamp if rows else None


def _target_of(event: DomainEvent) -> str:
    """What an audit entry is about: ``kind:key`` of its entity, else its aggregate."""
    found = entity_key(event)
    if found is None:
        return KIND_OF[type(event)].name
    kind, key = found
    return f"{kind}:{key}"


def _last_seal(recorder: Any) -> seals.SealRow | None:
    last = getattr(recorder, "last_seal", None)
    if last is None:
        return None
    try:
        found: seals.SealRow | None = last()
    except Exception as e:
        # a store opened without creating tables (read-only, CREATE_TABLE=no)
        # that predates per-save sealing has no seals table: no seals
        text = str(e)
        if "no such table" in text or "does not exist" in text:
            return None
        raise
    return found


__all__ = ["HistoryCommands", "SealingService", "may_audit"]
