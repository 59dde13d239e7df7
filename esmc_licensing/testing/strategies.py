"""Hypothesis strategies for esmc-licensing, for this suite and for products' own tests.

Values:

- :func:`public_ids` - R1 Public IDs (``3AB-C12-D34``) as :class:`PublicId`;
- :func:`license_key_texts` / :func:`license_keys` - R2 keys as text / :class:`LicenseKey`;
- :func:`license_details` - what the vendor says about a license (:class:`LicenseDetails`);
- :func:`license_filters` - :class:`LicenseFilter` values (R8a);
- :func:`domain_events` - any registered domain event, or the events of one class.
  The field strategies are derived from the event classes' annotations, so a
  new event class is covered without editing this module as long as its field
  types are known here (else :func:`events_of` raises ``TypeError`` naming the
  field, which the suite's coverage test turns into a failure).

Command sequences (:func:`commands`) describe a random session of directory,
intake, pool and tag commands by *reference*: an actor, group, pool or
license is an index taken modulo what exists when the command runs, so every
generated sequence is executable and shrinks well. :class:`World` runs them
against an application and a vendor and remembers what was created.

Requires ``hypothesis`` (a test dependency, not a runtime one).
"""

from __future__ import annotations

import enum
import types
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import attrs

try:
    from hypothesis import strategies as st
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "esmc_licensing.testing.strategies needs Hypothesis, which the library itself "
        "does not: pip install 'esmc-licensing[testing]'"
    ) from missing

from ..domain.errors import LicensingError
from ..domain.events import CLASSES, DomainEvent
from ..domain.filters import LicenseFilter
from ..domain.ids import GroupId, LicenseKey, PoolId, PublicId, UserId
from ..domain.values import (
    MANAGEABLE_PRODUCTS,
    LicenseDetails,
    LicenseType,
    Permission,
    StatusLevel,
    StatusReason,
)

if TYPE_CHECKING:
    from ..adapters.memory import InMemoryActivationServer
    from ..application import LicenseManagement

__all__ = [
    "AddKey",
    "AdvanceClock",
    "AssignTag",
    "Command",
    "CreateGroup",
    "CreateTag",
    "CreateUser",
    "DeleteTag",
    "Grant",
    "MovePool",
    "RemovePool",
    "UnassignTag",
    "World",
    "aware_datetimes",
    "commands",
    "covered_event_classes",
    "credentials",
    "domain_events",
    "event_classes",
    "events_of",
    "license_details",
    "license_filters",
    "license_key_texts",
    "license_keys",
    "public_ids",
    "texts",
]

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# -- values ------------------------------------------------------------------------


def _groups(count: int, size: int) -> st.SearchStrategy[str]:
    group = st.text(alphabet=ALNUM, min_size=size, max_size=size)
    return st.lists(group, min_size=count, max_size=count).map("-".join)


def public_ids() -> st.SearchStrategy[PublicId]:
    """R1: three groups of three letters or digits, canonical (upper case)."""
    return _groups(3, 3).map(PublicId)


def license_key_texts() -> st.SearchStrategy[str]:
    """R2: 20 letters or digits in five groups of four, as a user would type it."""
    return _groups(5, 4)


def license_keys() -> st.SearchStrategy[LicenseKey]:
    return license_key_texts().map(LicenseKey)


def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Any text that is valid UTF-8 (no lone surrogates), control characters included."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """UTC-aware datetimes, as every recorded time is (R29)."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )


def _dates() -> st.SearchStrategy[date]:
    return st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@st.composite
def license_details(
    draw: st.DrawFn,
    *,
    products: Iterable[str] | None = None,
    public_id: st.SearchStrategy[PublicId] | None = None,
) -> LicenseDetails:
    """Vendor details of one license; products default to the manageable ones (R15)."""
    product = draw(st.sampled_from(sorted(products or MANAGEABLE_PRODUCTS)))
    units = draw(st.integers(min_value=1, max_value=10_000))
    subscription = draw(st.booleans())
    expires = draw(st.none() | _dates()) if subscription else draw(_dates())
    registered = draw(st.booleans())
    return LicenseDetails(
        public_id=draw(public_id or public_ids()),
        product=product,
        units=units,
        license_type=draw(st.sampled_from(LicenseType)),
        product_code=draw(st.text(alphabet=ALNUM, max_size=8)),
        offline_units=draw(st.integers(min_value=0, max_value=units)),
        subunits=draw(st.integers(min_value=0, max_value=10_000)),
        expires=expires,
        subscription=subscription,
        owner=draw(texts()),
        contact=draw(texts()),
        license_user=draw(texts()),
        registered=registered,
        registration_url=None if registered else f"https://register.example/{product[:3]}",
        suspended=draw(st.booleans()),
        obsolete=draw(st.booleans()),
        used_units=draw(st.integers(min_value=0, max_value=2 * units)),
    )


