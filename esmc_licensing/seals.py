"""Tamper evidence for the stored history (R31).

**Every save is sealed as it is recorded.** In the same transaction as a
save's events, the recorder writes one row to the seals table: the save's
positions, a keyed digest of each event (HMAC-SHA256 over its position,
aggregate, version, topic and stored bytes, 64 bits) and a chain value,
HMAC-SHA256 over the seal's number, positions, key id, digests and the
previous seal's chain. Someone who can write to the database but does not
hold the key cannot alter, insert, remove or reorder an event, old or new,
nor make a seal for a forged one: verification recomputes everything, from
the first event to the last, and names each position that does not match.

Each seal names its key's id (:mod:`esmc_licensing.keyring`), so verifying
with another key says "wrong key (id …)" instead of "every event altered",
and rotated keys keep verifying the seals they made. There is no built-in
key: without ``ESMC_SEAL_KEY`` or ``ESMC_SEAL_KEY_FILE`` saves are recorded
unsealed (an embedded in-memory store, tests) and verification says so; a
store whose saves are sealed refuses unsealed saves.

**What a key alone cannot show**: the end of the history deleted together
with its seals (or all of it, or the table dropped) looks like a shorter
history. A :class:`Receipt` -- a small signed statement of a position and
the chain value there, kept by an auditor outside the store -- proves that
the log still holds everything up to it. Someone holding the key can
rewrite anything consistently; only receipts made before the rewrite (their
chain values) expose that. ``docs/audit.md`` states this threat model.

**Stores from earlier versions** keep verifying: their ``HistorySealed``
events (seals written every ``ESMC_SEAL_EVERY`` events, now obsolete) are
checked as before, with the configured keys or the old built-in one; saves
recorded before per-save sealing started are reported as "not sealed before
position N", not as tampering. A ``SealingStarted`` event marks where
per-save sealing started: from it on, an unsealed save is a problem.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from .domain.errors import InvalidInput, LicensingError
from .domain.events import HistorySealed
from .keyring import Keyring, KeyringError, from_setting, key_id, read_key_file

#: hex digits of a legacy (``HistorySealed``) digest
DIGEST_HEX = 16
#: bytes of a per-save seal's event digest
DIGEST_BYTES = 16
#: SHA-256's block size, for HMAC's key padding
_BLOCK = 64
#: the key earlier versions sealed with when none was configured; it is only
#: tried on their ``HistorySealed`` events, never used to seal
LEGACY_BUILTIN_KEY = b"esmc-licensing seal v1"

SEAL_KEY_VARIABLE = "ESMC_SEAL_KEY"
SEAL_KEY_FILE_VARIABLE = "ESMC_SEAL_KEY_FILE"
#: the topic of the event that marks where per-save sealing started
MARKER_TOPIC = "SealingStarted"
#: problems listed in full; past this many only their number is kept
MAX_PROBLEMS = 1000

HOW_TO_CONFIGURE = (
    f"configure a seal key: set {SEAL_KEY_FILE_VARIABLE} to a key file "
    f"(create one with: esmc-licensing rotate-seal-key --key-file PATH) or "
    f"{SEAL_KEY_VARIABLE} to a key (the base64 text of 32 random bytes)"
)

#: (position, originator id as 32 hex digits, version, topic, stored state)
SealedRow = tuple[int, str, int, str, bytes]


class SealKeyMissing(InvalidInput):
    """Sealing (or a save into a sealed store) was asked for with no key configured."""


class SealUnreadable(LicensingError):
    """The store's last seal is damaged, so no save can be chained after it."""


# -- keys -------------------------------------------------------------------------------


def seal_keyring(env: Mapping[str, str] | Any) -> Keyring | None:
    """The seal keys configured in ``env``, or None when there are none.

    ``ESMC_SEAL_KEY_FILE`` names a key file (several keys, rotation);
    ``ESMC_SEAL_KEY`` holds one key. Both at once is refused: which one seals
    would be a guess.
    """
    value = env.get(SEAL_KEY_VARIABLE)
    path = env.get(SEAL_KEY_FILE_VARIABLE)
    if value and path:
        raise KeyringError(
            f"both {SEAL_KEY_VARIABLE} and {SEAL_KEY_FILE_VARIABLE} are set; set only one "
            "(a key file can hold several keys)"
        )
    if path:
        return read_key_file(Path(os.path.expanduser(str(path))), "seal")
    if value is not None:
        return from_setting("seal", str(value), variable=SEAL_KEY_VARIABLE, passphrase=True)
    return None


