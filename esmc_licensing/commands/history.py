"""Sealing and verifying the stored history (R31); see ``esmc_licensing.seals``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from eventsourcing.persistence import (
    MapperDeserialisationError,
    Notification,
    RecordConflictError,
    Recording,
)

from .. import seals
from ..domain.events import SYSTEM_ACTOR, Emitter, HistorySealed
from ..domain.ids import SEALS_ID
from ..seals import HistoryProblem, HistoryReport
from ..service import ServiceBase

SEAL_PAGE = 1000


class HistoryCommands(ServiceBase):
    _sealing = False

    def _seal_key(self) -> bytes:
        key = self.env.get("ESMC_SEAL_KEY")
        return key.encode() if key else seals.DEFAULT_KEY

    def _seal_every(self) -> int:
        value = self.env.get("ESMC_SEAL_EVERY")
        return int(value) if value else 1000

    def _seals(self) -> seals.SealState:
        return self._load(SEALS_ID, seals.initial, seals.evolve)

    def _after_save(self, recordings: list[Recording[uuid.UUID]]) -> None:
        every = self._seal_every()
        if self._sealing or not recordings:
            return
        if every > 0 and recordings[-1].notification.id - self._seals().sealed_up_to >= every:
            self.seal_history()
        if len(self._log_tail) > self.log_tail_limit:
            with self._view_lock:
                self._drop_log_tail(len(self._log_tail) - self.log_tail_limit // 2)

    def seal_history(self) -> int:
        """Seal every stored event not sealed yet; returns the last sealed position.

        Called automatically every ``ESMC_SEAL_EVERY`` events (default 1000);
        call it before an audit so that nothing is left unsealed.

        The events to seal are digested from the notifications the read model
        has just applied (the log tail, complete and in log order up to the
        read model's position), so what was just written is not read back;
        when the tail does not reach back to the last seal, they are read from
        the store a page at a time.
        """
        key = self._seal_key()
        self._sealing = True
        try:
            for _ in range(10_000):
                self._catch_up()
                state = self._seals()
                rows: Sequence[Notification] | None = self._log_tail_after(state.sealed_up_to)
                if rows is None:
                    rows = self.recorder.select_notifications(
                        start=state.sealed_up_to, limit=SEAL_PAGE, inclusive_of_start=False
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
                    with self._view_lock:
                        self._cache.pop(SEALS_ID, None)  # someone else sealed: look again
                    continue
                if len(rows) < SEAL_PAGE:
                    break
        finally:
            self._sealing = False
        return self._seals().sealed_up_to

    def verify_history(self) -> HistoryReport:
        """Check the stored history against its seals and its own structure (R31).

        Names every stored event that was altered or moved since it was sealed,
        removed, or inserted into a sealed range; every seal that was altered or
        dropped; and, sealed or not, every aggregate whose versions have a gap
        or go backwards (a removed or reordered event).
        """
        key = self._seal_key()
        problems: list[HistoryProblem] = []
        expected: dict[int, str] = {}
        previous_chain, next_version, sealed_up_to = "", 1, 0
        for row in self.recorder.select_events(SEALS_ID):
            if row.originator_version != next_version:
                problems.append(
                    HistoryProblem(
                        None,
                        "seal-removed",
                        f"seal {next_version} is missing (next found: {row.originator_version})",
                    )
                )
            next_version = row.originator_version + 1
            try:
                seal = self.mapper.to_domain_event(row)
                assert isinstance(seal, HistorySealed)
            except (MapperDeserialisationError, AssertionError) as e:
                problems.append(
                    HistoryProblem(None, "seal-altered", f"seal {row.originator_version}: {e}")
                )
                continue
            if seals.chain(key, previous_chain, seal.positions, seal.digests) != seal.chain:
                problems.append(
                    HistoryProblem(
                        None,
                        "seal-altered",
                        f"seal {seal.originator_version} does not match its digests or the "
                        "seal before it",
                    )
                )
            previous_chain = seal.chain
            expected.update(zip(seal.positions, seals.split_digests(seal.digests), strict=False))
            sealed_up_to = max(sealed_up_to, *seal.positions)

        checked = unsealed = 0
        last_version: dict[object, int] = {}
        start = 0
        while True:
            page = self.recorder.select_notifications(
                start=start, limit=SEAL_PAGE, inclusive_of_start=False
            )
            for row in page:
                checked += 1
                start = row.id
                what = f"{row.topic} of {row.originator_id} version {row.originator_version}"
                sealed = expected.pop(row.id, None)
                if sealed is not None:
                    if seals.digest(key, row) != sealed:
                        problems.append(
                            HistoryProblem(
                                row.id, "altered", f"{what} changed or moved since it was sealed"
                            )
                        )
                elif row.id <= sealed_up_to:
                    problems.append(
                        HistoryProblem(
                            row.id, "inserted", f"{what} is inside the sealed range but in no seal"
                        )
                    )
                else:
                    unsealed += 1
                before = last_version.get(row.originator_id, 0)
                if row.originator_version <= before:
                    problems.append(
                        HistoryProblem(
                            row.id, "reordered", f"{what} comes after version {before}"
                        )
                    )
                elif row.originator_version != before + 1:
                    problems.append(
                        HistoryProblem(
                            row.id,
                            "removed",
                            f"versions {before + 1}..{row.originator_version - 1} of "
                            f"{row.originator_id} are missing before {what}",
                        )
                    )
                last_version[row.originator_id] = max(before, row.originator_version)
            if len(page) < SEAL_PAGE:
                break
        for position in sorted(expected):
            problems.append(
                HistoryProblem(position, "removed", "the sealed event at this position is gone")
            )
        problems.sort(key=lambda p: (p.position is None, p.position or 0))
        return HistoryReport(
            checked=checked,
            sealed_up_to=sealed_up_to,
            unsealed=unsealed,
            problems=tuple(problems),
        )
