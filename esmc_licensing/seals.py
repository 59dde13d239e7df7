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
from collections.abc import Iterable, Iterator

import attrs
from eventsourcing.persistence import Notification

DIGEST_HEX = 16
DEFAULT_KEY = b"esmc-licensing seal v1"


def digest(key: bytes, row: Notification) -> str:
    head = f"{row.id}|{row.originator_id}|{row.originator_version}|{row.topic}|".encode()
    # hmac.digest is the one-shot (OpenSSL) form of hmac.new(...).digest(): same bytes
    return hmac.digest(key, head + bytes(row.state), "sha256")[: DIGEST_HEX // 2].hex()


def digests(key: bytes, rows: Iterable[Notification]) -> str:
    """The digests of ``rows``, concatenated in order (a seal's ``digests``)."""
    mac, half = hmac.digest, DIGEST_HEX // 2
    return "".join(
        [
            mac(
                key,
                f"{r.id}|{r.originator_id}|{r.originator_version}|{r.topic}|".encode()
                + bytes(r.state),
                "sha256",
            )[:half].hex()
            for r in rows
        ]
    )


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
    from .domain.events import HistorySealed

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