def license_filters() -> st.SearchStrategy[LicenseFilter]:
    """Any :class:`LicenseFilter` (R8a)."""
    return st.builds(
        LicenseFilter,
        levels=st.lists(st.sampled_from(StatusLevel), max_size=3),
        reasons=st.lists(st.sampled_from(StatusReason), max_size=3),
        tags=st.lists(texts(12), max_size=3),
        types=st.lists(st.sampled_from(LicenseType), max_size=3),
        products=st.lists(st.sampled_from(sorted(MANAGEABLE_PRODUCTS)), max_size=3),
        text=st.none() | texts(12),
    )


def credentials() -> st.SearchStrategy[Any]:
    """Account credentials (R17): a trimmed username without control characters, a password."""
    from ..domain.credentials import Credentials

    username = (
        st.text(st.characters(codec="utf-8", min_codepoint=32), min_size=1, max_size=24)
        .map(str.strip)
        .filter(bool)
    )
    return st.builds(Credentials, username, texts().filter(bool))


# -- domain events -------------------------------------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

_BASE: dict[Any, Callable[[], st.SearchStrategy[Any]]] = {
    bool: st.booleans,
    int: lambda: _INT64,
    str: texts,
    datetime: aware_datetimes,
    date: _dates,
    PublicId: public_ids,
    LicenseKey: license_keys,
    LicenseFilter: license_filters,
    uuid.UUID: st.uuids,
}
try:  # account credentials arrived with R17's events
    from ..domain.credentials import Credentials as _Credentials

    _BASE[_Credentials] = credentials
except ImportError:  # pragma: no cover
    pass

#: fields whose values the event store constrains beyond their type
_FIELD_OVERRIDES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "originator_version": lambda: st.integers(min_value=1, max_value=2**31 - 1),
}


def _for_type(tp: Any, where: str) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(_for_type(a, where) for a in get_args(tp)))
    if tp is type(None):
        return st.none()
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_for_type(args[0], where), max_size=4).map(tuple)
        return st.tuples(*(_for_type(a, where) for a in args))
    if tp in _BASE:
        return _BASE[tp]()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, uuid.UUID):
        return st.uuids().map(tp)
    if isinstance(tp, type) and attrs.has(tp):  # a value object: build it from its fields
        attrs.resolve_types(tp)
        return st.builds(
            tp, **{a.name: _for_type(a.type, f"{where}.{a.name}") for a in attrs.fields(tp)}
        )
    raise TypeError(
        f"no Hypothesis strategy for {where} of type {tp!r}: teach "
        "esmc_licensing.testing.strategies (_BASE) about it"
    )


_EVENT_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {}


def events_of(cls: type[DomainEvent]) -> st.SearchStrategy[DomainEvent]:
    """Events of one registered class, every field drawn from its annotated type."""
    found = _EVENT_STRATEGIES.get(cls)
    if found is None:
        attrs.resolve_types(cls)
        fields = {}
        for a in attrs.fields(cls):
            make = _FIELD_OVERRIDES.get(a.name)
            fields[a.name] = make() if make else _for_type(a.type, f"{cls.__name__}.{a.name}")
        found = st.builds(cls, **fields)
        _EVENT_STRATEGIES[cls] = found
    return found


def event_classes() -> list[type[DomainEvent]]:
    """Every registered event class, in topic order."""
    return sorted(CLASSES, key=lambda c: CLASSES[c].topic)


def covered_event_classes() -> list[type[DomainEvent]]:
    """The registered classes :func:`domain_events` can build (raises for any it cannot)."""
    for cls in event_classes():
        events_of(cls)
    return event_classes()


def domain_events(cls: type[DomainEvent] | None = None) -> st.SearchStrategy[DomainEvent]:
    """Any registered domain event (or one class's), e.g. for mapper round trips."""
    if cls is not None:
        return events_of(cls)
    return st.sampled_from(event_classes()).flatmap(events_of)


# -- command sequences ------------------------------------------------------------------

#: vocabularies with case-insensitive clashes on purpose (names are unique that way)
GROUP_NAMES = ("San Diego", "Sydney", "Tokyo", "tokyo", "Lab")
USER_NAMES = ("John", "Larry", "Makio", "john", "Eve", "administrator")
OWNERS = ("Acme", "acme", "Globex", "Initech", "")
TAG_NAMES = ("urgent", "URGENT", "branch", "renew")
#: mostly manageable; a home product now and then (refused, R15)
PRODUCTS = (
    "ESET Endpoint Security",
    "ESET Server Security",
    "ESET Endpoint Antivirus",
    "ESET Mail Security",
    "ESET NOD32 Antivirus",
)


