"""The views (R30) on SQLite and PostgreSQL: properties over random sessions.

An application keeps its views current itself (each save applies its events,
each query first catches up with other processes' writes); a rebuild empties
them and applies the whole log; each batch of events commits with its
tracking position. The properties:

(a) views kept live by an application equal views rebuilt from scratch;
(b) views caught up with a crash after any event (stopped, or an exception
    in the middle of a batch), then resumed, equal a rebuild -- and before
    the resume they hold exactly the events up to their position;
(c) ``licenses(actor, as_of=t)`` equals what ``licenses(actor)`` answered at t;
(d) no query from the views shows what the actor may not see (R11, R14),
    asked of an application that only reads what another one writes;
(e) applications sharing a store answer alike, and one decides on what the
    other just wrote (a racing group name: exactly one wins);
(f) an interrupted rebuild leaves views at a position their rows match,
    and a later catch-up completes them;
(g) views of another layout are emptied and rebuilt, not misread;
(h) a batch commits its rows with its tracking position, or nothing.

"Equal" is ``ViewStore.dump()``: every view row, in key order, each row's
state decoded (see ``_rows``). Every example gets a store of its own: a
SQLite file (views beside the events, other view stores in files of their
own), or a fresh PostgreSQL schema holding the events and every view store
(by table prefix).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    Adapters,
    AlreadyExists,
    InMemoryActivationServer,
    LicenseFilter,
    LicenseManagement,
    LicensingError,
    ManualClock,
    NotFound,
    Permission,
    PublicId,
    UserId,
)
from esmc_licensing.eventlog import EventLog
from esmc_licensing.projections import fold
from esmc_licensing.projections import runner as runner_module
from esmc_licensing.projections.runner import LogReader, ViewUpdater, rebuild_views
from esmc_licensing.projections.tables import (
    SCHEMA_VERSION,
    TABLES,
    PostgresViews,
    SQLiteViews,
    ViewStore,
    decode_row_state,
)
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log
from esmc_licensing.testing.strategies import (
    AddKey,
    AdvanceClock,
    AssignTag,
    Command,
    CreateGroup,
    CreateTag,
    CreateUser,
    Grant,
    MovePool,
    World,
    commands,
    license_filters,
)

from .conftest import START
from .test_properties_app import Model, _apply, _check_visibility, _expect, _resolve

BACKENDS = ["sqlite", "postgres"]


def _scaled(fraction: float) -> settings:
    """Examples as a fraction of the loaded profile's (ci: 25)."""
    return settings(max_examples=max(5, int(settings().max_examples * fraction)))


def _rows(views: ViewStore) -> dict[str, list[tuple[Any, ...]]]:
    """``views.dump()`` with each row's ``state`` decoded and its ``view`` parsed.

    The JSON of a state is not canonical: a set (a pool's Public IDs, a
    license's seats) is written in its iteration order, which depends on how
    the set was built -- folded in one batch, or read back from a row written
    by an earlier batch -- so equal views can differ in that text. Decoded,
    they compare as the states they are; everything else but the batch
    position a row was last written at is compared as is.
    """
    out: dict[str, list[tuple[Any, ...]]] = {}
    by_name = {t.name: t for t in TABLES.values()}
    for name, rows in views.dump().items():
        table = by_name.get(name)
        if table is None:
            out[name] = rows
            continue
        columns = [table.key, *(c for c, _ in table.columns), "state"]
        if table.tracks_changes:
            columns.append("changed")
        decoded = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            # the position of the batch that last wrote the row: bookkeeping for
            # kept answers, which depends on how the events were batched
            values.pop("changed", None)
            values["state"] = decode_row_state(table, values["state"])
            if "view" in values:
                values["view"] = orjson.loads(values["view"])
            decoded.append(tuple(values.items()))
        out[name] = decoded
    return out


# -- one store per example -------------------------------------------------------------------


