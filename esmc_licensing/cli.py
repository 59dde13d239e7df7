"""The ``esmc-licensing`` command line (Typer + Rich).

Every command opens the store named by ``--store``, acts as ``--as USER`` and
closes the store again. Queries print Rich tables, or JSON with ``--json``
(keys are the views' field names; see ``README.md``). Exit codes:

- 0: done;
- 1: refused by a rule (``PermissionDenied``, ``NotFound``, ``AlreadyExists``,
  ``ConfirmationRequired``, ``LicenseKeyRejected``, … any ``LicensingError``);
- 2: bad input (``InvalidInput`` and its subclasses, usage errors, bad settings);
- 3: an adapter is unavailable (``AdapterUnavailable``, an unreachable
  PostgreSQL, a store path that cannot be written).

Errors are one line on stderr; ``--debug`` adds the traceback and the
library's log. A license key is a secret (R2): it is read from the argument or
from stdin and never printed, only its last four characters.

Until a real vendor adapter exists, the activation server is an in-memory one
pre-seeded with the demo licenses (:data:`DEMO_LICENSES`); replace
:func:`activation_server` to talk to a real one.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import os
import re
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import typer
from eventsourcing.domain import EventSourcingError
from eventsourcing.persistence import InfrastructureFactoryError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .adapters.clock import SystemClock
from .adapters.memory import InMemoryActivationServer
from .adapters.ports import ActivationServer, Clock
from .application import LicenseManagement
from .domain.errors import (
    AdapterUnavailable,
    ConfirmationRequired,
    InvalidInput,
    LicensingError,
    NotFound,
)
from .domain.filters import LicenseFilter
from .domain.ids import GroupId, PoolId, PublicId, UserId
from .domain.values import LicenseType, Permission, StatusLevel
from .projections.views import HistoryEntry, LicenseView, PoolView
from .wiring import Adapters

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

DEFAULT_STORE = "esmc-licensing.db"
DEFAULT_POSTGRES_CONNECT_TIMEOUT = "5"

F = TypeVar("F", bound=Callable[..., Any])


# -- the vendor the CLI talks to ------------------------------------------------


@attrs.frozen
class DemoLicense:
    """A license the demo vendor issues (dates relative to the day it starts)."""

    public_id: str
    product: str
    units: int
    owner: str
    contact: str
    expires_in_days: int | None
    license_type: LicenseType = LicenseType.BUSINESS
    subscription: bool = False
    registered: bool = True
    used_units: int = 0
    #: the branch the demo moves the license's pool to (None: stays in All)
    branch: str | None = None
    #: False: the demo does not add it, so a newcomer can try ``add-key`` with it
    in_demo: bool = True


DEMO_VENDOR_SEED = "esmc-licensing-demo"

#: What the demo vendor holds. The keys are derived from the seed and the
#: Public ID, so they are the same on every machine (README.md lists them).
DEMO_LICENSES: tuple[DemoLicense, ...] = (
    DemoLicense("DMO-SDG-001", "ESET Endpoint Security", 50, "Acme Corp",
                "it@acme.example", 365, used_units=12, branch="San Diego"),
    DemoLicense("DMO-SDG-002", "ESET Server Security", 5, "Acme Corp",
                "it@acme.example", 20, used_units=3, branch="San Diego"),
    DemoLicense("DMO-SYD-001", "ESET Endpoint Antivirus", 25, "Globex Pty Ltd",
                "admin@globex.example", 200, used_units=24, branch="Sydney"),
    DemoLicense("DMO-SYD-002", "ESET Mail Security", 10, "Globex Pty Ltd",
                "admin@globex.example", -15, used_units=4, branch="Sydney"),
    DemoLicense("DMO-TYO-001", "ESET PROTECT Advanced", 100, "Kaiju Systems KK",
                "sec@kaiju.example", 300, registered=False, branch="Tokyo"),
    DemoLicense("DMO-HQ0-001", "ESET PROTECT Complete", 200, "Initech",
                "licensing@initech.example", None, subscription=True, used_units=150),
    DemoLicense("DMO-TRY-001", "ESET Endpoint Security", 5, "Hooli Inc",
                "ops@hooli.example", 30, license_type=LicenseType.TRIAL, in_demo=False),
)

#: The branch administrators of the demo: (user, home group, permission there).
DEMO_BRANCHES: tuple[tuple[str, str, Permission], ...] = (
    ("John", "San Diego", Permission.WRITE),
    ("Larry", "Sydney", Permission.USE),
    ("Makio", "Tokyo", Permission.READ),
)


def demo_vendor(clock: Clock) -> InMemoryActivationServer:
    """An in-memory activation server holding :data:`DEMO_LICENSES`.

    Expiration dates count from the clock's today; usage is reported at the
    vendor before anything is added, so the at-risk license shows at once.
    """
    vendor = InMemoryActivationServer(clock=clock, seed=DEMO_VENDOR_SEED)
    today = clock.now().astimezone(UTC).date()
    for d in DEMO_LICENSES:
        vendor.issue(
            public_id=d.public_id,
            product=d.product,
            units=d.units,
            license_type=d.license_type,
            expires=None if d.expires_in_days is None else today + timedelta(d.expires_in_days),
            subscription=d.subscription,
            owner=d.owner,
            contact=d.contact,
            registered=d.registered,
        )
        if d.used_units:
            vendor.report_usage(d.public_id, d.used_units)
    return vendor


def activation_server(clock: Clock) -> ActivationServer:
    """The activation server the CLI uses: for now the demo vendor.

    The one place to change when a real vendor adapter exists.
    """
    return demo_vendor(clock)


# -- the store -------------------------------------------------------------------

_SETTING = re.compile(r"[A-Z][A-Z0-9_]*=")
_SECRET_SETTINGS = ("PASSWORD", "CIPHER_KEY")


@attrs.frozen
class Store:
    env: Mapping[str, str]
    description: str
    sqlite_path: Path | None = None


def parse_store(store: str | None) -> Store:
    """``--store``: a SQLite file, a ``postgresql://`` URL or eventsourcing settings.

    Secrets (the PostgreSQL password, a cipher key) are never taken from the
    command line: set them in the environment (``POSTGRES_PASSWORD``,
    ``CIPHER_KEY``), where eventsourcing reads them.
    """
    if store is None or not store.strip():
        store = DEFAULT_STORE
    store = store.strip()
    if store.startswith(("postgresql://", "postgres://")):
        return _postgres_store(store)
    if _SETTING.match(store):
        env: dict[str, str] = {}
        for item in store.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
                raise InvalidInput(
                    f"--store settings are KEY=VALUE pairs separated by commas; {key!r} is not one"
                )
            if any(s in key for s in _SECRET_SETTINGS):
                raise InvalidInput(
                    f"{key} is a secret and is not taken from the command line; "
                    "set it in the environment instead"
                )
            env[key] = value.strip()
        module = env.get("PERSISTENCE_MODULE", "eventsourcing.popo")
        dbname = env.get("SQLITE_DBNAME")
        sqlite_path = (
            Path(dbname).expanduser()
            if module.endswith("sqlite") and dbname and ":memory:" not in dbname
            else None
        )
        return Store(env, f"{module} ({', '.join(sorted(env))})", sqlite_path)
    if store == ":memory:":
        return Store({"PERSISTENCE_MODULE": "eventsourcing.popo"}, "memory (nothing is kept)")
    path = Path(store).expanduser()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return Store(env, f"SQLite file {path}", path)


def _postgres_store(url: str) -> Store:
    parts = urlsplit(url)
    if parts.password:
        raise InvalidInput(
            "a password is not taken from the command line: remove it from the --store URL "
            "and set POSTGRES_PASSWORD in the environment"
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.hostname:
        raise InvalidInput(
            "a PostgreSQL store is postgresql://USER@HOST:PORT/DATABASE[?schema=NAME]"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise InvalidInput("the port of the --store URL must be a number") from None
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or os.environ.get("USER", "postgres")),
        "POSTGRES_CONNECT_TIMEOUT": DEFAULT_POSTGRES_CONNECT_TIMEOUT,
    }
    if "POSTGRES_PASSWORD" not in os.environ:
        env["POSTGRES_PASSWORD"] = ""
    for key, value in parse_qsl(parts.query):
        name = f"POSTGRES_{key.upper()}"
        if any(s in name for s in _SECRET_SETTINGS):
            raise InvalidInput(f"{name} is a secret; set it in the environment instead")
        env[name] = value
    where = f"{env['POSTGRES_USER']}@{parts.hostname}:{port}/{dbname}"
    return Store(env, f"PostgreSQL {where}")


def _check_writable(path: Path) -> None:
    """Refuse a SQLite path that cannot be written, before SQLite tries."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise AdapterUnavailable(f"cannot open the store: {path} is a directory")
    if not parent.is_dir():
        raise AdapterUnavailable(
            f"cannot open the store at {path}: the directory {parent} does not exist"
        )
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise AdapterUnavailable(f"cannot open the store at {path}: {target} is not writable")