@attrs.frozen
class CreateGroup:
    actor: int
    name: str
    parent: int


@attrs.frozen
class CreateUser:
    actor: int
    name: str
    home: int


@attrs.frozen
class Grant:
    actor: int
    user: int
    group: int
    permission: Permission


@attrs.frozen
class AddKey:
    actor: int
    public_id: PublicId
    owner: str
    units: int
    expires_in_days: int | None
    product: str


@attrs.frozen
class MovePool:
    actor: int
    pool: int
    group: int


@attrs.frozen
class RemovePool:
    actor: int
    pool: int


@attrs.frozen
class CreateTag:
    actor: int
    name: str


@attrs.frozen
class DeleteTag:
    actor: int
    name: str


@attrs.frozen
class AssignTag:
    actor: int
    name: str
    target: int
    on_pool: bool


@attrs.frozen
class UnassignTag:
    actor: int
    name: str
    target: int
    on_pool: bool


@attrs.frozen
class AdvanceClock:
    days: int


Command = (
    CreateGroup
    | CreateUser
    | Grant
    | AddKey
    | MovePool
    | RemovePool
    | CreateTag
    | DeleteTag
    | AssignTag
    | UnassignTag
    | AdvanceClock
)

_REF = st.integers(min_value=0, max_value=7)


def _command_strategies(
    public_id_pool: st.SearchStrategy[PublicId],
) -> list[st.SearchStrategy[Any]]:
    return [
        st.builds(CreateGroup, actor=_REF, name=st.sampled_from(GROUP_NAMES), parent=_REF),
        st.builds(CreateUser, actor=_REF, name=st.sampled_from(USER_NAMES), home=_REF),
        st.builds(Grant, actor=_REF, user=_REF, group=_REF, permission=st.sampled_from(Permission)),
        st.builds(
            AddKey,
            actor=_REF,
            public_id=public_id_pool,
            owner=st.sampled_from(OWNERS),
            units=st.integers(min_value=1, max_value=50),
            expires_in_days=st.none() | st.integers(min_value=-40, max_value=400),
            product=st.sampled_from(PRODUCTS),
        ),
        st.builds(MovePool, actor=_REF, pool=_REF, group=_REF),
        st.builds(RemovePool, actor=_REF, pool=_REF),
        st.builds(CreateTag, actor=_REF, name=st.sampled_from(TAG_NAMES)),
        st.builds(DeleteTag, actor=_REF, name=st.sampled_from(TAG_NAMES)),
        st.builds(
            AssignTag,
            actor=_REF,
            name=st.sampled_from(TAG_NAMES),
            target=_REF,
            on_pool=st.booleans(),
        ),
        st.builds(
            UnassignTag,
            actor=_REF,
            name=st.sampled_from(TAG_NAMES),
            target=_REF,
            on_pool=st.booleans(),
        ),
        st.builds(AdvanceClock, days=st.integers(min_value=1, max_value=40)),
    ]