@attrs.define
class Store:
    """One example's event store, the applications opened on it, and view stores beside it."""

    backend: str
    env: dict[str, str]
    base: Path | None = None  # SQLite: other view stores are files next to it
    schema: str | None = None  # PostgreSQL: other view stores are prefixes in it
    clock: ManualClock = attrs.field(factory=lambda: ManualClock(START))
    vendor: InMemoryActivationServer = attrs.field(init=False)
    closing: list[Any] = attrs.field(factory=list)
    _reader: LogReader | None = None
    _names: Iterator[int] = attrs.field(factory=itertools.count)

    def __attrs_post_init__(self) -> None:
        self.vendor = InMemoryActivationServer(clock=self.clock)

    def app(self, views: ViewStore | None = None) -> LicenseManagement:
        app = LicenseManagement(
            env=self.env,
            adapters=Adapters(activation_server=self.vendor, clock=self.clock),
            views=views,
        )
        self.closing.append(app)
        return app

    def log(self) -> EventLog:
        """The store's log as a process of its own reads it (not through an application)."""
        if self._reader is None:
            self._reader = LogReader(env=self.env)
            self.closing.append(self._reader)
        mapper = self._reader.mapper
        return EventLog(self._reader.recorder, mapper)  # type: ignore[arg-type]

    def views(self, name: str | None = None) -> ViewStore:
        """A view store of its own, of this store's kind, empty."""
        name = name or f"v{next(self._names)}"
        views: ViewStore
        if self.backend == "postgres":
            self.log()
            assert self._reader is not None and self.schema is not None
            datastore = self._reader.recorder.datastore  # type: ignore[attr-defined]
            views = PostgresViews(datastore, schema=self.schema, prefix=f"{name}_")
        else:
            views = SQLiteViews(f"{self.base}.{name}.db")
        self.closing.append(views)
        return views

    def upto(self, position: int) -> ViewStore:
        """Fresh views holding exactly the events up to ``position``."""
        views = self.views()
        ViewUpdater(self.log(), views).catch_up(stop=position)
        assert views.position() == position
        return views

    def rebuilt(self) -> dict[str, Any]:
        """A fresh rebuild's rows (``esmc-licensing rebuild`` into new views)."""
        views = self.views()
        rebuild_views(self.env, views)
        return _rows(views)

    def close(self) -> None:
        for thing in reversed(self.closing):
            thing.close()


def _postgres_or_skip() -> None:
    reason = stores.postgres_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """A context manager giving each Hypothesis example a store of its own."""
    backend = request.param
    if backend == "postgres":
        _postgres_or_skip()

    @contextmanager
    def fresh() -> Iterator[Store]:
        if backend == "postgres":
            with stores.postgres_schema() as schema:
                store = Store(backend, stores.postgres_env(schema), schema=schema)
                try:
                    yield store
                finally:
                    store.close()
            return
        base = tmp_path / uuid.uuid4().hex
        store = Store(backend, stores.sqlite_env(Path(f"{base}.db")), base=base)
        try:
            yield store
        finally:
            store.close()

    return fresh


def _run(world: World, sequence: list[Command], after: Callable[[], None]) -> None:
    for command in sequence:
        with suppress(LicensingError):  # refusals are part of the story
            world.run(command)
        after()


def _positions(store: Store) -> list[int]:
    return [p for p, _ in store.log().read(0)]