# -- a session: one command's application -----------------------------------------


@attrs.define
class Session:
    store: str | None
    user_name: str
    debug: bool
    _app: LicenseManagement | None = None
    _actor: UserId | None = None

    def open(self) -> LicenseManagement:
        if self._app is None:
            store = parse_store(self.store)
            if store.sqlite_path is not None:
                _check_writable(store.sqlite_path)
            clock = SystemClock()
            adapters = Adapters(activation_server=activation_server(clock), clock=clock)
            try:
                self._app = LicenseManagement(env=store.env, adapters=adapters)
            except LicensingError:
                raise
            except InfrastructureFactoryError as e:
                raise InvalidInput(f"bad --store settings: {_one_line(e)}") from e
            except (EventSourcingError, OSError) as e:
                raise AdapterUnavailable(
                    f"cannot open the store ({store.description}): {_one_line(e)}"
                ) from e
        return self._app

    @property
    def app(self) -> LicenseManagement:
        return self.open()

    @property
    def actor(self) -> UserId:
        if self._actor is None:
            self._actor = _user(self.app, self.user_name)
        return self._actor

    def close(self) -> None:
        if self._app is not None:
            try:
                self._app.close()
            finally:
                self._app = None
                self._actor = None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def exit_code_for(e: BaseException) -> int:
    if isinstance(e, InvalidInput | InfrastructureFactoryError):
        return EXIT_BAD_INPUT
    if isinstance(e, AdapterUnavailable | EventSourcingError | OSError):
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED


@contextmanager
def _library_logging(debug: bool) -> Iterator[None]:
    """The library's log goes to stderr with --debug, else nowhere (restored after)."""
    logger = logging.getLogger("esmc_licensing")
    saved = (logger.level, logger.propagate)
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if debug else logging.NullHandler()
    )
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _session(ctx: typer.Context) -> Session:
    obj = ctx.find_object(Session)
    if obj is None:  # called without the root callback (not through the app)
        obj = Session(None, "Administrator", False)
        ctx.obj = obj
    return obj


def handled(fn: F) -> F:
    """Run a command: map library errors to one stderr line and an exit code."""

    @functools.wraps(fn)
    def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        session = _session(ctx)
        with _library_logging(session.debug):
            try:
                return fn(ctx, *args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except Exception as e:
                if session.debug:
                    traceback.print_exc(file=sys.stderr)
                code = exit_code_for(e)
                if isinstance(e, LicensingError | EventSourcingError | OSError):
                    message = _one_line(e)
                else:
                    message = (
                        f"unexpected {type(e).__name__}: {_one_line(e)} "
                        "(run with --debug for the traceback)"
                    )
                typer.echo(f"error: {message}", err=True)
                raise typer.Exit(code) from None
            finally:
                session.close()

    return wrapper  # type: ignore[return-value]


# -- naming things on the command line ---------------------------------------------


def _user(app: LicenseManagement, name: str) -> UserId:
    try:
        return UserId(uuid.UUID(name))
    except ValueError:
        return app.user_named(name)


def _group(app: LicenseManagement, name: str) -> GroupId:
    try:
        return GroupId(uuid.UUID(name))
    except ValueError:
        return app.group_named(name)


def _pool(app: LicenseManagement, actor: UserId, text: str) -> PoolId:
    """A pool by id, by a unique id prefix or by name, among the pools the actor sees."""
    text = text.strip()
    try:
        return PoolId(uuid.UUID(text))
    except ValueError:
        pass
    pools = app.pools(actor)
    named = [p for p in pools if p.name.casefold() == text.casefold()]
    if len(named) == 1:
        return named[0].pool_id
    if len(named) > 1:
        ids = ", ".join(str(p.pool_id) for p in named)
        raise InvalidInput(f"{len(named)} license pools are named {text!r}; use an id: {ids}")
    if len(text) >= 4:
        prefixed = [p for p in pools if str(p.pool_id).startswith(text.lower())]
        if len(prefixed) == 1:
            return prefixed[0].pool_id
    raise NotFound("license pool", text)


_PUBLIC_ID_SHAPE = re.compile(r"\s*[0-9A-Za-z]{3}-[0-9A-Za-z]{3}-[0-9A-Za-z]{3}\s*")


def _target(app: LicenseManagement, actor: UserId, text: str) -> PublicId | PoolId:
    """A Public ID, or else a pool (id, id prefix or name)."""
    if _PUBLIC_ID_SHAPE.fullmatch(text):
        return PublicId(text)
    return _pool(app, actor, text)


def _enum_names(values: Sequence[str] | None) -> list[str]:
    return [v.strip().upper().replace("-", "_").replace(" ", "_") for v in values or ()]


def _filter(
    level: list[str] | None,
    reason: list[str] | None,
    tag: list[str] | None,
    type_: list[str] | None,
    product: list[str] | None,
    text: str | None,
) -> LicenseFilter:
    return LicenseFilter(
        levels=_enum_names(level),
        reasons=_enum_names(reason),
        tags=tuple(tag or ()),
        types=_enum_names(type_),
        products=tuple(product or ()),
        text=text,
    )


def _when(value: str | None, option: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time; a date alone is its whole day, in UTC."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(0), tzinfo=UTC)
            return moment + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{option} takes a date or date-time like 2026-01-31 or 2026-01-31T12:00:00Z, "
            f"not {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- output ----------------------------------------------------------------------------


def _console() -> Console:
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(width=width, highlight=False)


def _say(message: str) -> None:
    _console().print(message, markup=False, highlight=False, soft_wrap=True)


def to_jsonable(value: Any, group_name: Callable[[GroupId], str] | None = None) -> Any:
    """A view as JSON data: field names as keys, ids as strings, dates in ISO.

    A field ``group`` holding a group id becomes the group's name, with the id
    beside it as ``group_id``.
    """
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.name == "group" and isinstance(item, GroupId) and group_name is not None:
                out["group"] = group_name(item)
                out["group_id"] = str(item)
            else:
                out[field.name] = to_jsonable(item, group_name)
        return out
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, group_name) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_jsonable(v, group_name) for v in value)
    if isinstance(value, list | tuple):
        return [to_jsonable(v, group_name) for v in value]
    return str(value)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


