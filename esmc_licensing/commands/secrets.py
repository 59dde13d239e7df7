"""Re-stating secrets under the current data key (R32, ``migrate-secrets``).

Why new events and not an update in place: history is forever. A store
written before R32 keeps its plain-text rows, and a rotated key keeps the rows
it sealed; re-stating each current secret as a new event sealed with the
current key makes the state (and every snapshot written from now on) depend
only on the current key, so an older key can then be forgotten without losing
the current secrets. The older rows still hold what they held: a copy of the
store keeps plain text from before R32 until the store itself is retired
(see docs/cli.md, "Secrets at rest").
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import orjson

from ..adapters.field_cipher import sealed_key_id
from ..adapters.mapper import secrets_of_topic
from ..aggregates import encode_state
from ..domain import account, directory, license
from ..domain.errors import DataKeyMissing, LicensingError
from ..domain.events import TOPICS, DomainEvent, user_actor
from ..domain.ids import PublicId, UserId
from ..handler import Handler
from ..service import Decision

#: aggregates re-stated per saved batch
BATCH = 500


def _secret_key_ids(data: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> list[str | None]:
    """The key id sealing each secret present in a stored state (None: plain text)."""
    out: list[str | None] = []
    for path in paths:
        value: Any = data
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            out.append(sealed_key_id(value))
    return out


class SecretCommands(Handler):
    def migrate_secrets(self, actor: UserId) -> int:
        """Re-state every current license key and password not sealed with the
        current data key (plain text from before R32, or an older key), as new
        events; returns how many were re-stated. Administrators only.

        Secrets whose key is no longer configured cannot be re-stated: they
        stay unavailable (their licenses and accounts are untouched).
        """
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "re-sealing secrets")
        cipher = self.event_log.mapper.secrets
        if cipher is None:
            raise DataKeyMissing(
                "no data key is configured: set ESMC_DATA_KEY_FILE or ESMC_DATA_KEY "
                "before re-sealing the secrets with it"
            )
        current = cipher.current_id
        # the latest secret-bearing row of each aggregate says what its state holds
        latest: dict[str, tuple[int, str, dict[str, Any]]] = {}
        for page in self.event_log.pages(0):
            for _, oid, version, topic, state in page:
                paths = secrets_of_topic(topic)
                if paths is None:
                    continue
                data = orjson.loads(state) if isinstance(state, bytes | str) else {}
                if not _secret_key_ids(data, paths):
                    continue
                seen = latest.get(str(oid))
                if seen is None or version > seen[0]:
                    latest[str(oid)] = (version, topic, data)
        stale = [
            (oid, topic, data)
            for oid, (_, topic, data) in latest.items()
            if any(kid != current for kid in _secret_key_ids(data, secrets_of_topic(topic) or ()))
        ]
        done = 0
        for i in range(0, len(stale), BATCH):
            batch = stale[i : i + BATCH]
            done += self._reseal(batch, uid)
            self._resnapshot([uuid.UUID(oid) for oid, _, _ in batch])
        return done

    def _resnapshot(self, ids: list[uuid.UUID]) -> None:
        """Replace the snapshots of re-stated aggregates (an older version wrote
        them with plain-text secrets) with their current state, sealed."""
        cipher = self.event_log.mapper.secrets
        for aggregate_id, _ in self.views.snapshots(ids).items():
            with self._lock:
                state = self._states.get(aggregate_id.int)
            if state is not None:
                encoded = encode_state(state, cipher, aggregate_id).decode()
                self.views.put_snapshot(aggregate_id, state.version, encoded)

    def _reseal(self, batch: list[tuple[str, str, dict[str, Any]]], uid: Any) -> int:
        def decide() -> Decision[int]:
            now, who = self._now(), user_actor(uid)
            events: list[DomainEvent] = []
            for oid, topic, data in batch:
                aggregate_id = uuid.UUID(oid)
                try:
                    if TOPICS[topic].aggregate == "license":
                        lic = self._load(
                            aggregate_id,
                            functools.partial(license.initial, PublicId(data["public_id"])),
                            license.evolve,
                        )
                        events += license.reseal(lic, now, who)
                    else:
                        acc = self._load(
                            aggregate_id,
                            functools.partial(account.initial, aggregate_id),
                            account.evolve,
                        )
                        events += account.reseal(acc, now, who)
                except LicensingError:
                    continue  # its key is gone: it stays unavailable
            return len(events), events

        return self._execute(decide)


__all__ = ["SecretCommands"]