def _attempt(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except NotFound as e:
        return ("NotFound", str(e))


def _answers(app: LicenseManagement, world: World) -> dict[UserId, Any]:
    """Everything each user of the world asks: lists, single objects, histories."""
    out = {}
    for user in world.users:
        out[user] = {
            "licenses": app.licenses(user),
            "pools": app.pools(user),
            "license": [_attempt(partial(app.license, user, p)) for p in world.licenses],
            "history": [_attempt(partial(app.history, user, p)) for p in world.licenses],
            "pool history": [_attempt(partial(app.history, user, p)) for p in world.pools],
        }
    return out


# -- (a) live equals rebuilt -------------------------------------------------------------------


@_scaled(0.4)
@given(
    sequence=commands(max_size=16),
    asks=st.lists(st.booleans(), min_size=16, max_size=16),
    lag=st.none() | st.integers(min_value=1, max_value=6),
)
def test_r30_views_kept_live_by_an_application_equal_views_rebuilt_from_scratch(
    fresh_store: Any, sequence: list[Command], asks: list[bool], lag: int | None
) -> None:
    """No runner: the application keeps its views itself, from its own saves, up to
    date whenever it answers a query (asked after some commands, at random, so
    that the views follow one command at a time or many at once; with a small
    ``views_lag`` the saves bring them up to date too)."""
    with fresh_store() as store:
        app = store.app()
        if lag is not None:
            app._core.views_lag = lag
        world = World(app, store.vendor)
        for command, ask in zip(sequence, asks, strict=False):
            with suppress(LicensingError):
                world.run(command)
            if ask:
                app.pools(app.administrator)
                assert app._core.views.position() == app._core.event_log.end()
        app.licenses(app.administrator)
        assert app._core.views.position() == app._core.event_log.end()
        assert _rows(app._core.views) == store.rebuilt()


# -- (b) crash anywhere, resume, equal ---------------------------------------------------------


class _Crash(Exception):
    """A process dying in the middle of its work."""


@contextmanager
def _fold_crashing_after(count: int) -> Iterator[None]:
    """The views' fold raises on the event after ``count`` events folded."""
    real = fold.apply
    folded = [0]

    def apply(storage: Any, position: int, event: Any) -> None:
        if folded[0] >= count:
            raise _Crash
        folded[0] += 1
        real(storage, position, event)

    with mock.patch.object(runner_module, "apply", apply):
        yield


@_scaled(0.4)
@given(
    sequence=commands(max_size=16),
    cut=st.floats(min_value=0, max_value=1, exclude_max=True),
    batch=st.integers(min_value=1, max_value=9),
    again=st.integers(min_value=1, max_value=9),
    crash=st.sampled_from(["stop", "exception"]),
)
def test_r30_views_caught_up_with_a_crash_after_any_event_then_resumed_equal_a_rebuild(
    fresh_store: Any, sequence: list[Command], cut: float, batch: int, again: int, crash: str
) -> None:
    with fresh_store() as store:
        app = store.app()
        _run(World(app, store.vendor), sequence, lambda: None)
        positions = _positions(store)
        k = int(len(positions) * cut)
        views = store.views("crashed")
        first = ViewUpdater(store.log(), views)
        if crash == "stop":  # the process stops after event k, its batches all committed
            first.catch_up(stop=positions[k - 1] if k else 0, batch_size=batch)
            committed = k
        else:  # it dies folding event k + 1: that batch is lost, whole
            with _fold_crashing_after(k), pytest.raises(_Crash):
                first.catch_up(batch_size=batch)
            committed = (k // batch) * batch
        position = positions[committed - 1] if committed else 0
        assert views.position() == position
        # the views hold exactly what their position says: no more, no less
        assert _rows(views) == _rows(store.upto(position))

        second = ViewUpdater(store.log(), views)  # a new process, resuming
        assert second.catch_up(batch_size=again) == positions[-1]
        assert views.position() == positions[-1]
        assert _rows(views) == store.rebuilt()


# -- (c) as_of answers as the views answered then ----------------------------------------------


@_scaled(0.4)
@given(sequence=commands(max_size=14))
def test_r30_licenses_as_of_t_equal_what_licenses_answered_at_t(
    fresh_store: Any, sequence: list[Command]
) -> None:
    with fresh_store() as store:
        app = store.app()
        world = World(app, store.vendor)
        by_time: dict[datetime, dict[UserId, Any]] = {}
        by_position: dict[int, dict[UserId, Any]] = {}
        last = [app.position]

        def remember() -> None:
            answers = {u: (app.licenses(u), app.pools(u)) for u in world.users}
            # every event so far has a timestamp <= now; a later answer at the same
            # moment replaces an earlier one, as as_of=now includes its events too
            by_time[store.clock.now()] = answers
            if app.position != last[0]:
                # the last event was recorded now: its date is today's, as it was then
                by_position[app.position] = answers
                last[0] = app.position

        remember()
        _run(world, [*sequence, AdvanceClock(days=1)], remember)
        for as_of, answers in [*by_time.items(), *by_position.items()]:
            for user, (lics, pools) in answers.items():
                assert app.licenses(user, as_of=as_of) == lics, (as_of, user)
                assert app.pools(user, as_of=as_of) == pools, (as_of, user)


# -- (d) visibility first, from the views a reader keeps ---------------------------------------


def _matches(f: Any, v: Any) -> bool:
    return bool(
        f.matches(
            level=v.status.level, reasons=v.status.reasons, tags=v.tags,
            license_type=v.license_type, product=v.product, public_id=str(v.public_id),
            owner=v.owner,
        )
    )


@_scaled(0.4)
@given(
    sequence=commands(max_size=20),
    filters=st.lists(license_filters(), min_size=1, max_size=3),
)
def test_r14_no_query_from_the_views_shows_what_the_actor_may_not_see(
    fresh_store: Any, sequence: list[Command], filters: list[Any]
) -> None:
    """An application that only reads (B) answers from views it catches up with
    what another one (A) writes; what it shows is checked against the model of
    ``test_properties_app`` (visibility computed from the grants and the tree),
    and every filter selects from what the actor sees exactly what it matches."""
    with fresh_store() as store:
        writer = store.app()
        reader = store.app()
        world = World(writer, store.vendor)
        seen_by_reader = attrs.evolve(world, app=reader)  # the same lists, the other app
        model = Model(writer.administrator, writer.all_group)
        for cmd in sequence:
            refs = _resolve(world, cmd)
            expected = _expect(model, world, cmd, refs)
            try:
                result = world.run(cmd)
            except LicensingError as e:
                assert expected is not None and type(e) is expected, (cmd, e)
                continue
            assert expected is None, cmd
            _apply(model, world, cmd, refs, result)
            _check_visibility(model, seen_by_reader, thorough=False)
        _check_visibility(model, seen_by_reader, thorough=True)
        for user in world.users:
            everything = reader.licenses(user)
            for f in filters:
                assert reader.licenses(user, f) == [v for v in everything if _matches(f, v)], f


# -- (e) applications sharing a store ----------------------------------------------------------


@_scaled(0.4)
@given(
    sequence=commands(max_size=16),
    who=st.lists(st.integers(min_value=0, max_value=1), min_size=16, max_size=16),
)
def test_r30_applications_sharing_a_store_answer_alike_and_keep_one_set_of_views(
    fresh_store: Any, sequence: list[Command], who: list[int]
) -> None:
    """Two applications (two processes, in effect) take turns at random on one store;
    each answers what the other wrote. A third, reopened afterwards with views
    of its own (caught up from the log when it opens), answers alike too."""
    with fresh_store() as store:
        apps = [store.app(), store.app()]
        world = World(apps[0], store.vendor)
        for command, i in zip(sequence, who, strict=False):
            world.app = apps[i]
            with suppress(LicensingError):
                world.run(command)
        end = apps[0].position
        assert apps[1].position == end
        first = _answers(apps[0], world)
        assert _answers(apps[1], world) == first
        reopened = store.app(views=store.views("own"))
        assert _answers(reopened, world) == first
        assert reopened._core.views.position() == apps[0]._core.views.position() == end
        assert _rows(reopened._core.views) == _rows(apps[0]._core.views) == store.rebuilt()


@pytest.fixture(params=BACKENDS)
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield stores.sqlite_env(tmp_path / "licenses.db")
        return
    _postgres_or_skip()
    with stores.postgres_schema() as schema:
        yield stores.postgres_env(schema)


@attrs.frozen
class TwoApps:
    a: LicenseManagement
    b: LicenseManagement
    vendor: InMemoryActivationServer


@pytest.fixture
def two_apps(shared_env: dict[str, str]) -> Iterator[TwoApps]:
    """Two applications on one store (two processes, in effect), one vendor."""
    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    a, b = (
        LicenseManagement(env=shared_env, adapters=Adapters(activation_server=vendor, clock=clock))
        for _ in range(2)
    )
    try:
        yield TwoApps(a, b, vendor)
    finally:
        a.close()
        b.close()


def test_r13_a_command_in_one_application_decides_on_what_another_just_wrote(
    two_apps: TwoApps,
) -> None:
    a, b = two_apps.a, two_apps.b
    admin = a.administrator
    assert b.licenses(admin) == [] and b.pools(admin) == []  # b has looked: its caches are warm
    key = two_apps.vendor.issue(
        public_id="3AB-C12-D34", product="ESET Endpoint Security", units=5, expires=None,
        subscription=True, owner="Acme",
    )
    pid = a.add_license_key(admin, key)
    lab = a.create_group(admin, "Lab")
    [pool] = b.pools(admin)
    b.move_pools(admin, [pool.pool_id], lab)  # a pool and a group b never saw written
    eve = b.create_user(admin, "Eve", lab)
    b.grant(admin, eve, lab, Permission.READ)
    # and back: a decides on b's writes
    assert [v.public_id for v in a.licenses(eve)] == [pid]
    assert a.pools(admin)[0].group == lab
    with pytest.raises(AlreadyExists):
        b.create_group(admin, "lab")  # the name a took (R10: case-insensitive)
    with pytest.raises(AlreadyExists):
        a.create_user(admin, "eve", lab)
    a.move_pools(admin, [pool.pool_id], a.all_group)
    assert b.licenses(eve) == []
    assert a._core.views.position() == b._core.views.position() == a.position == b.position


def _race(works: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(works))
    results: list[Any] = [None] * len(works)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = works[i]()
        except Exception as e:  # collected and asserted on below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_r10_two_applications_racing_to_create_one_group_name_exactly_one_wins(
    two_apps: TwoApps,
) -> None:
    a, b = two_apps.a, two_apps.b
    admin = a.administrator
    for name in ("Lab", "Sydney", "Tokyo", "Kyoto", "Oslo"):
        results = _race([
            lambda n=name: a.create_group(admin, n),  # type: ignore[misc]
            lambda n=name: b.create_group(admin, n.upper()),  # type: ignore[misc]
        ])
        won = [r for r in results if not isinstance(r, Exception)]
        lost = [r for r in results if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], AlreadyExists), lost
        assert a.group_named(name) == b.group_named(name) == won[0]
    assert a._core._directory() == b._core._directory()
    assert _rows(a._core.views) == _rows(b._core.views)