_LEVEL_STYLE = {
    StatusLevel.OK: "bold green",
    StatusLevel.WARNING: "bold yellow",
    StatusLevel.ERROR: "bold red",
    StatusLevel.EXPIRED: "bold magenta",
    StatusLevel.SUSPENDED: "bold white on red",
}


def status_text(view: LicenseView) -> Text:
    status = view.status
    text = Text(status.level.name, style=_LEVEL_STYLE[status.level])
    shown = sorted(r.name for r in status.reasons if r.name != status.level.name)
    if shown:
        text.append(" (" + ", ".join(r.lower().replace("_", " ") for r in shown) + ")")
    return text


def _expires(view: LicenseView) -> str:
    if view.expires is None:
        return "open-ended subscription" if view.subscription else "-"
    return view.expires.isoformat() + (" (subscription)" if view.subscription else "")


def licenses_table(views: Sequence[LicenseView], group_name: Callable[[GroupId], str],
                   title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("Public ID", "Product", "Type", "Used/Units", "Expires", "Owner",
                   "Group", "Tags", "Status"):
        table.add_column(column, no_wrap=column in ("Public ID", "Used/Units"))
    for v in views:
        table.add_row(
            str(v.public_id),
            v.product,
            v.license_type.name,
            f"{v.used_units}/{v.units}",
            _expires(v),
            v.owner,
            group_name(v.group),
            ", ".join(sorted(v.tags)),
            status_text(v),
        )
    return table


def _group_namer(app: LicenseManagement) -> Callable[[GroupId], str]:
    cache: dict[GroupId, str] = {}

    def name(group: GroupId) -> str:
        if group not in cache:
            cache[group] = app.group_name(group)
        return cache[group]

    return name


# -- the application ------------------------------------------------------------------

app = typer.Typer(
    name="esmc-licensing",
    help="Manage software licenses: pools, branch administrators, status and history.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tag_app = typer.Typer(help="Create, delete, assign and unassign tags (R28).",
                      no_args_is_help=True)
app.add_typer(tag_app, name="tag")


@app.callback()
def _root(
    ctx: typer.Context,
    store: Annotated[str | None, typer.Option(
        "--store", envvar="ESMC_LICENSING_STORE", metavar="STORE",
        help="A SQLite file (default ./esmc-licensing.db), a postgresql://USER@HOST:PORT/DB "
             "URL (password from POSTGRES_PASSWORD), ':memory:', or eventsourcing settings "
             "KEY=VALUE,...",
    )] = None,
    as_user: Annotated[str, typer.Option(
        "--as", envvar="ESMC_LICENSING_USER", metavar="USER",
        help="Act as this user (by name).",
    )] = "Administrator",
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks and the library's log on stderr.",
    )] = False,
) -> None:
    ctx.obj = Session(store, as_user, debug)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", metavar="WHEN", help="As it was at this date or date-time (R30).")]
LevelOption = Annotated[list[str] | None, typer.Option(
    "--level", help="OK, WARNING, ERROR, EXPIRED or SUSPENDED (repeatable).")]
ReasonOption = Annotated[list[str] | None, typer.Option(
    "--reason", help="EXPIRING, AT_RISK_OF_OVERUSE, NOT_REGISTERED, OBSOLETE, OVERUSED, "
                     "EXPIRED or SUSPENDED (repeatable).")]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")]
TypeOption = Annotated[list[str] | None, typer.Option(
    "--type", help="BUSINESS, TRIAL, MSP or NFR (repeatable).")]
ProductOption = Annotated[list[str] | None, typer.Option(
    "--product", help="A product name (repeatable).")]
TextOption = Annotated[str | None, typer.Option(
    "--text", help="Text in the Public ID, product or owner.")]


