"""A realistic event log, written fast: for benchmarks and crash tests of the views.

``generate_log(app, events=N)`` appends about N events to the application's
store: groups, users and grants; pools and licenses (LicenseAdded,
LicenseJoinedPool), tags, computers with activations and seats, and then the
long tail of daily life (usage reports, agent check-ins, pool moves,
expiration changes). Events are built as the deciders would build them
(versions numbered per aggregate) and inserted in bulk -- raw ``executemany``
on SQLite, the recorder's ``insert_events`` elsewhere -- never one command at a
time. The events go around the application, so its views and cached states
follow them the next time it is asked (a query, ``app.wait_for()``): one
catch-up of everything written, like a store another process wrote to.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from eventsourcing.sqlite import SQLiteApplicationRecorder

from ..adapters.mapper import EventMapper
from ..domain.events import (
    ComputerConnected,
    ComputerRegistered,
    DomainEvent,
    ExpirationChanged,
    GroupCreated,
    LicenseAdded,
    LicenseJoinedPool,
    PermissionGranted,
    PoolCreated,
    PoolMoved,
    ProductActivated,
    SeatTaken,
    TagAssigned,
    TagCreated,
    UsageReported,
    UserCreated,
    user_actor,
)
from ..domain.ids import (
    DIRECTORY_ID,
    TAGS_ID,
    ComputerId,
    GroupId,
    PoolId,
    PublicId,
    UserId,
    license_aggregate_id,
)
from ..domain.values import LicenseType, Permission, Source

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PRODUCTS = ("ESET Endpoint Security", "ESET Server Security", "ESET Endpoint Antivirus")
TAGS = ("urgent", "renew", "branch", "vip", "audit")


def public_id(n: int) -> PublicId:
    chars = []
    for _ in range(9):
        n, r = divmod(n, 36)
        chars.append(_ALPHABET[r])
    s = "".join(reversed(chars))
    return PublicId(f"{s[:3]}-{s[3:6]}-{s[6:]}")


class _Log:
    def __init__(self, start: datetime, actor: str, versions: dict[uuid.UUID, int]) -> None:
        self.now = start
        self.actor = actor
        self.versions = versions
        self.count = 0

    def __call__(self, cls: type[DomainEvent], aggregate: uuid.UUID, **fields: Any) -> DomainEvent:
        v = self.versions.get(aggregate, 0) + 1
        self.versions[aggregate] = v
        self.count += 1
        if self.count % 20 == 0:
            self.now += timedelta(seconds=1)
        return cls(
            originator_id=aggregate,
            originator_version=v,
            timestamp=self.now,
            actor=self.actor,
            **fields,
        )


def generate_log(  # noqa: PLR0915 - one story, told in order
    app: Any,
    *,
    events: int = 1_000_000,
    licenses: int = 10_000,
    computers: int = 100_000,
    groups: int = 20,
    seed: int = 5,
    chunk: int = 10_000,
) -> int:
    """Append about ``events`` events to ``app``'s store; returns how many were written."""
    rnd = random.Random(seed)
    d = app._core._directory()
    admin: UserId = d.administrator
    all_group: GroupId = d.all_group
    versions: dict[uuid.UUID, int] = {DIRECTORY_ID: d.version}
    start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    emit = _Log(start, user_actor(admin), versions)
    computers = min(computers, max(0, (events - 3 * licenses) // 5))
    written = 0
    mapper: EventMapper = app._core.mapper

    def flush(batch: list[DomainEvent]) -> None:
        nonlocal written
        rec = app._core.recorder
        if isinstance(rec, SQLiteApplicationRecorder) and not (mapper.cipher or mapper.compressor):
            rows = []
            for e in batch:
                topic, state = mapper.encode_state(e)
                # eventsourcing keeps UUIDs as their hex text (what select_events asks for)
                rows.append((e.originator_id.hex, e.originator_version, topic, state))
            with rec.datastore.transaction(commit=True) as c:
                c.executemany(
                    f"INSERT INTO {rec.events_table_name} "
                    "(originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
                    rows,
                )
        else:
            rec.insert_events([mapper.to_stored_event(e) for e in batch])
        written += len(batch)

    def stream() -> Iterator[DomainEvent]:  # noqa: PLR0915
        gids = [all_group]
        for i in range(groups):
            g = GroupId.derive(f"bulk-group-{i}")
            yield emit(GroupCreated, DIRECTORY_ID, group=g, name=f"Branch {i}", parent=all_group)
            gids.append(g)
            u = UserId.derive(f"bulk-user-{i}")
            yield emit(UserCreated, DIRECTORY_ID, user=u, name=f"Branch admin {i}", home_group=g)
            yield emit(PermissionGranted, DIRECTORY_ID, user=u, group=g,
                       permission=Permission.WRITE)
        for t in TAGS:
            yield emit(TagCreated, TAGS_ID, name=t)
        pools: list[tuple[PoolId, list[PublicId]]] = []
        pool_group: dict[PoolId, GroupId] = {}
        n = 0
        while n < licenses:
            pool_id = PoolId.derive(f"bulk-pool-{len(pools)}")
            group = rnd.choice(gids)
            yield emit(PoolCreated, pool_id, name=f"Company {len(pools)}", group=group,
                       source=Source.LICENSE_KEY)
            members: list[PublicId] = []
            for _ in range(min(rnd.randint(1, 7), licenses - n)):
                pid = public_id(1_000_000 + n)
                n += 1
                units = rnd.choice((5, 10, 25, 50, 100, 250))
                yield emit(
                    LicenseAdded, license_aggregate_id(pid), public_id=pid, pool_id=pool_id,
                    source=Source.LICENSE_KEY, license_type=LicenseType.BUSINESS,
                    product=rnd.choice(PRODUCTS), product_code="EES", units=units,
                    offline_units=0, subunits=0,
                    expires=date(2026, 1, 1) + timedelta(days=rnd.randint(-30, 900)),
                    subscription=False, owner=f"Company {len(pools)}", contact="it@example.com",
                    license_user="", registered=True, registration_url=None, suspended=False,
                    obsolete=False, used_units=rnd.randint(0, units),
                )
                yield emit(LicenseJoinedPool, pool_id, public_id=pid)
                members.append(pid)
            pools.append((pool_id, members))
            pool_group[pool_id] = group
            if rnd.random() < 0.2:
                yield emit(TagAssigned, TAGS_ID, name=rnd.choice(TAGS), target=f"pool:{pool_id}")
        all_pids = [p for _, m in pools for p in m]
        pid_group = {p: pool_group[pool_id] for pool_id, m in pools for p in m}
        cids: list[ComputerId] = []
        for i in range(computers):
            pid = rnd.choice(all_pids)
            cid = ComputerId.derive(f"bulk-computer-{i}")
            cids.append(cid)
            product = PRODUCTS[i % len(PRODUCTS)]
            yield emit(ComputerRegistered, cid, computer_id=cid, name=f"pc-{i}",
                       group=pid_group[pid], fingerprint=f"fp-{i}", agent_id=f"agent-{i}",
                       products=(product,))
            yield emit(ComputerConnected, cid, computer_id=cid, at=emit.now)
            yield emit(ProductActivated, cid, computer_id=cid, product=product, public_id=pid)
            yield emit(SeatTaken, license_aggregate_id(pid), public_id=pid, computer_id=cid,
                       product=product)
        while True:  # daily life: the long tail
            r = rnd.random()
            if r < 0.45 and cids:
                cid = rnd.choice(cids)
                yield emit(ComputerConnected, cid, computer_id=cid, at=emit.now)
            elif r < 0.85:
                pid = rnd.choice(all_pids)
                yield emit(UsageReported, license_aggregate_id(pid), public_id=pid,
                           used_units=rnd.randint(0, 250))
            elif r < 0.93:
                pool_id, _ = rnd.choice(pools)
                to = rnd.choice(gids)
                yield emit(PoolMoved, pool_id, from_group=pool_group[pool_id], to_group=to)
                pool_group[pool_id] = to
            elif r < 0.97:
                pid = rnd.choice(all_pids)
                yield emit(ExpirationChanged, license_aggregate_id(pid), public_id=pid,
                           expires=date(2027, 1, 1) + timedelta(days=rnd.randint(0, 700)),
                           previous=None)
            else:
                pool_id, _ = rnd.choice(pools)
                yield emit(TagAssigned, TAGS_ID, name=rnd.choice(TAGS), target=f"pool:{pool_id}")

    batch: list[DomainEvent] = []
    for e in stream():
        batch.append(e)
        if len(batch) >= chunk:
            flush(batch)
            batch = []
        if written + len(batch) >= events:
            break
    if batch:
        flush(batch)
    return written