# -- (f) an interrupted rebuild ----------------------------------------------------------------


def _interrupt_after(batches: int) -> Callable[[int, int], None]:
    """A progress callback that stops a rebuild after ``batches`` committed batches."""
    seen = [0]

    def progress(done: int, total: int) -> None:
        seen[0] += 1
        if seen[0] >= batches:
            raise _Crash

    return progress


@pytest.mark.parametrize("where", ["between batches", "mid batch"])
def test_r30_an_interrupted_rebuild_leaves_views_at_a_position_their_rows_match(
    fresh_store: Any, where: str
) -> None:
    """Each batch of a rebuild commits with its position; interrupted, it leaves
    the views of its last batch at that batch's position (or the dropped,
    empty views at 0), and a catch-up completes them to what a rebuild gives."""
    with fresh_store() as store:
        app = store.app()
        generate_log(app, events=2_500, licenses=60, computers=120, chunk=500)
        positions = _positions(store)
        views = store.views("interrupted")
        ViewUpdater(store.log(), views).catch_up()  # complete before the rebuild
        assert views.position() == positions[-1]
        with pytest.raises(_Crash):
            if where == "between batches":
                rebuild_views(store.env, views, progress=_interrupt_after(2), batch_size=400)
            else:
                with _fold_crashing_after(1_000):
                    rebuild_views(store.env, views, batch_size=400)
        position = views.position()
        assert position == positions[800 - 1]  # two batches of 400 committed
        assert _rows(views) == _rows(store.upto(position))
        refs = _rows(views)["audit"]
        assert max(p for _, p in refs) <= position
        assert ViewUpdater(store.log(), views).catch_up() == positions[-1]
        assert _rows(views) == store.rebuilt()