@st.composite
def commands(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 25) -> list[Command]:
    """A random session: groups, users, grants, keys, moves, removals and tags.

    With room for it (``max_size >= 8``) it starts with a set-up by the
    Administrator (groups, users, grants, keys, moves) so that the rest of
    the session, run by random actors, has a directory and pools to work on.
    Public IDs come from a small set so that sequences re-add, move and remove
    the same licenses; names clash case-insensitively on purpose.
    """
    pids = st.sampled_from(
        [PublicId(p) for p in ("3AB-C12-D34", "AAA-BBB-CCC", "X1Y-2Z3-000", "QQQ-111-ZZZ")]
    )
    every = _command_strategies(pids)
    create_group, create_user, grant, add_key, move = every[:5]

    def by_admin(strategy: st.SearchStrategy[Any], most: int) -> st.SearchStrategy[list[Any]]:
        return st.lists(strategy.map(lambda c: attrs.evolve(c, actor=0)), min_size=1, max_size=most)

    setup: list[Any] = []
    if max_size >= 8:
        for strategy, most in ((create_group, 3), (create_user, 3), (grant, 4), (add_key, 3)):
            setup += draw(by_admin(strategy, most))
        setup += draw(by_admin(move, 3))
        setup = setup[: max_size // 2]
    # keys, moves and tags by the Administrator get more weight: the rest are
    # mostly refusals
    admin = lambda c: attrs.evolve(c, actor=0)  # noqa: E731
    create_tag, assign_tag = every[6], every[8]
    mix = st.one_of(*every, add_key, move.map(admin), create_tag.map(admin), assign_tag.map(admin))
    rest = draw(
        st.lists(mix, min_size=max(0, min_size - len(setup)), max_size=max_size - len(setup))
    )
    return setup + rest


def _pick(items: list[Any], ref: int) -> Any:
    """Newest first: reference 0 (what Hypothesis shrinks towards) is the latest item."""
    return items[-1 - ref % len(items)]


@attrs.define
class World:
    """Runs :func:`commands` against an application and remembers what exists.

    ``users[0]`` is the Administrator and ``groups[0]`` is All; pools and
    licenses are listed in the order they were first added and stay listed
    after removal, so later commands also act on removed objects. Actor
    references count from the oldest user (0: the Administrator); every other
    reference counts from the newest item (0: the latest group, user, pool).
    """

    app: LicenseManagement
    vendor: InMemoryActivationServer
    users: list[UserId] = attrs.field(factory=list)
    groups: list[GroupId] = attrs.field(factory=list)
    pools: list[PoolId] = attrs.field(factory=list)
    licenses: list[PublicId] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if not self.users:
            self.users.append(self.app.administrator)
        if not self.groups:
            self.groups.append(self.app.all_group)

    def actor(self, command: Any) -> UserId:
        """Actors count from the oldest: actor 0 is the Administrator."""
        actor: UserId = self.users[command.actor % len(self.users)]
        return actor

    def user(self, ref: int) -> UserId:
        return _pick(self.users, ref)  # type: ignore[no-any-return]

    def group(self, ref: int) -> GroupId:
        return _pick(self.groups, ref)  # type: ignore[no-any-return]

    def pool(self, ref: int) -> PoolId:
        return _pick(self.pools, ref)  # type: ignore[no-any-return]

    def target(self, command: AssignTag | UnassignTag) -> PoolId | PublicId | None:
        items: list[Any] = self.pools if command.on_pool else self.licenses
        return _pick(items, command.target) if items else None

    def run(self, command: Command) -> object:
        """Run one command; returns its result, or raises the library's refusal."""
        app = self.app
        if isinstance(command, AdvanceClock):
            self.vendor.clock.advance(timedelta(days=command.days))  # type: ignore[attr-defined]
            return None
        actor = self.actor(command)
        if isinstance(command, CreateGroup):
            gid = app.create_group(actor, command.name, self.group(command.parent))
            self.groups.append(gid)
            return gid
        if isinstance(command, CreateUser):
            uid = app.create_user(actor, command.name, self.group(command.home))
            self.users.append(uid)
            return uid
        if isinstance(command, Grant):
            user, group = self.user(command.user), self.group(command.group)
            app.grant(actor, user, group, command.permission)
            return None
        if isinstance(command, AddKey):
            key = self._issue(command)
            pid = app.add_license_key(actor, key)
            if pid not in self.licenses:
                self.licenses.append(pid)
            pool_id = app.license(app.administrator, pid).pool_id
            if pool_id not in self.pools:
                self.pools.append(pool_id)
            return pid
        if isinstance(command, MovePool | RemovePool):
            if not self.pools:
                return None
            pool_id = self.pool(command.pool)
            if isinstance(command, MovePool):
                app.move_pools(actor, [pool_id], self.group(command.group))
            else:
                app.remove_pools(actor, [pool_id], confirm=True)
            return None
        if isinstance(command, CreateTag):
            app.create_tag(actor, command.name)
            return None
        if isinstance(command, DeleteTag):
            app.delete_tag(actor, command.name)
            return None
        target = self.target(command)
        if target is None:
            return None
        if isinstance(command, AssignTag):
            app.assign_tag(actor, target, command.name)
        else:
            app.unassign_tag(actor, target, command.name)
        return None

    def _issue(self, command: AddKey) -> str:
        if command.public_id in self.vendor.public_ids:
            return self.vendor.key_of(command.public_id)
        today = self.vendor.clock.now().date()
        expires = (
            None
            if command.expires_in_days is None
            else today + timedelta(days=command.expires_in_days)
        )
        return self.vendor.issue(
            public_id=command.public_id,
            product=command.product,
            units=command.units,
            expires=expires,
            subscription=expires is None,
            owner=command.owner,
        )

    def run_all(self, sequence: Iterable[Command]) -> list[object]:
        """Run a sequence, collecting each result or refusal (a ``LicensingError``)."""
        out: list[object] = []
        for command in sequence:
            try:
                out.append(self.run(command))
            except LicensingError as e:
                out.append(e)
        return out