@app.command()
@handled
def demo(ctx: typer.Context) -> None:
    """Play the branch-administrator story on the store and show what each user sees."""
    session = _session(ctx)
    lm = session.app
    admin = lm.administrator
    vendor = lm.adapters.activation_server
    _say(f"Branch-administrator demo on {parse_store(session.store).description}")
    for user, branch, permission in DEMO_BRANCHES:
        try:
            gid = lm.group_named(branch)
        except NotFound:
            gid = lm.create_group(admin, branch)
            _say(f"  created static group {branch}")
        try:
            uid = lm.user_named(user)
        except NotFound:
            uid = lm.create_user(admin, user, gid)
            _say(f"  created user {user} (home group {branch})")
        lm.grant(admin, uid, gid, permission)
    for d in DEMO_LICENSES:
        if not d.in_demo:
            continue
        key = vendor.key_of(d.public_id)  # type: ignore[attr-defined]
        before = lm.position
        pid = lm.add_license_key(admin, key)
        if lm.position != before:
            _say(f"  added license {pid} ({d.product}, owner {d.owner}) by its key")
    for d in DEMO_LICENSES:
        if d.in_demo and d.branch is not None:
            view = lm.license(admin, d.public_id)
            target = lm.group_named(d.branch)
            if view.group != target:
                lm.move_pools(admin, [view.pool_id], target)
                _say(f"  moved pool {d.owner} to {d.branch}")
    console = _console()
    names = _group_namer(lm)
    people = [("Administrator", "All", Permission.WRITE), *DEMO_BRANCHES]
    for user, home, permission in people:
        uid = lm.user_named(user)
        views = lm.licenses(uid)
        console.print()
        console.print(licenses_table(
            views, names,
            title=f"{user} (home group {home}, {permission.name} on {home}) "
                  f"sees {len(views)} license(s)",
        ))
    spare = [d.public_id for d in DEMO_LICENSES if not d.in_demo]
    console.print()
    _say(
        f"Next: esmc-licensing --as John licenses; esmc-licensing history DMO-SDG-001; "
        f"add the spare demo license {', '.join(spare)} with its key from README.md: "
        "esmc-licensing add-key -"
    )


@app.command()
@handled
def licenses(
    ctx: typer.Context,
    level: LevelOption = None,
    reason: ReasonOption = None,
    tag: TagOption = None,
    type_: TypeOption = None,
    product: ProductOption = None,
    text: TextOption = None,
    saved: Annotated[str | None, typer.Option(
        "--filter", metavar="NAME", help="Apply a saved filter (see `filters`).")] = None,
    as_of: AsOfOption = None,
    json_: JsonOption = False,
) -> None:
    """The licenses you may see, with status (filter with the options, R8a)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    license_filter = _filter(level, reason, tag, type_, product, text)
    if saved is not None:
        presets = lm.filters(actor)
        preset = next((f for n, f in presets.items() if n.casefold() == saved.casefold()), None)
        if preset is None:
            raise NotFound("saved filter", saved)
        license_filter = _merge(preset, license_filter)
    when = _when(as_of, "--as-of", end_of_day=True)
    views = lm.licenses(actor, license_filter, as_of=when)
    names = _group_namer(lm)
    if json_:
        _print_json([to_jsonable(v, names) for v in views])
        return
    if not views:
        _say(f"No licenses visible to {session.user_name} match.")
        return
    _console().print(licenses_table(views, names))


def _merge(a: LicenseFilter, b: LicenseFilter) -> LicenseFilter:
    return LicenseFilter(
        levels=a.levels + b.levels,
        reasons=a.reasons + b.reasons,
        tags=a.tags + b.tags,
        types=a.types + b.types,
        products=a.products + b.products,
        text=b.text if b.text is not None else a.text,
    )


@app.command("license")
@handled
def license_(
    ctx: typer.Context,
    public_id: Annotated[str, typer.Argument(metavar="PUBLIC_ID")],
    as_of: AsOfOption = None,
    json_: JsonOption = False,
) -> None:
    """One license's details (never its key, only the key's last four characters)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    view = lm.license(actor, PublicId(public_id), as_of=_when(as_of, "--as-of", end_of_day=True))
    names = _group_namer(lm)
    if json_:
        _print_json(to_jsonable(view, names))
        return
    table = Table(show_header=False, title=f"License {view.public_id}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str | Text]] = [
        ("Status", status_text(view)),
        ("Product", f"{view.product} ({view.product_code})" if view.product_code
         else view.product),
        ("Type", view.license_type.name),
        ("Units", f"{view.used_units} used of {view.units}"),
        ("Offline units", str(view.offline_units)),
        ("Subunits", str(view.subunits)),
        ("Expires", _expires(view)),
        ("Owner", view.owner),
        ("Contact", view.contact),
        ("License user", view.license_user),
        ("Source", view.source.name),
        ("Pool", str(view.pool_id)),
        ("Group", names(view.group)),
        ("Tags", ", ".join(sorted(view.tags))),
        ("Key", f"XXXX-XXXX-XXXX-XXXX-{view.key_last4}" if view.key_last4 else "-"),
    ]
    if view.status.registration_url:
        rows.append(("Register at", view.status.registration_url))
    for field, value in rows:
        table.add_row(field, value)
    _console().print(table)