def test_r30_an_application_opened_after_an_interrupted_rebuild_completes_the_views(
    fresh_store: Any,
) -> None:
    with fresh_store() as store:
        app = store.app()
        generate_log(app, events=1_500, licenses=40, computers=60, chunk=500)
        before = app.licenses(app.administrator), app.pools(app.administrator)
        with pytest.raises(_Crash):  # ``esmc-licensing rebuild`` of the store's own views
            rebuild_views(store.env, progress=_interrupt_after(1), batch_size=500)
        app.close()
        store.closing.remove(app)
        again = store.app()
        assert (again.licenses(again.administrator), again.pools(again.administrator)) == before
        assert again._core.views.position() == again.position
        assert _rows(again._core.views) == store.rebuilt()


def test_r30_an_open_application_catches_up_views_a_rebuild_left_behind(
    fresh_store: Any,
) -> None:
    with fresh_store() as store:
        app = store.app()
        generate_log(app, events=1_500, licenses=40, computers=60, chunk=500)
        admin = app.administrator
        before = app.pools(admin), app.licenses(admin, LicenseFilter(types=["BUSINESS"]))
        with pytest.raises(_Crash):  # ``esmc-licensing rebuild`` in another process
            rebuild_views(store.env, progress=_interrupt_after(1), batch_size=500)
        assert (app.pools(admin), app.licenses(admin, LicenseFilter(types=["BUSINESS"]))) == (
            before
        )


def test_r30_a_rebuild_over_live_views_equals_a_rebuild_into_new_ones(fresh_store: Any) -> None:
    with fresh_store() as store:
        app = store.app()
        generate_log(app, events=1_500, licenses=40, computers=80, chunk=300)
        assert app._core.views.position() < app._core.event_log.end()  # written behind its back
        app.licenses(app.administrator)  # caught up before answering
        assert app._core.views.position() == app._core.event_log.end()
        assert rebuild_views(None, app=app) == app.position
        assert app._core.views.position() == app.position
        assert _rows(app._core.views) == store.rebuilt()


# -- (g) views of another layout ---------------------------------------------------------------


