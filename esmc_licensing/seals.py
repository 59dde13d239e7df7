"""Tamper evidence for the stored history (R31).

Every stored event is digested (HMAC-SHA256 over its position, aggregate,
version, topic and stored bytes, truncated to 64 bits) and the digests are
recorded in ``HistorySealed`` events, each chained to the previous seal. A
seal is written automatically once ``seal_every`` events are unsealed (and on
demand by ``seal_history``). ``verify_history`` recomputes the digests of what
is stored now and names every event that was altered, removed, inserted into
a sealed range or reordered, and every seal that was tampered with.

With a secret ``ESMC_SEAL_KEY`` setting, seals are keyed: someone who can
write to the database but does not know the key cannot forge new seals for
altered events. Without it the digests are still checked, which catches
accidental damage and naive edits, but not a forger who recomputes seals.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    MapperDeserialisationError,
    Notification,
)

from .domain.events import HistorySealed
from .domain.ids import SEALS_ID

DIGEST_HEX = 16
#: SHA-256's block size, for HMAC's key padding
_BLOCK = 64
DEFAULT_KEY = b"esmc-licensing seal v1"


def digest(key: bytes, row: Notification) -> str:
    head = f"{row.id}|{row.originator_id}|{row.originator_version}|{row.topic}|".encode()
    # hmac.digest is the one-shot (OpenSSL) form of hmac.new(...).digest(): same bytes
    return hmac.digest(key, head + bytes(row.state), "sha256")[: DIGEST_HEX // 2].hex()


def _keyed(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hash states after the padded key (RFC 2104).

    Copying them per row gives exactly ``hmac.digest(key, msg, "sha256")``
    without setting the key up again for every event (a test checks this).
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return (
        hashlib.sha256(key.translate(hmac.trans_36)),
        hashlib.sha256(key.translate(hmac.trans_5C)),
    )


def digests(key: bytes, rows: Iterable[Notification]) -> str:
    """The digests of ``rows``, concatenated in order (a seal's ``digests``).

    Each is ``digest(key, row)``; sealing runs after every thousand events of
    every command, so the keyed states are set up once per call (``_keyed``).
    """
    inner, outer = _keyed(key)
    half = DIGEST_HEX // 2
    out = []
    for r in rows:
        h = inner.copy()
        h.update(f"{r.id}|{r.originator_id}|{r.originator_version}|{r.topic}|".encode())
        h.update(r.state)
        o = outer.copy()
        o.update(h.digest())
        out.append(o.digest()[:half].hex())
    return "".join(out)


def chain(key: bytes, previous: str, positions: Iterable[int], digests: str) -> str:
    body = previous.encode() + b"|" + ",".join(map(str, positions)).encode() + b"|"
    return hmac.new(key, body + digests.encode(), hashlib.sha256).hexdigest()


def split_digests(digests: str) -> Iterator[str]:
    for i in range(0, len(digests), DIGEST_HEX):
        yield digests[i : i + DIGEST_HEX]


@attrs.frozen
class SealState:
    """The seals aggregate: where sealing reached and the last chain value."""

    version: int = 0
    sealed_up_to: int = 0
    chain: str = ""


def initial() -> SealState:
    return SealState()


def evolve(state: SealState, event: object) -> SealState:
    if isinstance(event, HistorySealed):
        return SealState(
            version=event.originator_version,
            sealed_up_to=max(event.positions, default=state.sealed_up_to),
            chain=event.chain,
        )
    return state


@attrs.frozen
class HistoryProblem:
    """One thing verification found wrong, named so a person can look at it."""

    position: int | None
    kind: str  # altered, removed, inserted, reordered, seal-altered, version-gap
    detail: str


@attrs.frozen
class HistoryReport:
    """The result of ``verify_history``: ok when no problem was found."""

    checked: int
    sealed_up_to: int
    unsealed: int
    problems: tuple[HistoryProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return (
                f"history verified: {self.checked} events, sealed up to position "
                f"{self.sealed_up_to}, {self.unsealed} not yet sealed"
            )
        lines = [f"history verification found {len(self.problems)} problem(s):"]
        lines += [f"- {p.kind} at {p.position}: {p.detail}" for p in self.problems]
        return "\n".join(lines)


SEAL_PAGE = 1000


def verify(recorder: ApplicationRecorder, mapper: Mapper[Any], key: bytes) -> HistoryReport:
    """Check the stored history against its seals and its own structure (R31).

    Names every stored event that was altered or moved since it was sealed,
    removed, or inserted into a sealed range; every seal that was altered or
    dropped; and, sealed or not, every aggregate whose versions have a gap
    or go backwards (a removed or reordered event).
    """
    problems: list[HistoryProblem] = []
    expected: dict[int, str] = {}
    previous_chain, next_version, sealed_up_to = "", 1, 0
    for row in recorder.select_events(SEALS_ID):
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
            seal = mapper.to_domain_event(row)
            assert isinstance(seal, HistorySealed)
        except (MapperDeserialisationError, AssertionError) as e:
            problems.append(
                HistoryProblem(None, "seal-altered", f"seal {row.originator_version}: {e}")
            )
            continue
        if chain(key, previous_chain, seal.positions, seal.digests) != seal.chain:
            problems.append(
                HistoryProblem(
                    None,
                    "seal-altered",
                    f"seal {seal.originator_version} does not match its digests or the "
                    "seal before it",
                )
            )
        previous_chain = seal.chain
        expected.update(zip(seal.positions, split_digests(seal.digests), strict=False))
        sealed_up_to = max(sealed_up_to, *seal.positions)

    checked = unsealed = 0
    last_version: dict[object, int] = {}
    start = 0
    while True:
        page = recorder.select_notifications(
            start=start, limit=SEAL_PAGE, inclusive_of_start=False
        )
        for row in page:
            checked += 1
            start = row.id
            what = f"{row.topic} of {row.originator_id} version {row.originator_version}"
            sealed = expected.pop(row.id, None)
            if sealed is not None:
                if digest(key, row) != sealed:
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


def verify_store(env: Mapping[str, str], *, key: bytes | None = None) -> HistoryReport:
    """Verify a store's history without opening the application (R31).

    Only the recorder and the mapper are built from the eventsourcing
    settings in ``env``, so a store whose events no longer load (the very
    damage an auditor looks for) can still be verified. The key defaults to
    ``ESMC_SEAL_KEY`` in ``env``.
    """
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from .adapters.mapper import EventMapper

    settings = Environment("LicenseManagement", dict(env))
    factory = InfrastructureFactory.construct(settings)
    try:
        mapper = EventMapper(cipher=factory.cipher(), compressor=factory.compressor())
        recorder = factory.application_recorder()
        seal_key = settings.get("ESMC_SEAL_KEY")
        if key is None:
            key = seal_key.encode() if seal_key else DEFAULT_KEY
        return verify(recorder, mapper, key)
    finally:
        factory.close()