@app.command()
@handled
def pools(ctx: typer.Context, as_of: AsOfOption = None, json_: JsonOption = False) -> None:
    """The license pools you may see and the group each lives in."""
    session = _session(ctx)
    lm = session.app
    views: list[PoolView] = lm.pools(session.actor, as_of=_when(as_of, "--as-of",
                                                               end_of_day=True))
    names = _group_namer(lm)
    if json_:
        _print_json([to_jsonable(v, names) for v in views])
        return
    if not views:
        _say(f"No license pools visible to {session.user_name}.")
        return
    table = Table()
    for column in ("Pool", "Pool ID", "Group", "Source", "Licenses", "Tags"):
        table.add_column(column, no_wrap=column == "Pool ID")
    for v in views:
        table.add_row(v.name, str(v.pool_id), names(v.group), v.source.name,
                      ", ".join(str(p) for p in v.public_ids), ", ".join(sorted(v.tags)))
    _console().print(table)


@app.command()
@handled
def history(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="A Public ID, or a pool (id or name).")],
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="From this date or date-time (UTC).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="WHEN", help="Up to this date (inclusive) or date-time.")] = None,
    json_: JsonOption = False,
) -> None:
    """What happened to a license or pool: when, by whom, what (R29)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    start = _when(since, "--since")
    end = _when(until, "--until", end_of_day=True)
    entries: list[HistoryEntry] = lm.history(actor, _target(lm, actor, target))
    entries = [
        e for e in entries
        if (start is None or e.when >= start) and (end is None or e.when <= end)
    ]
    if json_:
        _print_json([to_jsonable(e) for e in entries])
        return
    if not entries:
        _say("Nothing happened in that period.")
        return
    names = _group_namer(lm)

    def shown(key: str, value: str) -> str:
        if key in _GROUP_DETAILS:
            with contextlib.suppress(LicensingError):
                return names(GroupId(value))
        return value

    table = Table(title=f"History of {target}", title_justify="left")
    for column in ("When (UTC)", "Who", "What", "Details"):
        table.add_column(column, no_wrap=column != "Details")
    for e in entries:
        details = ", ".join(f"{k}={shown(k, v)}" for k, v in e.details.items() if v != "")
        table.add_row(e.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), e.actor,
                      e.what, details)
    _console().print(table)


_GROUP_DETAILS = frozenset({"group", "from_group", "to_group", "parent", "home_group"})


def _describe(f: LicenseFilter) -> str:
    parts = []
    for label, values in (("level", f.levels), ("reason", f.reasons), ("type", f.types)):
        if values:
            parts.append(f"{label} " + " or ".join(v.name for v in values))
    if f.tags:
        parts.append("tag " + " or ".join(f.tags))
    if f.products:
        parts.append("product " + " or ".join(f.products))
    if f.text:
        parts.append(f"text {f.text!r}")
    return "; ".join(parts) or "everything"


@app.command()
@handled
def filters(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Your saved license filters (R8a)."""
    session = _session(ctx)
    presets = session.app.filters(session.actor)
    if json_:
        _print_json({name: to_jsonable(f) for name, f in sorted(presets.items())})
        return
    if not presets:
        _say("No saved filters; create one with save-filter.")
        return
    table = Table()
    table.add_column("Name")
    table.add_column("Shows")
    for name, f in sorted(presets.items()):
        table.add_row(name, _describe(f))
    _console().print(table)


@app.command("save-filter")
@handled
def save_filter(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    level: LevelOption = None,
    reason: ReasonOption = None,
    tag: TagOption = None,
    type_: TypeOption = None,
    product: ProductOption = None,
    text: TextOption = None,
) -> None:
    """Save the filter options as a named preset (R8a)."""
    session = _session(ctx)
    f = _filter(level, reason, tag, type_, product, text)
    session.app.save_filter(session.actor, name, f)
    _say(f"Saved filter {name.strip()}: {_describe(f)}.")


@app.command("create-group")
@handled
def create_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    parent: Annotated[str | None, typer.Option(
        "--parent", metavar="GROUP", help="The parent group (default: All).")] = None,
) -> None:
    """Create a static group (R10)."""
    session = _session(ctx)
    lm = session.app
    parent_id = None if parent is None else _group(lm, parent)
    lm.create_group(session.actor, name, parent_id)
    _say(f"Created static group {name.strip()} under {parent or 'All'}.")