def _sql(views: ViewStore, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with views._transaction(write=True) as c:
        for statement, params in statements:
            c.execute(views.sql(statement), params)


@pytest.mark.parametrize("layout", ["same tables", "other columns"])
def test_r30_views_of_another_layout_are_emptied_and_rebuilt_not_misread(
    fresh_store: Any, layout: str
) -> None:
    """Views recorded under another ``schema`` value in their ``meta`` table are
    derived data of a layout this code does not read: an application opening
    them empties them (rows of whatever columns) and catches up from the log."""
    with fresh_store() as store:
        app = store.app()
        world = World(app, store.vendor)
        _run(world, list(_STORY), lambda: None)
        answers = _answers(app, world)
        position = app.position
        views = app._core.views
        t = views.t
        other = SCHEMA_VERSION - 1
        _sql(
            views,
            (f"UPDATE {t('meta')} SET value = {{}} WHERE name = {{}}", (other, "schema")),
            (f"UPDATE {t('licenses')} SET units = 999, view = {{}}", ("{}",)),
            (f"INSERT INTO {t('audit')} (target, position) VALUES ({{}}, {{}})", ("x", 10**9)),
        )
        if layout == "other columns":
            _sql(
                views,
                (f"DROP TABLE {t('licenses')}", ()),
                (f"CREATE TABLE {t('licenses')} (public_id TEXT PRIMARY KEY, "
                 "pool TEXT, state TEXT NOT NULL)", ()),
                (f"INSERT INTO {t('licenses')} VALUES ({{}}, {{}}, {{}})",
                 ("AAA-BBB-CCC", "x", "{}")),
            )
        app.close()
        store.closing.remove(app)
        again = store.app()
        assert _answers(again, world) == answers  # its first query catches up
        assert again._core.views.position() == position
        assert _rows(again._core.views) == store.rebuilt()
        with again._core.views.reading() as c:
            assert again._core.views.fetch_one(
                c, f"SELECT value FROM {t('meta')} WHERE name = {{}}", ("schema",)
            )[0] == SCHEMA_VERSION


#: groups, users, grants, two pools (one moved), tags, and time passing
_STORY: tuple[Command, ...] = (
    CreateGroup(actor=0, name="Lab", parent=0),
    CreateUser(actor=0, name="John", home=0),
    Grant(actor=0, user=0, group=0, permission=Permission.WRITE),
    AddKey(actor=0, public_id=PublicId("3AB-C12-D34"), owner="Acme", units=10,
           expires_in_days=20, product="ESET Endpoint Security"),
    AddKey(actor=0, public_id=PublicId("AAA-BBB-CCC"), owner="Globex", units=5,
           expires_in_days=None, product="ESET Server Security"),
    MovePool(actor=0, pool=1, group=0),
    CreateTag(actor=0, name="urgent"),
    AssignTag(actor=0, name="urgent", target=0, on_pool=False),
    AdvanceClock(days=3),
)


# -- (h) a batch commits all of itself or nothing ----------------------------------------------


_STAGES = ["in the fold", "after the rows", "after the tags", "after the references",
           "at the tracking record"]


@contextmanager
def _failing(views: ViewStore, stage: str) -> Iterator[list[bool]]:
    """Make the batch's write fail at ``stage`` (after the work of the stages before);
    yields a flag set when the failure was raised."""
    raised = [False]

    def boom() -> None:
        raised[0] = True
        raise _Crash

    def after(name: str) -> None:
        real = getattr(views, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)
            boom()
            return out

        setattr(views, name, wrapper)

    patched = {
        "after the rows": "upsert", "after the tags": "apply_tags",
        "after the references": "insert_refs", "at the tracking record": "sql",
    }.get(stage)
    if stage == "at the tracking record":
        real_sql = views.sql

        def sql(statement: str) -> str:
            if statement.startswith("UPDATE") and "tracking" in statement:
                boom()
            return real_sql(statement)

        views.sql = sql  # type: ignore[method-assign]
    elif patched is not None:
        after(patched)
    try:
        yield raised
    finally:
        if patched is not None:
            delattr(views, patched)


@_scaled(0.4)
@given(
    sequence=commands(max_size=12),
    cut=st.floats(min_value=0, max_value=1),
    size=st.integers(min_value=1, max_value=30),
    stage=st.sampled_from(_STAGES),
)
def test_r30_a_batch_commits_its_rows_with_its_tracking_position_or_not_at_all(
    fresh_store: Any, sequence: list[Command], cut: float, size: int, stage: str
) -> None:
    with fresh_store() as store:
        app = store.app()
        _run(World(app, store.vendor), sequence, lambda: None)
        events = list(store.log().read(0))
        k = int(len(events) * cut)
        views = store.views("batches")
        ViewUpdater(store.log(), views).catch_up(stop=events[k - 1][0] if k else 0)
        before, position = _rows(views), views.position()
        chunk = events[k : k + size]
        with _failing(views, stage) as raised:
            try:
                with views.batch() as b:
                    assert b.position == position
                    for p, e in chunk:
                        fold.apply(b, p, e)
                    b.reached = chunk[-1][0] if chunk else None
                    if stage == "in the fold":
                        raised[0] = True
                        raise _Crash
            except _Crash:
                assert raised[0]
        if raised[0]:  # nothing of the batch was written, its position neither
            assert views.position() == position
            assert _rows(views) == before
        else:  # the stage was never reached (no rows, or no references): all of it
            assert views.position() == (chunk[-1][0] if chunk else position)
            assert _rows(views) == _rows(store.upto(views.position()))
        assert ViewUpdater(store.log(), views).catch_up() == (events[-1][0] if events else 0)
        assert _rows(views) == store.rebuilt()


# -- more --------------------------------------------------------------------------------------


def test_r30_two_updaters_racing_on_one_view_store_apply_each_event_once(
    fresh_store: Any,
) -> None:
    """Two processes catching up the same views (each its own connection): the
    tracking row is compare-and-set, so every batch starts where the last one
    committed, and together they give what a rebuild gives."""
    with fresh_store() as store:
        app = store.app()
        generate_log(app, events=1_500, licenses=40, computers=60, chunk=500)
        first = store.views("shared")
        if store.backend == "sqlite":
            assert isinstance(first, SQLiteViews)
            second: ViewStore = SQLiteViews(first.path)
            store.closing.append(second)
        else:
            other = LogReader(env=store.env)
            store.closing.append(other)
            second = PostgresViews(
                other.recorder.datastore,  # type: ignore[attr-defined]
                schema=store.schema or "public", prefix="shared_",
            )
        logs = [store.log(), EventLog(app._core.recorder, app._core.event_log.mapper)]
        results = _race(
            [lambda: ViewUpdater(logs[0], first).catch_up(batch_size=50),
             lambda: ViewUpdater(logs[1], second).catch_up(batch_size=70)]
        )
        end = app._core.event_log.end()
        assert not [r for r in results if isinstance(r, Exception)], results
        assert max(results) == end
        assert first.position() == second.position() == end
        assert _rows(first) == store.rebuilt()


def test_r30_in_memory_views_follow_an_in_memory_application() -> None:
    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(adapters=Adapters(activation_server=vendor, clock=clock))
    try:
        assert isinstance(app._core.views, SQLiteViews) and app._core.views.path == ":memory:"
        pid = app.add_license_key(
            app.administrator,
            vendor.issue(public_id="3AB-C12-D34", product="ESET Endpoint Security", units=5,
                         expires=None, subscription=True, owner="Acme"),
        )
        assert app.license(app.administrator, pid).public_id == pid  # views caught up
        assert app._core.views.position() == app._core.event_log.end()
        assert [r[0] for r in app._core.views.dump()["licenses"]] == [str(pid)]
        rebuilt = SQLiteViews(":memory:")
        assert rebuild_views(None, rebuilt, app=app) == app.position
        assert _rows(rebuilt) == _rows(app._core.views)
        rebuilt.close()
        # the views never hold a license key (R2), only a stand-in with its last four
        key = vendor.key_of("3AB-C12-D34")
        assert key not in str(app._core.views.dump())
    finally:
        app.close()


def _assert_views_equal_a_rebuild(app: LicenseManagement) -> None:
    """The views an application kept (after they follow, as before a query)
    hold what a rebuild from its log makes."""
    from esmc_licensing.projections.tables import SQLiteViews

    app.licenses(app.administrator)  # the views follow before answering
    rebuilt = SQLiteViews(":memory:")
    ViewUpdater(app._core.event_log, rebuilt).catch_up()
    assert _rows(app._core.views) == _rows(rebuilt)
    app.close()


@settings(max_examples=max(5, int(settings().max_examples * 0.4)), deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["activate", "check-in", "deactivate", "query"]),
                  st.integers(0, 5), st.integers(0, 2)),
        min_size=1, max_size=30,
    ),
    lag=st.integers(1, 40),
)
def test_r30_views_of_activations_applied_from_memory_equal_a_rebuild(
    steps: list[tuple[str, int, int]], lag: int
) -> None:
    """Activations save the states their decisions started from beside their
    events; the views start from those instead of reading their rows back, and
    take the states the decisions folded instead of folding each event again.
    Whatever the mix and however often the views follow, they equal a rebuild."""
    from esmc_licensing import InMemoryAgents, Permission

    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(
        adapters=Adapters(activation_server=vendor, clock=clock, agents=InMemoryAgents())
    )
    app._core.views_lag = lag
    admin = app.administrator
    product = "ESET Endpoint Security"
    pids = [
        app.add_license_key(admin, vendor.issue(
            public_id=f"ACT-000-00{i}", product=product, units=3, owner=f"Owner {i}",
            expires=(START + timedelta(days=365)).date()))
        for i in range(3)
    ]
    cids = [
        app.register_computer(admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}",
                              products=[product])
        for i in range(6)
    ]
    assert Permission.WRITE  # the administrator acts throughout
    for what, c, p in steps:
        cid, pid = cids[c], pids[p]
        try:
            if what == "activate":
                app.run_product_activation(admin, pid, [cid])
            elif what == "check-in":
                clock.advance(timedelta(minutes=1))
                app.computer_connected(cid)
            elif what == "deactivate":
                app.deactivate_products(admin, [cid])
            else:
                app.licenses(admin)
        except LicensingError:
            pass  # a full license refuses; nothing recorded
    _assert_views_equal_a_rebuild(app)