@functools.lru_cache(maxsize=16)
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


# -- per-save seals -----------------------------------------------------------------------


class SealRow(NamedTuple):
    """One save's seal, as stored in the seals table (a named tuple: verification
    makes one per save it reads).

    ``positions`` is empty when the save's positions run from ``first`` to
    ``last`` without a gap (always on SQLite), else the positions, comma
    separated. ``digests`` holds ``DIGEST_BYTES`` per position.
    """

    seq: int
    first: int
    last: int
    positions: str
    key_id: str
    digests: bytes
    chain: str

    def covered(self) -> list[int]:
        if not self.positions:
            return list(range(self.first, self.last + 1))
        return [int(p) for p in self.positions.split(",")]


def row_digests(rows: Iterable[SealedRow]) -> bytes:
    """The digests of ``rows``: SHA-256 of "position|originator|version|topic|" and
    the stored state, first 16 bytes each, concatenated.

    Unkeyed, so one C call per event when saving and verifying; the keyed
    chain value covers them, so none can be changed unnoticed without the key.
    """
    sha256 = hashlib.sha256
    return b"".join(
        [
            sha256(f"{position}|{oid}|{version}|{topic}|".encode() + state).digest()[:DIGEST_BYTES]
            for position, oid, version, topic, state in rows
        ]
    )


def seal_chain(
    key: bytes,
    seq: int,
    first: int,
    last: int,
    positions: str,
    key_id_: str,
    previous: str,
    rows: bytes,
    digests: bytes,
) -> str:
    """A seal's chain value: HMAC-SHA256 over its number, positions, key id, the
    previous seal's chain value, the hash of its rows (:func:`rows_hash`) and its
    events' digests."""
    inner, outer = _keyed(key)
    return _chain(inner, outer, f"{seq}|{first}|{last}|{positions}|{key_id_}|{previous}|", rows,
                  digests)


def _chain(inner: Any, outer: Any, head: str, rows: bytes, digests: bytes) -> str:
    """HMAC-SHA256 from the key's precomputed inner and outer states: setting an
    HMAC key up in OpenSSL costs more than hashing a save's digests."""
    h = inner.copy()
    h.update(head.encode() + rows + digests)
    o = outer.copy()
    o.update(h.digest())
    chained: str = o.hexdigest()
    return chained


def rows_hash(rows: Iterable[SealedRow]) -> bytes:
    """SHA-256 over a save's rows, one hash for the whole save: verification
    checks a save with it and recomputes the events' own digests only when it
    does not match, to name them."""
    h = hashlib.sha256()
    update = h.update
    for position, oid, version, topic, state in rows:
        update(f"{position}|{oid}|{version}|{topic}|{len(state)}|".encode())
        update(state)
    return h.digest()


class Sealer:
    """Makes the seal of a save with the current key of a keyring (R31)."""

    def __init__(self, ring: Keyring) -> None:
        self.ring = ring
        self.key_id = ring.current_id
        self._key = ring.current
        self._inner, self._outer = _keyed(self._key)

    def seal(self, previous: SealRow | None, rows: Sequence[SealedRow]) -> SealRow:
        """The seal of ``rows`` (one save, in position order) after ``previous``.

        The digests and the rows' hash that :func:`row_digests` and
        :func:`rows_hash` compute, in one pass (every save of a sealed store
        pays this; a test checks they agree), chained as :func:`seal_chain` does.
        """
        first, last = rows[0][0], rows[-1][0]
        positions = "" if last - first + 1 == len(rows) else ",".join(str(r[0]) for r in rows)
        sha256 = hashlib.sha256
        whole = sha256()
        update = whole.update
        parts = []
        for position, oid, version, topic, state in rows:
            head = f"{position}|{oid}|{version}|{topic}|"
            parts.append(sha256(head.encode() + state).digest()[:DIGEST_BYTES])
            update(f"{head}{len(state)}|".encode() + state)
        digests = b"".join(parts)
        if previous is None:
            seq, chained = 1, ""
        else:
            seq, chained = previous.seq + 1, previous.chain
        chain = _chain(
            self._inner, self._outer, f"{seq}|{first}|{last}|{positions}|{self.key_id}|{chained}|",
            whole.digest(), digests,
        )
        return SealRow(seq, first, last, positions, self.key_id, digests, chain)