@app.command("create-user")
@handled
def create_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    home: Annotated[str, typer.Option("--home", metavar="GROUP", help="The home group.")],
) -> None:
    """Create a user with a home group (R10); grant permissions with `grant`."""
    session = _session(ctx)
    lm = session.app
    lm.create_user(session.actor, name, _group(lm, home))
    _say(f"Created user {name.strip()} with home group {home}.")


class PermissionChoice(enum.StrEnum):
    READ = "READ"
    USE = "USE"
    WRITE = "WRITE"


@app.command()
@handled
def grant(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER")],
    group: Annotated[str, typer.Argument(metavar="GROUP")],
    permission: Annotated[PermissionChoice, typer.Argument(
        metavar="READ|USE|WRITE", case_sensitive=False)],
) -> None:
    """Grant a user a permission on licenses in a group and its subgroups (R11)."""
    session = _session(ctx)
    lm = session.app
    lm.grant(session.actor, _user(lm, user), _group(lm, group), Permission[permission.value])
    _say(f"{user} has {permission.value} (at least) on licenses in {group}.")


def _read_key(key: str | None) -> str:
    if key is not None and key != "-":
        return key
    if key is None and sys.stdin.isatty():
        return str(typer.prompt("License key", hide_input=True))
    for line in sys.stdin:
        if line.strip():
            return line.strip()
    raise InvalidInput("no license key on stdin")


@app.command("add-key")
@handled
def add_key(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(
        metavar="KEY", help="The license key, or - to read it from stdin "
                            "(omitted: asked for without echo).")] = None,
    json_: JsonOption = False,
) -> None:
    """Add a license by its key (R15); the key is never printed (R2)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    secret = _read_key(key)
    before = lm.position
    pid = lm.add_license_key(actor, secret)
    del secret
    added = lm.position != before
    view = lm.license(actor, pid)
    names = _group_namer(lm)
    if json_:
        _print_json({"public_id": str(pid), "added": added, "pool_id": str(view.pool_id),
                     "group": names(view.group), "group_id": str(view.group)})
        return
    if added:
        _say(f"Added license {pid} ({view.product}, {view.units} units, owner "
             f"{view.owner or '-'}) to pool {view.pool_id} in {names(view.group)}.")
    else:
        _say(f"License {pid} is already present; nothing recorded.")
    _console().print(Text("Status: ").append(status_text(view)))


def _pools_arg(lm: LicenseManagement, actor: UserId, pools: list[str]) -> list[PoolId]:
    return [_pool(lm, actor, p) for p in pools]


@app.command()
@handled
def move(
    ctx: typer.Context,
    pools: Annotated[list[str], typer.Argument(
        metavar="POOL...", help="Pools by id, id prefix or name.")],
    to: Annotated[str, typer.Option("--to", metavar="GROUP", help="The target group.")],
) -> None:
    """Move license pools to a static group (administrators, R13)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    ids = _pools_arg(lm, actor, pools)
    lm.move_pools(actor, ids, _group(lm, to))
    _say(f"Moved {len(ids)} license pool(s) to {to}.")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@app.command()
@handled
def remove(
    ctx: typer.Context,
    pools: Annotated[list[str], typer.Argument(
        metavar="POOL...", help="Pools by id, id prefix or name.")],
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Confirm the removal without asking.")] = False,
) -> None:
    """Remove license pools and their licenses (administrators, R19).

    Asks for confirmation on a terminal; without a terminal it needs --yes.
    Products activated with the licenses stay activated.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    ids = _pools_arg(lm, actor, pools)
    if not yes:
        # the library checks everything else first, then asks for confirmation
        with contextlib.suppress(ConfirmationRequired):
            lm.remove_pools(actor, ids, confirm=False)
        views = {v.pool_id: v for v in lm.pools(actor)}
        count = sum(len(views[i].public_ids) for i in ids if i in views)
        names = ", ".join(views[i].name for i in ids if i in views)
        if not _stdin_is_tty():
            raise ConfirmationRequired(
                f"removing {len(ids)} license pool(s) ({names}) with {count} license(s) needs "
                "confirmation: run again with --yes (there is no terminal to ask on)"
            )
        if not typer.confirm(
            f"Remove {len(ids)} license pool(s) ({names}) with {count} license(s)? "
            "Products activated with them stay activated",
            default=False,
        ):
            raise ConfirmationRequired("removal not confirmed; nothing was removed")
    lm.remove_pools(actor, ids, confirm=True)
    _say(f"Removed {len(ids)} license pool(s).")


@tag_app.command("create")
@handled
def tag_create(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Create a tag."""
    session = _session(ctx)
    session.app.create_tag(session.actor, name)
    _say(f"Created tag {name.strip()}.")