def test_r30_a_view_row_takes_a_decisions_fold_only_from_the_very_state_it_started_from() -> None:
    """An application's own events reach the views with the states their decision
    folded (before, after): the row takes "after" only when it holds that very
    "before" object -- an equal copy, or a row another writer changed, is folded
    with ``evolve`` as any event of the log."""
    from esmc_licensing.domain import task
    from esmc_licensing.domain.events import Emitter, TaskTargetSucceeded
    from esmc_licensing.domain.ids import ComputerId, TaskId
    from esmc_licensing.projections.tables import SQLiteViews

    task_id, computer_id = TaskId.random(), ComputerId(uuid.uuid4())
    before = attrs.evolve(task.initial(task_id), version=1, exists=True)
    e = Emitter(task_id, 1, START, "system")(
        TaskTargetSucceeded, task_id=task_id, computer_id=computer_id
    )
    after = task.evolve(before, e)
    views = SQLiteViews(":memory:")
    with views.batch() as b:
        b.folded = {id(e): (e, before, after)}
        assert b.evolved(e, before) is after
        assert b.evolved(e, attrs.evolve(before)) is None
        b.seed("task", str(task_id), attrs.evolve(before))  # the row is not that object
        fold.apply(b, 1, e)
        row = b.get("task", str(task_id))
        assert row == after and row is not after