# -- legacy seals (HistorySealed events) ------------------------------------------------------


def digest(key: bytes, row: Any) -> str:
    """A legacy seal's digest of one event (``row`` has eventsourcing's Notification fields)."""
    head = f"{row.id}|{row.originator_id}|{row.originator_version}|{row.topic}|".encode()
    return hmac.digest(key, head + bytes(row.state), "sha256")[: DIGEST_HEX // 2].hex()


def digests(key: bytes, rows: Iterable[Any]) -> str:
    """Legacy digests of ``rows``, concatenated in order (a ``HistorySealed``'s)."""
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
    """The legacy seals aggregate (``HistorySealed`` events of earlier versions)."""

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


# -- receipts ---------------------------------------------------------------------------------


def _receipt_signature(
    key: bytes, position: int, seal: int, chain_: str, key_id_: str, when: str
) -> str:
    body = f"esmc-licensing receipt v1|{position}|{seal}|{chain_}|{key_id_}|{when}".encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@attrs.frozen
class Receipt:
    """A signed statement that the log held seal ``seal`` ending at ``position``
    with chain value ``chain`` at ``when`` (R31).

    Kept outside the store by an auditor, it lets a later verification prove
    that nothing up to ``position`` was removed, not even the whole end of
    the log. Signed with the seal key named by ``key_id``.
    """

    position: int
    seal: int
    chain: str
    key_id: str
    when: datetime
    signature: str

    def to_bytes(self) -> bytes:
        data = {
            "esmc_licensing_receipt": 1,
            "position": self.position,
            "seal": self.seal,
            "chain": self.chain,
            "key_id": self.key_id,
            "when": self.when.isoformat(),
            "signature": self.signature,
        }
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        problem = "not a history receipt of esmc-licensing"
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput(problem) from None
        if not isinstance(raw, dict) or raw.get("esmc_licensing_receipt") != 1:
            raise InvalidInput(problem)
        try:
            when = datetime.fromisoformat(raw["when"])
            receipt = cls(
                position=int(raw["position"]),
                seal=int(raw["seal"]),
                chain=str(raw["chain"]),
                key_id=str(raw["key_id"]),
                when=when,
                signature=str(raw["signature"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{problem}: a field is missing or malformed") from None
        if when.tzinfo is None:
            raise InvalidInput(f"{problem}: its time has no time zone")
        return receipt

    def signed_by(self, key: bytes) -> bool:
        expected = _receipt_signature(
            key, self.position, self.seal, self.chain, self.key_id, self.when.isoformat()
        )
        return hmac.compare_digest(expected, self.signature)


def make_receipt(ring: Keyring, last: SealRow, when: datetime) -> Receipt:
    """A receipt for the log as it ends at seal ``last``, signed with the current key."""
    when = when.astimezone(UTC)
    signature = _receipt_signature(
        ring.current, last.last, last.seq, last.chain, ring.current_id, when.isoformat()
    )
    return Receipt(last.last, last.seq, last.chain, ring.current_id, when, signature)


# -- the report -------------------------------------------------------------------------------


@attrs.frozen
class HistoryProblem:
    """One thing verification found wrong, named so a person can look at it.

    ``kind``: altered, removed, inserted, unsealed, reordered, seal-altered,
    seal-removed, wrong-key, truncated, receipt-invalid, unreadable, more.
    """

    position: int | None
    kind: str
    detail: str


@attrs.frozen
class HistoryReport:
    """The result of ``verify_history``: ok when no problem was found.

    ``checked``: events read; ``sealed_up_to``: the last position a seal
    covers; ``unsealed``: events recorded before sealing started (or, on a
    store without a seal key, at all) -- not problems, but not protected;
    ``not_sealed_before``: the first position per-save sealing covers (0
    when it covers the whole log, or nothing); ``key_ids``: the keys whose
    seals were checked; ``receipt``: the position a receipt vouched for.
    """

    checked: int
    sealed_up_to: int
    unsealed: int
    problems: tuple[HistoryProblem, ...]
    not_sealed_before: int = 0
    key_ids: tuple[str, ...] = ()
    receipt: int | None = None
    sealing: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if not self.ok:
            lines = [f"history verification found {len(self.problems)} problem(s):"]
            for p in self.problems:
                where = "" if p.position is None else f" at {p.position}"
                lines.append(f"- {p.kind}{where}: {p.detail}")
            return "\n".join(lines)
        if not self.sealing and not self.sealed_up_to:
            return (
                f"history checked: {self.checked} events, NOT sealed: no seal key is "
                f"configured, so only their order was checked ({HOW_TO_CONFIGURE})"
            )
        text = f"history verified: {self.checked} events, sealed up to position {self.sealed_up_to}"
        if self.key_ids:
            text += f" (key id {', '.join(self.key_ids)})"
        if self.unsealed:
            where = (
                f"not sealed before position {self.not_sealed_before}"
                if self.not_sealed_before
                else "not sealed"
            )
            text += f"; {self.unsealed} events recorded before per-save sealing are {where}"
        if self.receipt is not None:
            text += f"; the log holds everything up to the receipt's position {self.receipt}"
        return text


# -- verification -----------------------------------------------------------------------------


class _Problems:
    """Problems as found, the first ``MAX_PROBLEMS`` kept in full."""

    def __init__(self) -> None:
        self.items: list[HistoryProblem] = []
        self.more = 0
        self._named: set[tuple[int, str]] = set()

    def add(self, position: int | None, kind: str, detail: str) -> None:
        if position is not None:
            # one position can be found twice (a gap in the positions and a seal naming it)
            if (position, kind) in self._named:
                return
            self._named.add((position, kind))
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(HistoryProblem(position, kind, detail))
        else:
            self.more += 1

    def done(self) -> tuple[HistoryProblem, ...]:
        items = sorted(self.items, key=lambda p: (p.position is None, p.position or 0))
        if self.more:
            items.append(HistoryProblem(None, "more", f"{self.more} more problems are not listed"))
        return tuple(items)


class _Verification:
    """Walks the stored rows and the seals together, one seal at a time."""

    def __init__(self, ring: Keyring | None, receipt: Receipt | None) -> None:
        self.ring = ring
        self.receipt = receipt
        self.problems = _Problems()
        self.sealed_up_to = 0
        self.legacy_up_to = 0
        self.first_sealed = 0  # the first position a per-save seal covers
        self.seals_seen = 0
        self.key_ids: list[str] = []
        self._wrong: set[str] = set()
        self._keys: dict[str, bytes] = {}
        self.receipt_seen = False
        self.checked = 0
        self.unsealed = 0
        self.marker = 0
        self.last_position = 0
        self._run: list[int] = []
        self._versions: dict[str, int] = {}
        self._legacy_key: bytes | None = None
        self._legacy_previous = ""
        self._legacy_version = 1
        self._previous: SealRow | None = None
        self._previous_chain = ""

    # -- keys ------------------------------------------------------------------------

    def _key(self, key_id_: str) -> bytes | None:
        known = self._keys.get(key_id_)
        if known is not None:
            return known
        if self.ring is not None and key_id_ in self.ring:
            known = self._keys[key_id_] = self.ring.key(key_id_)
            return known
        if key_id_ not in self._wrong:
            self._wrong.add(key_id_)
            configured = (
                f"the configured key ids are {', '.join(self.ring.ids)}"
                if self.ring is not None
                else "no seal key is configured"
            )
            self.problems.add(
                None,
                "wrong-key",
                f"wrong key (id {key_id_}): seals made with it cannot be checked; {configured}",
            )
        return None

    # -- rows ------------------------------------------------------------------------

    def seen(self, row: SealedRow) -> None:
        """Every row once, in order: the structural check and the marker."""
        position, oid, version, topic, _ = row
        self.checked += 1
        self.last_position = position
        if topic == MARKER_TOPIC and not self.marker:
            self.marker = position
        versions = self._versions
        before = versions.get(oid, 0)
        if version != before + 1:
            what = f"{topic} of {oid} version {version}"
            if version <= before:
                self.problems.add(position, "reordered", f"{what} comes after version {before}")
            else:
                self.problems.add(
                    position,
                    "removed",
                    f"versions {before + 1}..{version - 1} of {oid} are missing before {what}",
                )
            if version < before:
                return
        versions[oid] = version

    def uncovered(self, row: SealedRow) -> None:
        """A row no seal names."""
        position = row[0]
        if self.marker or (self.first_sealed and position > self.first_sealed):
            # per-save sealing had started: every save since must be sealed
            run = self._run
            if run and run[-1] != position - 1:
                self.flush_run()
            run.append(position)
        elif position <= self.legacy_up_to:
            self.problems.add(
                position, "inserted", f"{_what(row)} is inside the sealed range but in no seal"
            )
        else:
            self.unsealed += 1

    def flush_run(self) -> None:
        run = self._run
        if run:
            a, b = run[0], run[-1]
            span = f"position {a}" if a == b else f"positions {a}..{b}"
            self.problems.add(
                a,
                "unsealed",
                f"{span} {'is' if a == b else 'are'} covered by no seal: recorded or changed "
                "without the seal key, or their seals were removed",
            )
            run.clear()

    # -- legacy seals (HistorySealed events) -------------------------------------------

    def check_legacy(self, seal: Any, got: list[SealedRow]) -> None:
        if seal.originator_version != self._legacy_version:
            self.problems.add(
                None,
                "seal-removed",
                f"legacy seal {self._legacy_version} is missing "
                f"(next found: {seal.originator_version})",
            )
        self._legacy_version = seal.originator_version + 1
        previous, key = self._legacy_previous, self._legacy_key
        if key is None:
            candidates = [k for _, k in self.ring] if self.ring is not None else []
            for k in [*candidates, LEGACY_BUILTIN_KEY]:
                if chain(k, previous, seal.positions, seal.digests) == seal.chain:
                    key = k
                    break
            if key is None:
                self.problems.add(
                    None,
                    "wrong-key",
                    "wrong key (id legacy): the seals of an earlier version do not "
                    "verify with any configured key",
                )
                key = b""
            else:
                self.key_ids.append("legacy built-in" if key == LEGACY_BUILTIN_KEY else key_id(key))
            self._legacy_key = key
        elif key and chain(key, previous, seal.positions, seal.digests) != seal.chain:
            self.problems.add(
                None,
                "seal-altered",
                f"legacy seal {seal.originator_version} does not match its digests or "
                "the seal before it",
            )
        self._legacy_previous = seal.chain
        if seal.positions:
            self.legacy_up_to = max(self.legacy_up_to, *seal.positions)
            self.sealed_up_to = max(self.sealed_up_to, self.legacy_up_to)
        if not key:
            return
        expected = dict(zip(seal.positions, split_digests(seal.digests), strict=False))
        for row in got:
            position, oid, version, topic, state = row
            dashed = str(uuid.UUID(oid)) if len(oid) == 32 else oid
            made = hmac.digest(
                key, f"{position}|{dashed}|{version}|{topic}|".encode() + state, "sha256"
            )[: DIGEST_HEX // 2].hex()
            if made != expected.get(position):
                self.problems.add(
                    position, "altered", f"{_what(row)} changed or moved since it was sealed"
                )

    # -- per-save seals --------------------------------------------------------------

    def check_seal(self, seal: SealRow, positions: list[int], got: list[SealedRow]) -> None:
        previous = self._previous
        expected_seq = 1 if previous is None else previous.seq + 1
        gap = seal.seq != expected_seq
        if gap:
            after = "the first" if previous is None else f"seal {previous.seq}"
            self.problems.add(
                seal.first,
                "seal-removed",
                f"seals {expected_seq}..{seal.seq - 1} are missing (after {after}, "
                f"before the seal of positions {seal.first}..{seal.last})",
            )
        self._previous = seal
        self.seals_seen += 1
        self.sealed_up_to = max(self.sealed_up_to, seal.last)
        receipt = self.receipt
        if receipt is not None and seal.seq == receipt.seal:
            self.receipt_seen = True
            if seal.last != receipt.position or seal.chain != receipt.chain:
                self.problems.add(
                    receipt.position,
                    "truncated",
                    f"the log no longer holds what the receipt of {_when(receipt)} "
                    f"vouched for up to position {receipt.position}: it was rewritten or "
                    "cut there",
                )
        key = self._key(seal.key_id)
        previous_chain = self._previous_chain
        self._previous_chain = seal.chain
        if key is None:
            return
        if seal.key_id not in self.key_ids:
            self.key_ids.append(seal.key_id)
        stored = seal.digests
        complete = len(got) == len(positions) and len(stored) == DIGEST_BYTES * len(positions)
        if complete and hmac.compare_digest(
            seal_chain(
                key,
                seal.seq,
                seal.first,
                seal.last,
                seal.positions,
                seal.key_id,
                previous_chain,
                rows_hash(got),
                stored,
            ),
            seal.chain,
        ):
            return  # the save is as it was sealed
        # something differs: name the events that no longer match their digests
        made_digests = row_digests(got)
        index = {p: i for i, p in enumerate(positions)}
        altered = False
        for k, row in enumerate(got):
            i = index[row[0]]
            mine = made_digests[k * DIGEST_BYTES : (k + 1) * DIGEST_BYTES]
            if mine != stored[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES]:
                altered = True
                self.problems.add(
                    row[0], "altered", f"{_what(row)} changed or moved since it was sealed"
                )
        if not altered and complete and not gap:
            # the events match their digests: the seal itself (its digests, say)
            # or the one before it was edited
            self.problems.add(
                seal.first,
                "seal-altered",
                f"the seal of positions {seal.first}..{seal.last} does not match its digests "
                "or the seal before it",
            )


def _what(row: SealedRow) -> str:
    return f"{row[3]} of {row[1]} version {row[2]}"


def verify_log(  # noqa: PLR0915 - one merge of two sorted streams, kept in one place
    rows: Iterable[SealedRow | HistoryProblem],
    seals: Iterable[SealRow | HistoryProblem],
    legacy: Iterable[Any],
    ring: Keyring | None,
    receipt: Receipt | None = None,
) -> HistoryReport:
    """Check a stored log against its seals, streaming both (R31).

    ``rows``: every stored event in position order; ``seals``: the per-save
    seals in order; ``legacy``: the ``HistorySealed`` events of earlier
    versions, decoded. A source that cannot be read yields a
    ``HistoryProblem`` instead. Memory holds one page of each, the rows of
    one save, the problems found (at most ``MAX_PROBLEMS``) and each
    aggregate's last version (the structural check).

    A seal whose chain value matches the rows it names is intact as a
    whole (one hash over the save's rows); only when it does not are the
    events' own digests recomputed, to name the ones that changed.
    """
    v = _Verification(ring, receipt)
    problems = v.problems
    if receipt is not None:
        key = ring.key(receipt.key_id) if ring is not None and receipt.key_id in ring else None
        if key is None:
            problems.add(
                None,
                "wrong-key",
                f"wrong key (id {receipt.key_id}): the receipt was signed with a key that "
                "is not configured",
            )
        elif not receipt.signed_by(key):
            problems.add(
                None, "receipt-invalid", "the receipt's signature does not match: it was altered"
            )
    source = iter(rows)
    row: SealedRow | None = None

    def advance() -> SealedRow | None:
        r = next(source, None)
        while type(r) is HistoryProblem:  # a gap, or unreadable (then the rows end)
            problems.add(r.position, r.kind, r.detail)
            r = next(source, None)
        return r  # type: ignore[return-value]

    row = advance()
    seen, uncovered = v.seen, v.uncovered
    versions = v._versions
    for unit in _units(legacy, seals, problems):
        legacy_unit = not isinstance(unit, SealRow)
        positions = list(unit.positions) if legacy_unit else unit.covered()
        if not positions:
            continue
        first, last = positions[0], positions[-1]
        if not legacy_unit and not v.first_sealed:
            v.first_sealed = first
        while row is not None and row[0] < first:
            seen(row)
            uncovered(row)
            row = advance()
        v.flush_run()
        got: list[SealedRow] = []
        i, n = 0, len(positions)
        while row is not None and row[0] <= last:
            position = row[0]
            while i < n and positions[i] < position:
                problems.add(positions[i], "removed", "the sealed event at this position is gone")
                i += 1
            oid, version = row[1], row[2]
            if versions.get(oid, 0) + 1 == version and row[3] != MARKER_TOPIC:
                versions[oid] = version  # the usual case of ``seen``, inline
                v.checked += 1
                v.last_position = position
            else:
                seen(row)
            if i < n and positions[i] == position:
                got.append(row)
                i += 1
            else:
                problems.add(position, "inserted", f"{_what(row)} was put among sealed events")
            row = advance()
        for position in positions[i:]:
            problems.add(position, "removed", "the sealed event at this position is gone")
        if legacy_unit:
            v.check_legacy(unit, got)
        else:
            v.check_seal(unit, positions, got)
    while row is not None:
        seen(row)
        uncovered(row)
        row = advance()
    v.flush_run()
    if receipt is not None and not v.receipt_seen:
        problems.add(
            receipt.position,
            "truncated",
            f"the receipt of {_when(receipt)} vouches for the log up to "
            f"position {receipt.position}, but the log now ends at position "
            f"{v.last_position} with {v.seals_seen} seal(s): its end was deleted",
        )
    unsealed = v.unsealed
    not_sealed_before = v.first_sealed if unsealed and v.first_sealed else 0
    if unsealed and v.marker and not v.first_sealed:
        not_sealed_before = v.marker
    return HistoryReport(
        checked=v.checked,
        sealed_up_to=v.sealed_up_to,
        unsealed=unsealed,
        problems=problems.done(),
        not_sealed_before=not_sealed_before,
        key_ids=tuple(v.key_ids),
        receipt=receipt.position if receipt is not None else None,
        sealing=ring is not None,
    )


def _units(
    legacy: Iterable[Any], seals: Iterable[SealRow | HistoryProblem], problems: _Problems
) -> Iterator[Any]:
    """The legacy seals, then the per-save ones; unreadable ones become problems."""
    for source in (legacy, seals):
        for unit in source:
            if isinstance(unit, HistoryProblem):
                problems.add(unit.position, unit.kind, unit.detail)
                continue
            yield unit


def _legacy_seals(recorder: Any, mapper: Any) -> Iterator[Any]:
    """The ``HistorySealed`` events of earlier versions, decoded, a page at a time."""
    from eventsourcing.persistence import MapperDeserialisationError

    from .domain.ids import SEALS_ID

    after = 0
    while True:
        try:
            page = recorder.select_events(SEALS_ID, gt=after or None, limit=50)
        except Exception as e:
            yield HistoryProblem(None, "unreadable", f"the legacy seals cannot be read: {e}")
            return
        for row in page:
            after = row.originator_version
            try:
                seal = mapper.to_domain_event(row)
            except MapperDeserialisationError as e:
                yield HistoryProblem(None, "seal-altered", f"legacy seal {after}: {e}")
                continue
            if isinstance(seal, HistorySealed):
                yield seal
        if len(page) < 50:
            return


def verify_recorder(
    recorder: Any, mapper: Any, ring: Keyring | None, receipt: Receipt | None = None
) -> HistoryReport:
    """Verify what ``recorder`` stores (see :func:`verify_log`)."""
    from .adapters.sealing import log_and_seals

    rows, per_save = log_and_seals(recorder)
    return verify_log(rows, per_save, _legacy_seals(recorder, mapper), ring, receipt)


def verify_store(
    env: Mapping[str, str],
    *,
    ring: Keyring | None = None,
    receipt: Receipt | None = None,
) -> HistoryReport:
    """Verify a store's history without opening the application (R31).

    Only the recorder and the mapper are built from the eventsourcing
    settings in ``env``, so a store whose events no longer load (the very
    damage an auditor looks for) can still be verified. The keys default to
    ``ESMC_SEAL_KEY`` / ``ESMC_SEAL_KEY_FILE`` in ``env``.
    """
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from .adapters.mapper import EventMapper
    from .adapters.sealing import recorder_topic

    settings = Environment("LicenseManagement", dict(env))
    settings.setdefault("CREATE_TABLE", "no")  # verifying writes nothing, creates nothing
    topic = recorder_topic(settings.get("PERSISTENCE_MODULE") or "")
    if topic and not settings.get("APPLICATION_RECORDER_TOPIC"):
        settings["APPLICATION_RECORDER_TOPIC"] = topic
    if ring is None:
        ring = seal_keyring(settings)
    factory = InfrastructureFactory.construct(settings)
    try:
        mapper = EventMapper(cipher=factory.cipher(), compressor=factory.compressor())
        recorder = factory.application_recorder()
        try:
            return verify_recorder(recorder, mapper, ring, receipt)
        finally:
            close = getattr(recorder, "close", None)
            if close is not None:
                close()
    finally:
        factory.close()


def _when(receipt: Receipt) -> str:
    return receipt.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


__all__ = [
    "HOW_TO_CONFIGURE",
    "MARKER_TOPIC",
    "HistoryProblem",
    "HistoryReport",
    "Receipt",
    "SealKeyMissing",
    "SealUnreadable",
    "SealRow",
    "Sealer",
    "make_receipt",
    "seal_keyring",
    "verify_log",
    "verify_recorder",
    "verify_store",
]