@tag_app.command("delete")
@handled
def tag_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete a tag; it is unassigned everywhere (administrators)."""
    session = _session(ctx)
    session.app.delete_tag(session.actor, name)
    _say(f"Deleted tag {name.strip()}.")


TargetArg = Annotated[str, typer.Argument(
    metavar="TARGET", help="A Public ID, or a pool (id, id prefix or name).")]


@tag_app.command("assign")
@handled
def tag_assign(ctx: typer.Context, target: TargetArg,
               name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Tag a license or a pool (WRITE on its group)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    lm.assign_tag(actor, _target(lm, actor, target), name)
    _say(f"Tagged {target} with {name.strip()}.")


@tag_app.command("unassign")
@handled
def tag_unassign(ctx: typer.Context, target: TargetArg,
                 name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Remove a tag from a license or a pool (WRITE on its group)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    lm.unassign_tag(actor, _target(lm, actor, target), name)
    _say(f"Removed tag {name.strip()} from {target}.")


# -- projections: the deployed runner and rebuild (issue 5) --------------------------------

ViewsOption = Annotated[str | None, typer.Option(
    "--views", envvar="ESMC_VIEWS", metavar="VIEWS",
    help="Where views persist: sqlite:PATH or postgres (default: beside the store).")]


def _views_spec(store: Store, views: str | None) -> str:
    if views:
        return views
    if store.sqlite_path is not None:
        return f"sqlite:{store.sqlite_path.with_name(store.sqlite_path.stem + '.views.db')}"
    if store.env.get("PERSISTENCE_MODULE", "").endswith("postgres"):
        return "postgres"
    raise InvalidInput("persistent views need a SQLite or PostgreSQL store (use --store)")


def _open_views(ctx: typer.Context, views: str | None) -> tuple[Store, Any]:
    from .projections.store import open_view_store

    store = parse_store(_session(ctx).store)
    env = dict(store.env)
    return store, open_view_store(_views_spec(store, views), env)


@app.command()
@handled
def project(
    ctx: typer.Context,
    views: ViewsOption = None,
    once: Annotated[bool, typer.Option("--once", help="Catch up, then stop.")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", metavar="SECONDS", help="Pause between polls of the log.")] = 0.2,
) -> None:
    """Follow the store into persistent views (run it as a separate process)."""
    from .projections.runner import run_projections

    store, view_store = _open_views(ctx, views)
    try:
        position = run_projections(store.env, view_store, once=once, interval=interval)
    except KeyboardInterrupt:
        return
    finally:
        view_store.close()
    _say(f"Views are at log position {position}.")


@app.command()
@handled
def rebuild(ctx: typer.Context, views: ViewsOption = None) -> None:
    """Drop the persistent views and rebuild them from the log (R30)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .projections.runner import rebuild_views

    store, view_store = _open_views(ctx, views)
    console = _console()
    try:
        if console.is_terminal:
            with Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=console,
            ) as bar:
                task = bar.add_task("Rebuilding views", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                count = rebuild_views(store.env, view_store, progress=progress)
        else:
            count = rebuild_views(store.env, view_store)
    finally:
        view_store.close()
    _say(f"Rebuilt the views from {count} events.")


@app.command("consume-results")
@handled
def consume_results(
    ctx: typer.Context,
    redis_url: Annotated[str, typer.Option(
        "--redis", envvar="ESMC_LICENSING_REDIS", metavar="URL",
        help="The agents' Redis broker.")] = "redis://127.0.0.1:6379/0",
    prefix: Annotated[str, typer.Option(help="The streams' key prefix.")] = "esmc",
    group: Annotated[str, typer.Option(help="The consumer group.")] = "esmc-results",
    consumer: Annotated[str | None, typer.Option(
        help="This consumer's name (default: host and process id).")] = None,
    claim_idle: Annotated[int, typer.Option(
        "--claim-idle", help="Take over results another consumer left pending this many "
                             "seconds.")] = 60,
    once: Annotated[bool, typer.Option(
        "--once", help="Settle what is waiting, then stop.")] = False,
) -> None:
    """Record agents' task results from Redis Streams (R21), each exactly once.

    A result is acknowledged only after it is saved; a repeat records nothing.
    """
    from .adapters.redis_agents import run_result_consumer

    session = _session(ctx)
    try:
        count = run_result_consumer(
            session.app, url=redis_url, prefix=prefix, group=group, consumer=consumer,
            claim_idle_ms=claim_idle * 1000, block_ms=200 if once else 1000,
            idle_rounds=1 if once else None,
        )
    except KeyboardInterrupt:
        return
    _say(f"Settled {count} task result(s).")


def main() -> None:
    """The console script ``esmc-licensing``."""
    app()


__all__ = [
    "DEMO_BRANCHES",
    "DEMO_LICENSES",
    "activation_server",
    "app",
    "demo_vendor",
    "main",
    "parse_store",
    "to_jsonable",
]


if __name__ == "__main__":
    main()