def test_r30_states_of_a_license_with_many_seats_are_not_kept_for_the_views() -> None:
    """The views reuse what decisions folded only for states of a bounded size:
    each seat taken makes a new seat set (each target's result a new target
    map), and up to ``views_lag`` events wait for the views, so states past
    ``MEMO_LARGEST`` seats or targets are not kept (the views fold those events
    again) -- memory stays linear in a command's targets, not quadratic."""
    from esmc_licensing import InMemoryAgents
    from esmc_licensing.domain.license import LicenseState
    from esmc_licensing.domain.task import TaskState
    from esmc_licensing.service import MEMO_LARGEST

    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(
        adapters=Adapters(activation_server=vendor, clock=clock, agents=InMemoryAgents())
    )
    app._core.views_lag = 10**6  # everything waits for the next query
    admin, product = app.administrator, "ESET Endpoint Security"
    pid = app.add_license_key(admin, vendor.issue(
        public_id="BIG-000-001", product=product, units=MEMO_LARGEST + 50, owner="Owner",
        expires=(START + timedelta(days=365)).date()))
    cids = [app.register_computer(admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}",
                                  products=[product]) for i in range(MEMO_LARGEST + 20)]
    for cid in cids:
        app.run_product_activation(admin, pid, [cid])
    kept = [after for _, _, after in app._core._pending_folded.values()]
    assert kept  # the small states are kept
    assert max(len(s.seats) for s in kept if isinstance(s, LicenseState)) == MEMO_LARGEST
    # one command on all of them: its task's target map grows with each result
    other = app.add_license_key(admin, vendor.issue(
        public_id="BIG-000-002", product=product, units=len(cids), owner="Owner",
        expires=(START + timedelta(days=365)).date()))
    app.run_product_activation(admin, other, cids)
    kept = [after for _, _, after in app._core._pending_folded.values()]
    assert max(len(s.targets) for s in kept if isinstance(s, TaskState)) <= MEMO_LARGEST
    _assert_views_equal_a_rebuild(app)


def test_r23_a_decision_keeps_each_aggregates_first_and_last_state_and_only_small_steps() -> None:
    """A command on n computers takes n seats, one new seat set each: keeping
    every step cost memory quadratic in n (4,000 computers took 1 GB). The
    decision keeps, per aggregate, the state it started from and the one it
    left, and each step only while the state is small."""
    from esmc_licensing.domain import license
    from esmc_licensing.domain.events import Emitter, SeatTaken
    from esmc_licensing.domain.ids import ComputerId, PublicId, TaskId, license_aggregate_id
    from esmc_licensing.service import MEMO_LARGEST, FoldedEvents

    pid = PublicId("BIG-000-003")
    start = attrs.evolve(license.initial(pid), version=1, exists=True, units=10**6)
    events, state = FoldedEvents(), start
    emit = Emitter(license_aggregate_id(pid), 1, START, "system")
    for _ in range(MEMO_LARGEST + 10):
        e = emit(SeatTaken, public_id=pid, computer_id=ComputerId(uuid.uuid4()),
                 product="P", task_id=TaskId.random())
        after = license.evolve(state, e)
        events.add(e, state, after)
        state = after
    assert list(events) == emit.events
    assert events.spans == {license_aggregate_id(pid).int: (start, state)}
    assert len(events.folded) == MEMO_LARGEST
    assert all(len(after.seats) <= MEMO_LARGEST for _, _, after in events.folded.values())
