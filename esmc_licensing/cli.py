"""The ``esmc-licensing`` command line (Typer + Rich).

Every command opens the store named by ``--store``, acts as ``--as USER`` and
closes the store again. Queries print Rich tables, or JSON with ``--json``
(keys are the views' field names; see ``README.md``). Exit codes:

- 0: done;
- 1: refused by a rule (``PermissionDenied``, ``NotFound``, ``AlreadyExists``,
  ``ConfirmationRequired``, ``LicenseKeyRejected``, … any ``LicensingError``);
- 2: bad input (``InvalidInput`` and its subclasses, usage errors, bad settings,
  a value out of range);
- 3: a store or adapter cannot be used (``AdapterUnavailable``, an unreachable
  PostgreSQL, a store that cannot be opened, read or written: corrupt, another
  application's, a full disk, read-only for a change);
- 4: an unexpected internal error (a bug: the line asks for ``--debug``).

A store file that cannot be written is opened read-only and answers queries.

Errors are one line on stderr; ``--debug`` adds the traceback and the
library's log. A license key is a secret (R2): it is read from stdin, a file or
a prompt (never from an argument) and never printed, only its last four
characters. Text from outside is printed with control characters escaped (R33).

The vendor: with no vendor URL configured, the activation server is an
in-memory one pre-seeded with the demo licenses (:data:`DEMO_LICENSES`, see
:func:`activation_server`). With ``ESMC_ACTIVATION_URL`` (and account URLs) in
the environment or a TOML config file, the HTTP adapters are wired instead;
secrets (account passwords, the seal key) come only from the environment or a
credentials file with mode 0600 (:mod:`esmc_licensing.config`, docs/cli.md).
"""

from __future__ import annotations

import contextlib
import copy
import enum
import errno
import functools
import json
import logging
import os
import re
import sys
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import typer
from eventsourcing.domain import EventSourcingError
from eventsourcing.persistence import InfrastructureFactoryError

from . import _attrs_code  # noqa: F401 - first: attrs' code of the classes below cached
from .adapters.clock import SystemClock
from .adapters.memory import InMemoryActivationServer
from .adapters.ports import ActivationServer, Clock
from .application import LicenseManagement
from .config import Config, ConfigError, Secrets, Wiring, build_adapters, load_config, load_secrets
from .domain.errors import (
    AdapterUnavailable,
    ConfirmationRequired,
    InvalidInput,
    LicensingError,
    NotFound,
    PermissionDenied,
)
from .domain.filters import LicenseFilter
from .domain.ids import ComputerId, GroupId, PoolId, PublicId, TaskId, UserId
from .domain.values import AccountKind, LicenseType, Permission, StatusLevel, escape_controls
from .projections.views import (
    ComputerView,
    HistoryEntry,
    LicenseView,
    MoveImpact,
    PoolView,
    TaskView,
)
from .seals import (
    SEAL_KEY_FILE_VARIABLE,
    SEAL_KEY_VARIABLE,
    HistoryReport,
    Receipt,
    verify_store,
)
from .wiring import Adapters

if TYPE_CHECKING:  # Rich is imported only when something is printed for a person
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .long_tables import LongTable

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 4
#: 128 + SIGPIPE: how a tool whose reader went away ends (``| head``)
EXIT_BROKEN_PIPE = 141

DEFAULT_STORE = "esmc-licensing.db"
DEFAULT_POSTGRES_CONNECT_TIMEOUT = "5"
#: the longest span a --days option takes (a century)
MAX_DAYS = 36_525
#: the width of tables written to a file or a pipe
DEFAULT_COLUMNS = 160

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

_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=")
_SECRET_SETTINGS = ("PASSWORD", "CIPHER_KEY", "SEAL_KEY", "DATA_KEY", "AGENT_KEY")

#: the settings ``--store KEY=VALUE,...`` takes (case-sensitive, as eventsourcing
#: and the library read them); anything else is refused rather than ignored
STORE_SETTINGS = frozenset({
    "PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT",
    "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_SCHEMA",
    "POSTGRES_CONNECT_TIMEOUT", "POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW",
    "POSTGRES_POOL_TIMEOUT", "POSTGRES_LOCK_TIMEOUT", "POSTGRES_PRE_PING",
    "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
    "COMPRESSOR_TOPIC", "CIPHER_TOPIC",
    "ESMC_VIEWS", "ESMC_CACHE_SIZE", "ESMC_SNAPSHOT_EVERY", "ESMC_SEAL_EVERY",
})
#: the persistence modules a store can use
PERSISTENCE_MODULES = ("eventsourcing.popo", "eventsourcing.sqlite", "eventsourcing.postgres")
#: a PostgreSQL schema name: an unquoted identifier (it is written into SQL)
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@attrs.frozen
class Store:
    env: Mapping[str, str]
    description: str
    sqlite_path: Path | None = None


def parse_store(store: str | None) -> Store:
    """``--store``: a SQLite file, a ``postgresql://`` URL or eventsourcing settings.

    Secrets (the PostgreSQL password, a cipher key) are never taken from the
    command line: set them in the environment (``POSTGRES_PASSWORD``,
    ``CIPHER_KEY``), where eventsourcing reads them. Settings are checked here
    (names case-sensitive, from :data:`STORE_SETTINGS`), so that a misspelt one
    is refused instead of ignored or taken for a file name.
    """
    if store is None:
        store = DEFAULT_STORE
    elif not store.strip():
        raise InvalidInput(
            f"--store is empty; name a SQLite file (the default is {DEFAULT_STORE}), "
            "a postgresql:// URL, ':memory:' or KEY=VALUE settings"
        )
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
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise InvalidInput(
                    f"--store settings are KEY=VALUE pairs separated by commas; {key!r} is not one"
                )
            if any(s in key.upper() for s in _SECRET_SETTINGS):
                raise InvalidInput(
                    f"{key} is a secret and is not taken from the command line; "
                    "set it in the environment instead"
                )
            if key not in STORE_SETTINGS:
                hint = " (setting names are upper-case)" if key.upper() in STORE_SETTINGS else ""
                raise InvalidInput(f"--store settings: unknown setting {key!r}{hint}")
            env[key] = value.strip()
        module = env.get("PERSISTENCE_MODULE", "eventsourcing.popo")
        if module not in PERSISTENCE_MODULES:
            raise InvalidInput(
                f"--store settings: PERSISTENCE_MODULE is one of {', '.join(PERSISTENCE_MODULES)}, "
                f"not {module!r}"
            )
        _check_schema(env)
        dbname = env.get("SQLITE_DBNAME")
        if module.endswith("sqlite") and not dbname:
            raise InvalidInput("--store settings: eventsourcing.sqlite needs SQLITE_DBNAME=PATH")
        sqlite_path = (
            Path(dbname).expanduser()
            if module.endswith("sqlite") and dbname and ":memory:" not in dbname
            and not dbname.startswith("file:")
            else None
        )
        return Store(env, f"{module} ({', '.join(sorted(env))})", sqlite_path)
    if store == ":memory:":
        return Store({"PERSISTENCE_MODULE": "eventsourcing.popo"}, "memory (nothing is kept)")
    path = Path(store).expanduser()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return Store(env, f"SQLite file {path}", path)


def _check_schema(env: Mapping[str, str]) -> None:
    schema = env.get("POSTGRES_SCHEMA")
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidInput(
            f"the PostgreSQL schema name {schema!r} is not a plain identifier (letters, digits "
            "and _, not starting with a digit, at most 63)"
        )


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
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        name = f"POSTGRES_{key.upper()}"
        if any(s in name for s in _SECRET_SETTINGS) or "SSLKEY" in name:
            raise InvalidInput(
                f"{key} is a secret and is not taken from the command line; "
                "set it in the environment instead"
            )
        if name not in STORE_SETTINGS:
            raise InvalidInput(f"--store: unknown URL parameter {key!r}")
        env[name] = value
    _check_schema(env)
    where = f"{env['POSTGRES_USER']}@{parts.hostname}:{port}/{dbname}"
    return Store(env, f"PostgreSQL {where}")


def _postgres_cause(error: BaseException, env: Mapping[str, str]) -> str:
    """Why a connection to PostgreSQL failed, in words (never a password)."""
    text = " ".join(str(error).split())
    where = f"{env.get('POSTGRES_HOST')}:{env.get('POSTGRES_PORT', '5432')}"
    low = text.lower()
    found = re.search(r'(role|database) "([^"]*)" does not exist', text)
    if found and found.group(1) == "role":
        return (f"PostgreSQL at {where} has no user (role) {found.group(2)!r}: "
                "check the user in the --store URL")
    if found:
        return (f"PostgreSQL at {where} has no database {found.group(2)!r}: check the "
                "database in the --store URL, or create it (createdb)")
    if "password authentication failed" in low or "authentication failed" in low:
        user = env.get("POSTGRES_USER")
        return (f"PostgreSQL at {where} refused the password of user {user!r} "
                "(authentication failed): check POSTGRES_PASSWORD")
    if "no password supplied" in low:
        return (f"PostgreSQL at {where} wants a password for user {env.get('POSTGRES_USER')!r}: "
                "set POSTGRES_PASSWORD in the environment")
    if "connection refused" in low:
        return (f"nothing accepts connections at {where} (connection refused): is PostgreSQL "
                "running there, and is the port right?")
    if "timeout" in low or "timed out" in low:
        return (f"PostgreSQL at {where} did not answer within "
                f"{env.get('POSTGRES_CONNECT_TIMEOUT', DEFAULT_POSTGRES_CONNECT_TIMEOUT)} s "
                "(connection timeout)")
    if "translate host name" in low or "name or service not known" in low:
        return f"the host {env.get('POSTGRES_HOST')!r} is unknown (its name does not resolve)"
    if "pg_hba.conf" in low:
        return f"PostgreSQL at {where} does not allow this user, database or host (pg_hba.conf)"
    return text.removeprefix("connection failed: ")


def _prepare_postgres(env: Mapping[str, str], description: str, *, create: bool) -> None:
    """Connect once before the application does, so that a failure says why
    (refused port, unknown user or database, authentication) instead of a pool's
    "couldn't get a connection"; and create the schema the store names when it
    is missing (``create``), or say that it does not exist (queries)."""
    import psycopg

    try:
        timeout = max(1, int(float(env.get("POSTGRES_CONNECT_TIMEOUT")
                                   or DEFAULT_POSTGRES_CONNECT_TIMEOUT)))
    except ValueError:
        raise InvalidInput("POSTGRES_CONNECT_TIMEOUT is a number of seconds") from None
    try:
        port = int(env.get("POSTGRES_PORT") or 5432)
    except ValueError:
        raise InvalidInput("POSTGRES_PORT is a port number") from None
    password = os.environ.get("POSTGRES_PASSWORD", env.get("POSTGRES_PASSWORD", ""))
    try:
        with psycopg.connect(
            host=env.get("POSTGRES_HOST"), port=port, dbname=env.get("POSTGRES_DBNAME"),
            user=env.get("POSTGRES_USER"), password=password or None,
            connect_timeout=timeout, autocommit=True,
        ) as conn:
            schema = env.get("POSTGRES_SCHEMA")
            if not schema:
                return
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if exists:
                return
            if not create:
                raise AdapterUnavailable(
                    f"the store ({description}) has no schema {schema!r}, and a query does not "
                    "create one: check ?schema= in --store, or create it with a command that "
                    "records something (esmc-licensing demo, create-group NAME, add-key -)"
                )
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')  # a checked identifier
    except psycopg.Error as e:
        raise AdapterUnavailable(
            f"cannot open the store ({description}): {_postgres_cause(e, env)}"
        ) from e


#: the first bytes of every SQLite database file
_SQLITE_HEADER = b"SQLite format 3\x00"


def _store_access(path: Path) -> bool:
    """Whether the SQLite store at ``path`` can be written (False: it is opened
    read-only, to answer queries). Refuses what cannot be a store of ours, before
    SQLite or eventsourcing touch it: a directory, a missing directory, a file
    that is not a SQLite database, or another application's database (which
    would otherwise silently get our tables added)."""
    import sqlite3

    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise AdapterUnavailable(f"cannot open the store: {path} is a directory")
    if not path.exists():
        if not parent.is_dir():
            raise AdapterUnavailable(
                f"cannot open the store at {path}: the directory {parent} does not exist"
            )
        if not os.access(parent, os.W_OK):
            raise AdapterUnavailable(
                f"cannot create the store at {path}: the directory {parent} is not writable"
            )
        return True
    if not path.is_file():
        raise AdapterUnavailable(f"cannot open the store: {path} is not a regular file")
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise AdapterUnavailable(f"cannot read the store {path}: {e.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise AdapterUnavailable(f"cannot open the store: {path} is not a SQLite database")
    writable = os.access(path, os.W_OK)
    if header:
        try:
            with contextlib.closing(sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as e:
            if writable or "unable to open" not in str(e):
                raise AdapterUnavailable(
                    f"cannot open the store {path}: {_one_line(e)} (is it damaged?)"
                ) from None
            tables = {"stored_events"}  # read-only WAL file in a read-only directory
        if tables and "stored_events" not in tables:
            raise AdapterUnavailable(
                f"cannot open the store: {path} is a SQLite database of another application "
                f"(it has tables, but no events); name a new file or a store of this tool"
            )
    return writable


def _read_only_env(env: Mapping[str, str], path: Path) -> dict[str, str]:
    """Settings opening ``path`` read-only: queries are answered from views built
    in memory (the file's own views cannot be brought up to date)."""
    import sqlite3

    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        # a WAL database in a directory we cannot write: SQLite cannot share
        # it, so read it as the unchanging copy it is
        uri += "&immutable=1"
    out = {**env, "SQLITE_DBNAME": uri}
    out.setdefault("ESMC_VIEWS", "memory")
    return out


def data_key_file_of(sqlite_path: Path) -> Path:
    """Where the CLI keeps a SQLite store's data key when none is configured (R32)."""
    return sqlite_path.with_name(sqlite_path.name + ".datakey")


def _data_key_setting(store: Store, env: dict[str, str]) -> None:
    """Point a SQLite store without a configured data key at the key file beside it,
    creating that file (0600) for a new store and saying so once (R32).

    A PostgreSQL store gets no key made for it: several machines share it, so
    its key must be configured (``ESMC_DATA_KEY`` or ``ESMC_DATA_KEY_FILE``).
    """
    from .adapters.field_cipher import DATA_KEY_FILE_VARIABLE, DATA_KEY_VARIABLE

    names = (DATA_KEY_VARIABLE, DATA_KEY_FILE_VARIABLE)
    if store.sqlite_path is None or any(os.environ.get(n) or env.get(n) for n in names):
        return
    path = data_key_file_of(store.sqlite_path)
    if not path.exists():
        if store.sqlite_path.exists() and store.sqlite_path.stat().st_size > 0:
            return  # an older store: `rotate-data-key` or `migrate-secrets` makes its key
        from .keyring import create_key_file

        create_key_file(path, "data")
        typer.echo(
            f"Created the data key file {path} (readable by you only): license keys and "
            "passwords in the store are encrypted with it. Back it up apart from the "
            "store; without it they cannot be read.",
            err=True,
        )
    env[DATA_KEY_FILE_VARIABLE] = str(path)


# -- a session: one command's application -----------------------------------------


@attrs.define
class Session:
    store: str | None
    user_name: str
    debug: bool
    config_file: str | None = None
    credentials_file: str | None = None
    _app: LicenseManagement | None = None
    _actor: UserId | None = None
    #: the store was opened read-only (a file we cannot write): queries only
    read_only: bool = False
    #: the store as the user named it, for messages
    description: str | None = None
    #: the command only reads: a store that does not exist is not created for it
    queries_only: bool = False
    #: --json given before the command (or after it, to a command without its own)
    json: bool = False
    _config: Config | None = None
    _secrets: Secrets | None = None
    _wiring: Wiring | None = None

    @property
    def config(self) -> Config:
        """The vendor settings (``--config``, environment); see esmc_licensing.config."""
        if self._config is None:
            cfg = load_config(self.config_file)
            if self.credentials_file:
                cfg = attrs.evolve(cfg, credentials_file=Path(self.credentials_file).expanduser())
            self._config = cfg
        return self._config

    @property
    def secrets(self) -> Secrets:
        """The credentials file's secrets; its permissions are checked before it is read."""
        if self._secrets is None:
            path = self.config.credentials_file
            self._secrets = Secrets() if path is None else load_secrets(path)
        return self._secrets

    def open(self) -> LicenseManagement:
        if self._app is None:
            store = parse_store(self.store)
            cfg, _ = self.config, self.secrets  # both checked before the store is touched
            self.description = store.description
            env = dict(store.env)
            if (
                self.queries_only
                and store.sqlite_path is not None
                and not Path(store.sqlite_path).exists()
            ):
                raise AdapterUnavailable(
                    f"the store ({store.description}) does not exist, and a query does not "
                    "create one: check --store (or ESMC_LICENSING_STORE), or create it with a "
                    "command that records something (esmc-licensing demo, create-group NAME, "
                    "add-key -)"
                )
            if store.sqlite_path is not None and not _store_access(store.sqlite_path):
                self.read_only = True
                env = _read_only_env(env, store.sqlite_path)
            if env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
                _prepare_postgres(env, store.description, create=not self.queries_only)
            clock = SystemClock()
            self._wiring = wiring = build_adapters(cfg, clock, activation_server)
            adapters = Adapters(
                activation_server=wiring.activation_server, accounts=wiring.accounts,
                agents=wiring.agents, clock=clock, offline_verifier=wiring.offline_verifier,
            )
            _data_key_setting(store, env)
            env.update(self.seal_env(store))
            try:
                self._app = LicenseManagement(env=env, adapters=adapters)
            except LicensingError:
                raise
            except InfrastructureFactoryError as e:
                raise InvalidInput(f"bad --store settings: {_one_line(e)}") from e
            except (EventSourcingError, OSError, _sqlite_error()) as e:
                if self.read_only and _is_write_refusal(e):
                    raise AdapterUnavailable(
                        f"the store ({store.description}) is read-only and was never "
                        "initialised: nothing to read"
                    ) from e
                raise AdapterUnavailable(
                    f"cannot open the store ({store.description}): {_one_line(e)}"
                ) from e
            if sys.stderr.isatty():
                catch_up_showing_progress(self._app)
        return self._app

    @property
    def app(self) -> LicenseManagement:
        return self.open()

    def seal_env(self, store: Store) -> dict[str, str]:
        """Where the seal key comes from (R31), first found: ``ESMC_SEAL_KEY_FILE`` or
        ``ESMC_SEAL_KEY`` in the environment, ``seal_key`` in the credentials file,
        else the key file beside a SQLite store (``STORE.seal-key``, which
        ``demo`` creates)."""
        given = {
            name: value
            for name in (SEAL_KEY_VARIABLE, SEAL_KEY_FILE_VARIABLE)
            if (value := os.environ.get(name))
        }
        if given:  # named explicitly: verify_store reads no process environment
            return given
        if self.secrets.seal_key is not None:
            return {SEAL_KEY_VARIABLE: self.secrets.seal_key}
        beside = seal_key_beside(store)
        if beside is not None and beside.exists():
            return {SEAL_KEY_FILE_VARIABLE: str(beside)}
        return {}

    def verify_history(self, receipt: Receipt | None) -> HistoryReport:
        """R31 for the acting user; a store that no longer opens is verified
        without the application (whoever can read its file can verify it)."""
        store = parse_store(self.store)
        if store.sqlite_path is not None and not Path(store.sqlite_path).exists():
            raise NotFound("store", store.description)
        try:
            lm = self.app
        except AdapterUnavailable:
            lm = None
        if lm is not None:
            return lm.verify_history(self.actor, receipt)
        env = {**store.env, **self.seal_env(store)}
        try:
            return verify_store(env, receipt=receipt)
        except InfrastructureFactoryError as e:
            raise InvalidInput(f"bad --store settings: {_one_line(e)}") from e
        except (EventSourcingError, OSError) as e:
            raise AdapterUnavailable(
                f"cannot open the store ({store.description}): {_one_line(e)}"
            ) from e

    @property
    def actor(self) -> UserId:
        if self._actor is None:
            try:
                self._actor = _user(self.app, self.user_name)
            except NotFound:
                # a bad --as value is bad input (exit 2), not a refusal by a rule
                raise InvalidInput(
                    f"--as {self.user_name!r}: no such user; give a user name or id "
                    "(the built-in one is Administrator)"
                ) from None
        return self._actor

    def close(self) -> None:
        try:
            if self._app is not None:
                self._app.close()
        finally:
            self._app = None
            self._actor = None
            if self._wiring is not None:
                self._wiring.close()
                self._wiring = None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _sqlite_error() -> type[Exception]:
    import sqlite3

    return sqlite3.Error


def _is_write_refusal(e: BaseException) -> bool:
    text = str(e).lower()
    return "readonly" in text or "read-only" in text


def _is_store_error(e: BaseException) -> bool:
    return isinstance(e, EventSourcingError | _sqlite_error())


def failure(e: BaseException, session: Session | None = None) -> tuple[int, str]:
    """The exit code and the one line an error is reported with (api.md):
    2 bad input (including a value out of range), 1 refused by a rule, 3 a
    store or adapter that cannot be used, 4 anything unexpected. The line says
    what happened in words; an exception's class name is never all of it."""
    where = session.description if session is not None and session.description else None
    store = f"the store ({where})" if where else "the store"
    if isinstance(e, InvalidInput | InfrastructureFactoryError):
        return EXIT_BAD_INPUT, _one_line(e)
    if isinstance(e, OverflowError):
        return EXIT_BAD_INPUT, f"a value is out of range ({_one_line(e)})"
    if isinstance(e, AdapterUnavailable):
        return EXIT_UNAVAILABLE, _one_line(e)
    if isinstance(e, LicensingError):
        return EXIT_REFUSED, _one_line(e)
    text = _one_line(e)
    if _is_store_error(e) or isinstance(e, OSError):
        if _is_write_refusal(e) or (session is not None and session.read_only
                                    and isinstance(e, EventSourcingError)):
            return EXIT_UNAVAILABLE, (
                f"{store} is read-only: it answers queries but cannot record anything; "
                "nothing was recorded"
            )
        low = text.lower()
        if ("is full" in low or "no space left" in low
                or (isinstance(e, OSError) and e.errno == errno.ENOSPC)):
            return EXIT_UNAVAILABLE, (
                f"{store} is full (no space left on its disk): nothing was recorded; "
                "free some space and try again"
            )
        if isinstance(e, OSError) and not _is_store_error(e):
            return EXIT_UNAVAILABLE, f"{e.strerror or text}" + (
                f": {e.filename}" if e.filename else "")
        return EXIT_UNAVAILABLE, f"cannot read or write {store}: {text}"
    return EXIT_INTERNAL, (
        f"an unexpected internal error ({type(e).__name__}: {text}); "
        "run again with --debug for the traceback, and report it"
    )


def exit_code_for(e: BaseException) -> int:
    return failure(e)[0]


def _quiet_broken_pipe() -> None:
    """The reader of our output went away (``| head -1``): stop quietly, as
    other command-line tools do, with the status of a SIGPIPE death."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(EXIT_BROKEN_PIPE)


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


def _query_session(ctx: typer.Context) -> Session:
    """The session of a query that is a subcommand (``tag list``) or a group's
    own answer (``alerts``): like the commands of ``QUERY_COMMANDS``, it does
    not create a store that does not exist."""
    session = _session(ctx)
    session.queries_only = True
    return session


def handled(fn: F) -> F:
    """Run a command: map library errors to one stderr line and an exit code."""

    @functools.wraps(fn)
    def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        session = _session(ctx)
        if session.json and "json_" in kwargs:
            kwargs["json_"] = True
        with _library_logging(session.debug):
            try:
                return fn(ctx, *args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except BrokenPipeError:
                _quiet_broken_pipe()
            except Exception as e:
                if session.debug:
                    traceback.print_exc(file=sys.stderr)
                code, message = failure(e, session)
                typer.echo(f"error: {escape_controls(message)}", err=True)
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


def _did_you_mean(error: NotFound, text: str, names: Iterable[str], listing: str) -> NotFound:
    """``error`` with the closest of ``names`` (what the actor may see) suggested,
    and the command that lists them all."""
    import difflib

    by_key = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(text.strip().casefold(), list(by_key), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(by_key[c]) for c in close)}?" if close else ""
    error.args = (f"{error}{hint} ({listing} lists them)",)
    return error


def _group(app: LicenseManagement, actor: UserId, name: str) -> GroupId:
    """A group the actor sees, by name, id or path (``All/San Diego``); one
    outside its visibility is "not found", by the name given, exactly as one
    that does not exist (R14). Suggestions come from the groups it sees."""
    if "/" in name.strip("/"):
        seen = app.groups(actor)
        by_path = {g.path.casefold(): g.group_id for g in seen}
        found = by_path.get(name.strip().strip("/").casefold())
        if found is not None:
            return app.visible_group_named(actor, str(found))
        error = NotFound("static group", name.strip())
        raise _did_you_mean(error, name, [g.path for g in seen], "esmc-licensing groups")
    try:
        return app.visible_group_named(actor, name)
    except NotFound as error:
        seen = app.groups(actor)
        names = [g.name for g in seen] + [g.path for g in seen]
        raise _did_you_mean(error, name, names, "esmc-licensing groups") from None


def _named_user(app: LicenseManagement, actor: UserId, name: str) -> UserId:
    """A user named in a command's arguments, with suggestions from the users
    the actor may list."""
    try:
        return _user(app, name)
    except NotFound as error:
        names = [u.name for u in app.users(actor)]
        raise _did_you_mean(error, name, names, "esmc-licensing users") from None


def _pick(kind: str, text: str, candidates: Sequence[tuple[uuid.UUID, str]]) -> uuid.UUID:
    """One of the actor's visible objects by id, unique name or unique id prefix (≥ 4)."""
    text = text.strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    named = [oid for oid, name in candidates if name.casefold() == text.casefold()]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(map(str, named))
        raise InvalidInput(f"{len(named)} {kind}s are named {text!r}; use an id: {ids}")
    if len(text) >= 4:
        prefixed = [oid for oid, _ in candidates if str(oid).startswith(text.lower())]
        if len(prefixed) == 1:
            return prefixed[0]
    raise NotFound(kind, text)


def _pool(app: LicenseManagement, actor: UserId, text: str) -> PoolId:
    """A pool by id, by a unique id prefix or by name, among the pools the actor sees."""
    try:
        return PoolId(uuid.UUID(text.strip()))
    except ValueError:
        pass
    pools = [(p.pool_id, p.name) for p in app.pools(actor)]
    return PoolId(_pick("license pool", text, pools))


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
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{option} {text!r} is out of range") from None
    except ValueError:
        raise InvalidInput(
            f"{option} takes a date or date-time like 2026-01-31 or 2026-01-31T12:00:00Z, "
            f"not {text!r}"
        ) from None


# -- output ----------------------------------------------------------------------------


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _columns() -> int | None:
    """The width of output that is not a terminal: ``COLUMNS`` when it is a
    sensible number (empty or junk is ignored, as other tools do), else 160."""
    if _stdout_is_tty():
        return None
    raw = os.environ.get("COLUMNS", "").strip()
    if raw.isdigit() and 20 <= int(raw) <= 10_000:
        return int(raw)
    return DEFAULT_COLUMNS


@functools.cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class SafeConsole(Console):
        """A console on which text is never markup and never reaches the terminal
        with control characters (R33): names, vendor text and agent results are
        printed through it as they are, and a ``[/x]`` or an escape sequence in
        them is shown, not obeyed."""

        def render_str(self, text: str, **kwargs: Any) -> Text:
            kwargs["markup"] = False
            return super().render_str(escape_controls(text, keep_newlines=True), **kwargs)

        def on_broken_pipe(self) -> None:
            self.quiet = True
            _quiet_broken_pipe()

    return SafeConsole


def _console() -> Console:
    return _console_class()(width=_columns(), highlight=False)


def _table(*args: Any, **kwargs: Any) -> Table:
    """A Rich ``Table`` (``--json`` output never imports Rich)."""
    from rich.table import Table

    return Table(*args, **kwargs)


@attrs.frozen
class Column:
    """A table column: ``drop`` orders what goes when the table is too wide for
    the terminal (highest first; 0: never dropped); a ``spare`` column goes as
    soon as the table does not fit unwrapped, the others only when it would not
    fit even wrapped; ``no_wrap`` keeps ids, dates, numbers and states on one
    line, whole."""

    header: str
    drop: int = 0
    no_wrap: bool = False
    spare: bool = False


def fitted_table(columns: Sequence[Column], rows: Iterable[Sequence[Any]], *,
                 title: str | None = None, console: Console | None = None) -> Table | LongTable:
    """A table as wide as the console allows: the least important columns are
    dropped (and the caption names them) until every id, date and state fits
    whole and the other columns can wrap between words; nothing is cut."""
    from rich.measure import Measurement

    from .long_tables import LONG, LongTable, plain_cell
    from .long_tables import measure as measure_text

    console = console or _console()
    rows = [list(r) for r in rows]
    # what each cell shows when it is one line of one style (None: Rich's to lay out)
    texts = [[plain_cell(c) for c in row] for row in rows]
    wide = console.options.update_width(10_000)

    def measure(i: int) -> tuple[int, int]:
        """The narrowest the column gets without cutting a word, and its natural width."""
        header = columns[i].header
        cells = [(header, plain_cell(header)), *((row[i], text[i]) for row, text in zip(
            rows, texts, strict=True))]
        measured = [
            tuple(Measurement.get(console, wide, c)) if t is None else measure_text(t)
            for c, t in cells
        ]
        most = max(m[1] for m in measured)
        return (most if columns[i].no_wrap else max(m[0] for m in measured)), most

    needs, natural = zip(*(measure(i) for i in range(len(columns))), strict=True)
    keep = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop),
                       key=lambda i: -columns[i].drop)
    dropped: list[str] = []
    # each column is padded by a space either side and followed by a rule
    room = console.width - 1
    def drop(gone: int) -> None:
        droppable.remove(gone)
        keep.remove(gone)
        dropped.insert(0, columns[gone].header)

    spare = [i for i in droppable if columns[i].spare]
    while spare and sum(natural[i] + 3 for i in keep) > room:
        drop(spare.pop(0))
    while droppable and sum(needs[i] + 3 for i in keep) > room:
        drop(droppable[0])
    widths = {i: natural[i] for i in keep}
    while sum(w + 3 for w in widths.values()) > room:
        slack = [i for i in keep if widths[i] > needs[i]]
        if not slack:
            break
        widest = max(slack, key=lambda i: (widths[i], -i))
        widths[widest] -= 1  # Rich would narrow columns below their longest word
    table = _table(title=title, title_justify="left")
    for i in keep:
        table.add_column(columns[i].header, no_wrap=columns[i].no_wrap, width=widths[i])
    if dropped:
        table.caption = f"Not shown for want of width: {', '.join(dropped)} (--json has all)"
        table.caption_justify = "left"
    if len(rows) >= LONG and all(text[i] is not None for text in texts for i in keep):
        table.add_row(*(rows[0][i] for i in keep))
        rest = [[(row[i], text[i] or "") for i in keep]
                for row, text in zip(rows[1:], texts[1:], strict=True)]
        return LongTable(table, [widths[i] for i in keep], rest)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _text(text: str = "", *args: Any, **kwargs: Any) -> Text:
    """A Rich ``Text`` (its text shown with control characters escaped, R33)."""
    from rich.text import Text

    return Text(escape_controls(text), *args, **kwargs)


#: --quiet: what a command did is not told, only what it answers
_QUIET = [False]
#: --no-pager: long output is never paged
_NO_PAGER = [False]


#: the pager when PAGER is not set: less, quitting at once when a screen holds it all
DEFAULT_PAGER = "less -FRX"


def _show(*renderables: Any, note: str | None = None) -> None:
    """Print a query's answer (tables, then ``note``), through ``$PAGER`` when
    stdout is a terminal and the answer is taller than it. Never paged: output
    to a file or pipe, --json (printed elsewhere), --no-pager, an empty PAGER."""
    import shutil

    from .long_tables import LongTable

    console = _console()
    pager = os.environ.get("PAGER", DEFAULT_PAGER)
    if _NO_PAGER[0] or not pager.strip() or not _stdout_is_tty():
        for r in renderables:
            console.print(r, crop=not isinstance(r, LongTable))
        if note:
            _say(note)
        return
    with console.capture() as captured:
        for r in renderables:
            console.print(r, crop=not isinstance(r, LongTable))
        if note and not _QUIET[0]:
            console.print(note, markup=False, highlight=False, soft_wrap=True)
    text = captured.get()
    if text.count("\n") < shutil.get_terminal_size().lines:
        sys.stdout.write(text)
        return
    import shlex
    import subprocess

    try:
        argv = shlex.split(pager)
        sys.stdout.flush()
        subprocess.run(argv, input=text.encode(sys.stdout.encoding or "utf-8", "replace"),
                       check=False)
    except (OSError, ValueError):  # no such pager: print it as it is
        sys.stdout.write(text)


LimitOption = Annotated[int | None, typer.Option(
    "--limit", metavar="N", min=1, help="Show at most the first N rows.")]

_T = TypeVar("_T")


def _limited(rows: Sequence[_T], limit: int | None) -> tuple[list[_T], str | None]:
    """The first ``limit`` rows, and the note saying how many were left out."""
    if limit is None or len(rows) <= limit:
        return list(rows), None
    return list(rows[:limit]), (f"Showing the first {limit} of {len(rows)}; "
                                "raise --limit to see more.")


def _say(message: str) -> None:
    if _QUIET[0]:
        return
    _console().print(message, markup=False, highlight=False, soft_wrap=True)


def to_jsonable(value: Any, group_name: Callable[[GroupId], str] | None = None) -> Any:
    """A view as JSON data: field names as keys, ids as strings, dates in ISO.

    A field ``group`` holding a group id becomes the group's name, with the id
    beside it as ``group_id``.
    """
    kind = type(value)
    convert = _CONVERTERS.get(kind) or _converter(kind)
    return convert(value, group_name)


_Namer = Callable[[GroupId], str] | None
#: per type: how its values become JSON data, decided once per type (deciding
#: it per value was most of printing 10,000 licenses as JSON)
_CONVERTERS: dict[type, Callable[[Any, _Namer], Any]] = {}


def _as_it_is(value: Any, _: _Namer) -> Any:
    return value


def _converter(kind: type) -> Callable[[Any, _Namer], Any]:
    convert: Callable[[Any, _Namer], Any]
    if attrs.has(kind):
        names = tuple(f.name for f in attrs.fields(kind))

        def convert(value: Any, group_name: _Namer) -> Any:
            out: dict[str, Any] = {}
            for name in names:
                item = getattr(value, name)
                if name == "group" and group_name is not None and isinstance(item, GroupId):
                    out["group"] = group_name(item)
                    out["group_id"] = str(item)
                else:
                    out[name] = (_CONVERTERS.get(type(item)) or _converter(type(item)))(
                        item, group_name
                    )
            return out

    elif issubclass(kind, enum.Enum):
        convert = _enum_name
    elif kind is type(None) or issubclass(kind, bool | int | float):
        convert = _as_it_is
    elif issubclass(kind, str | uuid.UUID):
        convert = _as_it_is if kind is str else _text_of
    elif issubclass(kind, datetime | date):
        convert = _iso
    elif issubclass(kind, Mapping):
        convert = _mapping
    elif issubclass(kind, set | frozenset):
        convert = _set
    elif issubclass(kind, list | tuple):
        convert = _sequence
    else:
        convert = _text_of
    _CONVERTERS[kind] = convert
    return convert


def _enum_name(value: Any, _: _Namer) -> Any:
    return value.name


def _text_of(value: Any, _: _Namer) -> Any:
    return str(value)


def _iso(value: Any, _: _Namer) -> Any:
    return value.isoformat()


def _mapping(value: Any, group_name: _Namer) -> Any:
    return {str(k): to_jsonable(v, group_name) for k, v in value.items()}


def _set(value: Any, group_name: _Namer) -> Any:
    return sorted(to_jsonable(v, group_name) for v in value)


def _sequence(value: Any, group_name: _Namer) -> Any:
    return [to_jsonable(v, group_name) for v in value]


def json_text(data: Any) -> str:
    """``data`` as JSON indented by two spaces, non-ASCII as it is (R33 escapes
    what must not reach a terminal); orjson writes it several times faster than
    ``json``, which is kept for what orjson refuses (integers past 64 bits)."""
    import orjson

    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return json.dumps(data, indent=2, ensure_ascii=False)


def json_line(data: Any) -> str:
    """``data`` as one line of compact JSON, keys sorted, with what must not reach a
    terminal escaped (R33): an audit export's entry, written by orjson (about ten
    times faster than ``json``, which is kept for integers past 64 bits)."""
    import orjson

    try:
        text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return json_safe(text)


def _print_json(data: Any) -> None:
    typer.echo(json_safe(json_text(data)))


def _done(json_: bool, data: Mapping[str, Any], message: str) -> None:
    """What a command that changes things did: ``data`` (with ids) under
    --json, else the sentence (which --quiet silences)."""
    if json_:
        _print_json(data)
    else:
        _say(message)


def _group_path(lm: LicenseManagement, actor: UserId, group: GroupId) -> str:
    """The group's path (All/San Diego) as the actor sees it, else its name."""
    for g in lm.groups(actor):
        if g.group_id == group:
            return g.path
    return lm.group_name(group)


def json_safe(text: str) -> str:
    """JSON text with every control, format or bidirectional character escaped
    (R33). ``json`` escapes U+0000..U+001F itself, so any other such character
    is inside a string, where ``\\uXXXX`` means the same data."""
    if text.replace("\n", "").isprintable():
        return text
    import unicodedata

    out = []
    for char in text:
        if char == "\n" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp",
                                                               "Co", "Cn"):
            out.append(char)
        elif ord(char) > 0xFFFF:
            code = ord(char) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


_LEVEL_STYLE = {
    StatusLevel.OK: "bold green",
    StatusLevel.WARNING: "bold yellow",
    StatusLevel.ERROR: "bold red",
    StatusLevel.EXPIRED: "bold magenta",
    StatusLevel.SUSPENDED: "bold white on red",
}


def status_text(view: LicenseView) -> Text:
    status = view.status
    text = _text(status.level.name, style=_LEVEL_STYLE[status.level])
    shown = sorted(r.name for r in status.reasons if r.name != status.level.name)
    if shown:
        text.append(" (" + ", ".join(r.lower().replace("_", " ") for r in shown) + ")")
    return text


def _expires(view: LicenseView) -> str:
    if view.expires is None:
        return "open-ended subscription" if view.subscription else "-"
    return view.expires.isoformat() + (" (subscription)" if view.subscription else "")


#: the license table's columns (the first are dropped last on a narrow terminal)
LICENSE_COLUMNS = (
    Column("Public ID", no_wrap=True), Column("Product", drop=2), Column("Type", drop=5),
    Column("Used/Units", no_wrap=True), Column("Expires"), Column("Owner", drop=6, spare=True),
    Column("Group", drop=4), Column("Tags", drop=7, spare=True), Column("Status"),
    Column("Forecast", drop=8, spare=True),
)


def licenses_table(views: Sequence[LicenseView], group_name: Callable[[GroupId], str],
                   title: str | None = None) -> Table | LongTable:
    return fitted_table(LICENSE_COLUMNS, (
        (
            str(v.public_id),
            v.product,
            v.license_type.name,
            f"{v.used_units}/{v.units}",
            _expires(v),
            v.owner,
            group_name(v.group),
            ", ".join(sorted(v.tags)),
            status_text(v),
            forecast_text(v),
        )
        for v in views
    ), title=title)


def forecast_text(view: LicenseView) -> str:
    """The forecast column (R36): the depletion day and the trend, or why there is none."""
    f = view.forecast
    if f is None:
        return "-"
    if not f.enough_data:
        return f"not enough data ({f.based_on_days} d)"
    trend = f"{f.trend_per_day:+.2f}/day" if f.trend_per_day is not None else ""
    if f.depletion is None:
        return f"no depletion ({trend})"
    return f"{f.depletion.isoformat()} ({trend})"


def _group_namer(app: LicenseManagement) -> Callable[[GroupId], str]:
    cache: dict[GroupId, str] = {}

    def name(group: GroupId) -> str:
        if group not in cache:
            cache[group] = app.group_name(group)
        return cache[group]

    return name


# -- a fast start -------------------------------------------------------------------------
#
# Typer (0.2x) coerces every parameter's value through a pydantic TypeAdapter it
# builds on first use, even for a parameter left out, and importing pydantic
# costs more than the rest of the command line's parsing. The groups below give
# each parameter a coercion that builds Typer's own only for a value that needs
# it, and does without it for ``str`` and ``list[str]`` values (nearly every
# parameter here), whose coercion is ``str(value)``. So pydantic is imported only
# when a number, an enum or a path is given.


@functools.cache
def _deferred_coercion() -> type | None:
    """A Typer ``RuntimeParam`` as described above; None if this Typer has none
    (then Typer does as it always does)."""
    from dataclasses import dataclass

    try:
        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # pragma: no cover - another Typer
        return None

    @dataclass(frozen=True)
    class DeferredCoercion(RuntimeParam):
        #: the value is a str or a list of str, taken as they are (no parser, no file)
        plain: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.plain:
                if self.annotation is str:
                    return _cli_str(value)
                items = value if isinstance(value, list | tuple) else [value]
                return [_cli_str(item) for item in items]
            typer_own = build_runtime_param(param.type_descriptor)
            param._runtime_param = typer_own
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    return DeferredCoercion


def _cli_str(value: Any) -> str:
    """What Typer makes of a str parameter's value."""
    if not isinstance(value, bytes):
        return str(value)
    from typer._click._compat import _get_argv_encoding

    encoding = _get_argv_encoding()
    try:
        return value.decode(encoding)
    except UnicodeError:
        fs_encoding = sys.getfilesystemencoding()
        if fs_encoding != encoding:
            with contextlib.suppress(UnicodeError):
                return value.decode(fs_encoding)
        return value.decode("utf-8", "replace")


def _defer_coercion(command: Any, ctx: Any) -> None:
    """Give the Typer parameters of ``command`` (its --help too) the coercion above."""
    deferred = _deferred_coercion()
    if deferred is None:
        return
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not a Typer parameter, or its coercion is there already
        annotation = descriptor.annotation
        info = descriptor.parameter_info
        plain = (
            (annotation is str or annotation == list[str])
            and descriptor.file_annotation is None
            and getattr(info, "parser", None) is None
            and getattr(info, "click_type", None) is None
        )
        param._runtime_param = deferred(parameter_info=info, annotation=annotation, plain=plain)


class _Group(typer.core.TyperGroup):
    """A Typer group whose parameters, and its commands', defer their coercion."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _defer_coercion(self, ctx)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _add_global_options(command)
            _defer_coercion(command, ctx)
        return name, command, rest


# -- the application ------------------------------------------------------------------

app = typer.Typer(
    cls=_Group,
    name="esmc-licensing",
    help="Manage software licenses: pools, branch administrators, status and history.\n\n"
         "With no vendor URL configured (ESMC_ACTIVATION_URL, ESMC_ACCOUNTS_URL, ... or "
         "a TOML file: --config, ./esmc-licensing.toml) it talks to an in-memory demo "
         "vendor. Secrets (account passwords, the seal key) come only from the "
         "environment or a credentials file with mode 0600, never from the command line. "
         "Exit codes: 0 done, 1 refused by a rule, 2 bad input, 3 store or adapter "
         "unavailable, 4 internal error. "
         "See docs/cli.md.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
tag_app = typer.Typer(help="Create, list, delete, assign and unassign tags.",
                      no_args_is_help=True, cls=_Group)
app.add_typer(tag_app, name="tag")


def _show_version(shown: bool) -> None:
    if shown:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"esmc-licensing {version('esmc-licensing')}")
        except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
            typer.echo("esmc-licensing (not installed: version unknown)")
        raise typer.Exit()


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
    config: Annotated[str | None, typer.Option(
        "--config", envvar="ESMC_CONFIG", metavar="PATH",
        help="A TOML file with the vendor URLs (default ./esmc-licensing.toml if present; "
             "without vendor URLs the in-memory demo vendor is used). No secrets in it.",
    )] = None,
    credentials: Annotated[str | None, typer.Option(
        "--credentials", envvar="ESMC_CREDENTIALS_FILE", metavar="PATH",
        help="A TOML file with account passwords and the seal key; must have mode 0600.",
    )] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only results and errors, not what was done.",
    )] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of tables and sentences (any command).",
    )] = False,
    no_pager: Annotated[bool, typer.Option(
        "--no-pager", help="Never page long output through $PAGER.",
    )] = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version,
        help="Print the version and exit.",
    )] = False,
) -> None:
    _QUIET[0] = quiet
    _NO_PAGER[0] = no_pager
    ctx.obj = Session(store, as_user, debug, config, credentials)
    ctx.obj.json = json_
    ctx.obj.queries_only = ctx.invoked_subcommand in QUERY_COMMANDS


# -- the global options after the command -------------------------------------------------
#
# ``esmc-licensing licenses --store x.db --as John`` is the same as
# ``esmc-licensing --store x.db --as John licenses``: every command (and command
# group) is given copies of the root's options, which change the session the
# root made instead of reaching the command's function. Click parses them, so
# an option's value is never taken for another option.


def _global_template(
    store: Annotated[str | None, typer.Option(
        "--store", metavar="STORE",
        help="The store (as before the command): a SQLite file, a postgresql:// URL, "
             "':memory:' or KEY=VALUE settings.")] = None,
    as_user: Annotated[str | None, typer.Option(
        "--as", metavar="USER", help="Act as this user (as before the command).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", metavar="PATH", help="The TOML vendor settings (as before the command).")
    ] = None,
    credentials: Annotated[str | None, typer.Option(
        "--credentials", metavar="PATH",
        help="The credentials file, mode 0600 (as before the command).")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks and the library's log on stderr.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only results and errors, not what was done.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of tables and sentences.")] = False,
    no_pager: Annotated[bool, typer.Option(
        "--no-pager", help="Never page long output through $PAGER.")] = False,
) -> None:
    """The options every command takes after its name too."""


@functools.cache
def _global_options() -> tuple[Any, ...]:
    template = typer.Typer(add_completion=False)
    template.command()(_global_template)
    return tuple(typer.main.get_command(template).params)


def _apply_global(ctx: Any, param: Any, value: Any) -> Any:
    """A global option given after the command: it changes the root's session."""
    session = ctx.find_object(Session)
    if session is None or value is None or value is False:
        return value
    if param.name == "store":
        session.store = value
    elif param.name == "as_user":
        session.user_name = value
    elif param.name == "config":
        session.config_file = value
    elif param.name == "credentials":
        session.credentials_file = value
    elif param.name == "debug":
        session.debug = True
    elif param.name == "quiet":
        _QUIET[0] = True
    elif param.name == "json_":
        session.json = True
    elif param.name == "no_pager":
        _NO_PAGER[0] = True
    return value


def _add_global_options(command: Any) -> None:
    """Give ``command`` the global options it does not have (its own --json stays)."""
    taken = {opt for p in command.params for opt in getattr(p, "opts", ())}
    for template in _global_options():
        if taken.intersection(template.opts):
            continue
        option = copy.copy(template)
        option.expose_value = False
        option.callback = _apply_global
        command.params.append(option)


#: commands that only read: on a store that does not exist they fail (exit 3)
#: instead of creating an empty one and answering "nothing"
QUERY_COMMANDS = frozenset({
    "licenses", "license", "pools", "history", "filters", "computers", "computer",
    "task", "groups", "users", "permissions", "installer", "accounts",
})



JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", metavar="WHEN",
    help="As it was at this date, date-time (UTC) or log position.")]
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


def seal_key_beside(store: Store) -> Path | None:
    """The demo's seal key file beside a SQLite store (None for other stores)."""
    if store.sqlite_path is None:
        return None
    path = Path(store.sqlite_path)
    return path.with_name(path.name + ".seal-key")


def _demo_seal_key(session: Session, store: Store) -> Path | None:
    """Create the demo's seal key file when no seal key is configured at all."""
    beside = seal_key_beside(store)
    if beside is None or beside.exists() or session.seal_env(store):
        return None
    if os.environ.get(SEAL_KEY_VARIABLE) or os.environ.get(SEAL_KEY_FILE_VARIABLE):
        return None
    from .keyring import create_key_file

    assert store.sqlite_path is not None
    if not _store_access(Path(store.sqlite_path)):  # the store's own message first
        return None
    create_key_file(beside, "seal")
    return beside


@app.command()
@handled
def demo(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Play the branch-administrator story on the store and show what each user sees
    (as --as, which must be an administrator: the story creates users and groups)."""
    session = _session(ctx)
    store = parse_store(session.store)
    cfg = session.config
    if not cfg.uses_demo_vendor:
        raise ConfigError(
            f"demo plays its story with the built-in demo vendor, but a vendor is "
            f"configured ({cfg.describe()}): run it without the vendor settings "
            "(ESMC_ACTIVATION_URL, the accounts URLs, --config), on a store of its own "
            "(--store demo.db)"
        )
    new_store = store.sqlite_path is not None and (
        not Path(store.sqlite_path).exists() or Path(store.sqlite_path).stat().st_size == 0
    )
    if not new_store:
        _refuse_unless_demo_store(session.app, session.actor, store)
    created = _demo_seal_key(session, store) if new_store else None
    lm = session.app
    admin = session.actor  # it acts as who it is told to, never above that
    vendor = lm._core.adapters.activation_server
    done: list[str] = []
    added: set[str] = set()
    if not json_:
        _say(f"Branch-administrator demo on {store.description}")

    def tell(message: str) -> None:
        done.append(message)
        if not json_:
            _say(f"  {message}")

    if created is not None:
        tell(f"created the seal key file {created} (mode 0600): every save is sealed "
             "with it; keep it, or a copy, away from the store in real use")
    for user, branch, permission in DEMO_BRANCHES:
        try:
            gid = lm.group_named(branch)
        except NotFound:
            gid = lm.create_group(admin, branch)
            tell(f"created static group {branch}")
        try:
            uid = lm.user_named(user)
        except NotFound:
            uid = lm.create_user(admin, user, gid)
            tell(f"created user {user} (home group {branch})")
        lm.grant(admin, uid, gid, permission)
    for d in DEMO_LICENSES:
        if not d.in_demo:
            continue
        key = vendor.key_of(d.public_id)  # type: ignore[attr-defined]
        before = lm.position
        pid = lm.add_license_key(admin, key)
        if lm.position != before:
            added.add(d.public_id)
            tell(f"added license {pid} ({d.product}, owner {d.owner}) by its key")
    # only the pools this run added are distributed: a second run leaves where
    # an administrator has since moved them
    for d in DEMO_LICENSES:
        if d.public_id in added and d.branch is not None:
            view = lm.license(admin, d.public_id)
            target = lm.group_named(d.branch)
            if view.group != target:
                lm.move_pools(admin, [view.pool_id], target)
                tell(f"moved pool {d.owner} to {d.branch}")
    _demo_views(lm, store, done, json_)


def _refuse_unless_demo_store(lm: LicenseManagement, actor: UserId, store: Store) -> None:
    """Refuse, before anything is written, a store that holds more than the demo's
    own groups, users and licenses (a real installation, or a demo store someone
    has since built on)."""
    branches = {branch for _, branch, _ in DEMO_BRANCHES}
    people = {"Administrator"} | {user for user, _, _ in DEMO_BRANCHES}
    licenses = {d.public_id for d in DEMO_LICENSES}
    foreign = (
        [f"group {g.path}" for g in lm.groups(actor) if g.parent is not None
         and g.name not in branches]
        + [f"user {u.name}" for u in lm.users(actor) if u.name not in people]
        + [f"license {pid}" for p in lm.pools(actor) for pid in sorted(map(str, p.public_ids))
           if pid not in licenses]  # pools, not licenses: no statuses or forecasts made
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise InvalidInput(
            f"demo runs only on a new store or one it created, and {store.description} "
            f"holds more ({shown}); nothing was changed: run it on a store of its own, "
            "e.g. esmc-licensing --store demo.db demo"
        )


def _demo_views(lm: LicenseManagement, store: Store, done: list[str], json_: bool) -> None:
    """What each user of the demo sees (as tables, or JSON with what was done)."""
    names = _group_namer(lm)
    people = [("Administrator", "All", Permission.WRITE), *DEMO_BRANCHES]
    seen = {user: lm.licenses(lm.user_named(user)) for user, _, _ in people}
    spare = [d.public_id for d in DEMO_LICENSES if not d.in_demo]
    if json_:
        _print_json({"store": store.description, "done": done,
                     "sees": {user: [str(v.public_id) for v in views]
                              for user, views in seen.items()},
                     "spare": spare})
        return
    console = _console()
    for user, home, permission in people:
        views = seen[user]
        console.print()
        console.print(licenses_table(
            views, names,
            title=f"{user} (home group {home}, {permission.name} on {home}) "
                  f"sees {len(views)} license(s)",
        ))
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
    depleting_within: Annotated[int | None, typer.Option(
        "--depleting-within", metavar="DAYS",
        help="Only licenses forecast to reach their units within DAYS days.")] = None,
    as_of: AsOfOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
) -> None:
    """The licenses you may see, with status and forecast (filter with the options)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    license_filter = _filter(level, reason, tag, type_, product, text)
    if depleting_within is not None:
        license_filter = attrs.evolve(license_filter, depleting_within=depleting_within)
    if saved is not None:
        presets = lm.filters(actor)
        preset = next((f for n, f in presets.items() if n.casefold() == saved.casefold()), None)
        if preset is None:
            raise NotFound("saved filter", saved)
        license_filter = _merge(preset, license_filter)
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        views = lm.licenses(actor, license_filter, as_of=when)
    names = _group_namer(lm)
    views, note = _limited(views, limit)
    if json_:
        _print_json([to_jsonable(v, names) for v in views])
        return
    if not views:
        _say(f"No licenses visible to {session.user_name} match.")
        return
    _show(licenses_table(views, names), note=note)


def _as_of(session: Session, value: str | None, json_: bool = False,
           empty: Any = ()) -> datetime | int | None:
    """``--as-of``: a date, a date-time or a log position (R30). Before the first
    event it says "nothing was recorded before …" and ends the command (exit 0)."""
    if value is None:
        return None
    text = value.strip()
    lm = session.app
    moment: datetime | int | None
    if text.isdigit():
        moment = int(text)
        nothing = moment < 1 or lm.position == 0
        said = f"log position {moment}"
    else:
        moment = _when(text, "--as-of", end_of_day=True)
        first = lm.first_recorded()
        nothing = first is None or moment is None or moment < first
        said = f"{text}" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    if nothing:
        message = f"Nothing was recorded before {said}."
        if json_:
            typer.echo(message, err=True)
            _print_json(list(empty) if isinstance(empty, tuple) else empty)
        else:
            _say(message)
        raise typer.Exit(EXIT_OK)
    return moment


@contextmanager
def _replaying(session: Session, moment: datetime | int | None) -> Iterator[None]:
    """A user who did not exist yet at ``moment``: say so by name, not by id."""
    try:
        yield
    except NotFound as e:
        if moment is None or e.kind != "user":
            raise
        at = f"log position {moment}" if isinstance(moment, int) else f"{moment:%Y-%m-%d %H:%M} UTC"
        raise NotFound("user", f"{session.user_name} (as of {at})") from None


def _merge(a: LicenseFilter, b: LicenseFilter) -> LicenseFilter:
    return LicenseFilter(
        levels=a.levels + b.levels,
        reasons=a.reasons + b.reasons,
        tags=a.tags + b.tags,
        types=a.types + b.types,
        products=a.products + b.products,
        text=b.text if b.text is not None else a.text,
        depleting_within=(
            b.depleting_within if b.depleting_within is not None else a.depleting_within
        ),
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
    when = _as_of(session, as_of, json_, None)
    with _replaying(session, when):
        view = lm.license(actor, PublicId(public_id), as_of=when)
    names = _group_namer(lm)
    if json_:
        _print_json(to_jsonable(view, names))
        return
    table = _table(show_header=False, title=f"License {view.public_id}", title_justify="left")
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
        ("Key", "-" if view.key_last4 is None else (
            f"XXXX-XXXX-XXXX-XXXX-{view.key_last4}" if view.key_last4
            else "(unavailable: its data key is not configured)")),
    ]
    if view.status.registration_url:
        rows.append(("Register at", view.status.registration_url))
    for field, value in rows:
        table.add_row(field, value)
    _console().print(table)


@app.command()
@handled
def pools(
    ctx: typer.Context,
    tag: TagOption = None,
    as_of: AsOfOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
) -> None:
    """The license pools you may see and the group each lives in (--tag filters)."""
    session = _session(ctx)
    lm = session.app
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        all_views: list[PoolView] = lm.pools(session.actor, tags=tag or (), as_of=when)
    names = _group_namer(lm)
    views, note = _limited(all_views, limit)
    if json_:
        _print_json([to_jsonable(v, names) for v in views])
        return
    if not views:
        _say(f"No license pools visible to {session.user_name}.")
        return
    _show(fitted_table(
        (Column("Pool"), Column("Pool ID", no_wrap=True), Column("Group", drop=2),
         Column("Source", drop=3, spare=True), Column("Licenses", drop=1),
         Column("Tags", drop=4, spare=True)),
        ((v.name, str(v.pool_id), names(v.group), v.source.name,
          ", ".join(str(p) for p in v.public_ids), ", ".join(sorted(v.tags))) for v in views),
    ), note=note)


@app.command()
@handled
def history(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="A Public ID, a pool (id or name) or a computer.")],
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="From this date or date-time (UTC).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="WHEN", help="Up to this date (inclusive) or date-time.")] = None,
    as_of: AsOfOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
) -> None:
    """What happened to a license, pool or computer: when, by whom, what."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    start = _when(since, "--since")
    end = _when(until, "--until", end_of_day=True)
    moment = _as_of(session, as_of, json_)
    entries: list[HistoryEntry] = _history_of(lm, actor, target)
    entries = [
        e for e in entries
        if (start is None or e.when >= start) and (end is None or e.when <= end)
        and (moment is None or (e.position <= moment if isinstance(moment, int)
                                else e.when <= moment))
    ]
    entries, note = _limited(entries, limit)
    if json_:
        _print_json([to_jsonable(e) for e in entries])
        return
    if not entries:
        _say("Nothing happened in that period.")
        return
    names = _group_namer(lm)

    def shown(key: str, value: Any, all_: Mapping[str, Any]) -> str:
        # the name recorded beside an id (R29) stands for it in the table
        name = all_.get(f"{key.removesuffix('_id')}_name")
        if name:
            return str(name)
        if key in _GROUP_DETAILS and isinstance(value, str):
            with contextlib.suppress(LicensingError, ValueError):
                return names(GroupId(value))
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)

    def beside(key: str, all_: Mapping[str, Any]) -> bool:
        base = key.removesuffix("_name")
        return key.endswith("_name") and (base in all_ or f"{base}_id" in all_)

    rows = []
    for e in entries:
        d = e.details
        details = ", ".join(
            f"{k}={shown(k, v, d)}" for k, v in d.items()
            if v not in ("", None) and not beside(k, d)
        )
        rows.append((e.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), e.actor_name,
                     e.what, details))
    _show(fitted_table(
        (Column("When (UTC)"), Column("Who"), Column("What"), Column("Details")),
        rows, title=f"History of {target}"), note=note)


def _history_of(lm: LicenseManagement, actor: UserId, text: str) -> list[HistoryEntry]:
    """A license's, a pool's or else a computer's history (removed computers keep theirs)."""
    try:
        return lm.history(actor, _target(lm, actor, text))
    except NotFound:
        if _PUBLIC_ID_SHAPE.fullmatch(text):
            raise
        try:
            cid = ComputerId(uuid.UUID(text.strip()))
        except ValueError:
            try:
                cid = _computer(lm, actor, text)
            except (NotFound, InvalidInput):
                raise NotFound("license pool or computer", text) from None
        return lm.history(actor, cid)


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
def filters(ctx: typer.Context, as_of: AsOfOption = None, limit: LimitOption = None,
            json_: JsonOption = False) -> None:
    """Your saved license filters (apply one with licenses --filter NAME)."""
    session = _session(ctx)
    when = _as_of(session, as_of, json_, {})
    with _replaying(session, when):
        presets = session.app.filters(session.actor, as_of=when)
    shown, note = _limited(sorted(presets.items()), limit)
    if json_:
        _print_json({name: to_jsonable(f) for name, f in shown})
        return
    if not presets:
        _say("No saved filters; create one with save-filter.")
        return
    _show(fitted_table((Column("Name"), Column("Shows")),
                       ((name, _describe(f)) for name, f in shown)), note=note)


@app.command()
@handled
def groups(ctx: typer.Context, as_of: AsOfOption = None, limit: LimitOption = None,
           json_: JsonOption = False) -> None:
    """The static groups you see, by path (All/San Diego)."""
    session = _session(ctx)
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        views, note = _limited(session.app.groups(session.actor, as_of=when), limit)
    if json_:
        _print_json([
            {"group_id": str(g.group_id), "name": g.name, "path": g.path,
             "parent": None if g.parent is None else str(g.parent)}
            for g in views
        ])
        return
    _show(fitted_table((Column("Group"), Column("Group ID", no_wrap=True)),
                       ((_text(g.path), str(g.group_id)) for g in views)), note=note)


def _grants_json(grants: Mapping[GroupId, Permission], paths: Mapping[GroupId, str]) -> Any:
    return {paths.get(g, str(g)): p.name for g, p in sorted(
        grants.items(), key=lambda item: paths.get(item[0], str(item[0])).casefold())}


@app.command()
@handled
def users(ctx: typer.Context, as_of: AsOfOption = None, limit: LimitOption = None,
          json_: JsonOption = False) -> None:
    """The users of the groups you see, with the permissions granted to them."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        paths = {g.group_id: g.path for g in lm.groups(actor, as_of=when)}
        views, note = _limited(lm.users(actor, as_of=when), limit)
    if json_:
        _print_json([
            {"user_id": str(u.user_id), "name": u.name,
             "home_group": paths.get(u.home_group, str(u.home_group)),
             "grants": _grants_json(u.grants, paths)}
            for u in views
        ])
        return
    rows = []
    for u in views:
        granted = ", ".join(f"{p} on {g}" for g, p in _grants_json(u.grants, paths).items())
        rows.append((_text(u.name), _text(paths.get(u.home_group, "-")), _text(granted or "-")))
    _show(fitted_table((Column("User"), Column("Home group"), Column("Granted")), rows),
          note=note)


@app.command()
@handled
def permissions(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="A user name or id.")],
    as_of: AsOfOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
) -> None:
    """What a user may do on each group you see: granted there, or inherited
    from a grant on a group above."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    wanted = _named_user(lm, actor, user)
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        paths = {g.group_id: g.path for g in lm.groups(actor, as_of=when)}
        view = next((u for u in lm.users(actor, as_of=when) if u.user_id == wanted), None)
    if view is None:
        raise NotFound("user", user)
    rows = []
    for g, p in sorted(view.effective.items(), key=lambda i: paths.get(i[0], "").casefold()):
        inherited = g not in view.grants
        rows.append((paths.get(g, str(g)), p.name, inherited))
    rows, note = _limited(rows, limit)
    if json_:
        _print_json([{"group": g, "permission": p, "inherited": i} for g, p, i in rows])
        return
    if not rows:
        _say(f"{view.name} has no permission on the groups you see.")
        return
    _show(fitted_table(
        (Column("Group"), Column("Permission", no_wrap=True), Column("How")),
        ((_text(path), level, "inherited from a group above" if inherited else "granted here")
         for path, level, inherited in rows)), note=note)


@app.command()
@handled
def revoke(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="A user name or id.")],
    group: Annotated[str, typer.Argument(
        metavar="GROUP", help="The group the permission was granted on.")],
    json_: JsonOption = False,
) -> None:
    """Take back the permission granted to a user on a group (administrators).

    What the user holds there through a grant on a group above stays: revoke
    that one instead (see permissions USER)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    uid, gid = _named_user(lm, actor, user), _group(lm, actor, group)
    held = next((u.grants for u in lm.users(actor) if u.user_id == uid), {})
    lm.revoke(actor, uid, gid)
    data = {"user": user.strip(), "user_id": str(uid), "group": _group_path(lm, actor, gid),
            "group_id": str(gid), "revoked": held[gid].name if gid in held else None}
    _done(json_, data, f"Revoked {held[gid].name} on {group} from {user}." if gid in held
          else f"{user} had no permission granted on {group}; nothing changed.")


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
    json_: JsonOption = False,
) -> None:
    """Save the filter options as a named preset (see `filters`)."""
    session = _session(ctx)
    f = _filter(level, reason, tag, type_, product, text)
    session.app.save_filter(session.actor, name, f)
    _done(json_, {"name": name.strip(), "filter": to_jsonable(f)},
          f"Saved filter {name.strip()}: {_describe(f)}.")


@app.command("create-group")
@handled
def create_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    parent: Annotated[str | None, typer.Option(
        "--parent", metavar="GROUP", help="The parent group (default: All).")] = None,
    json_: JsonOption = False,
) -> None:
    """Create a static group (under All, or --parent)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    parent_id = None if parent is None else _group(lm, actor, parent)
    gid = lm.create_group(actor, name, parent_id)
    _done(json_, {"group_id": str(gid), "name": name.strip(),
                  "path": _group_path(lm, actor, gid)},
          f"Created static group {name.strip()} under {parent or 'All'}.")


@app.command("create-user")
@handled
def create_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    home: Annotated[str, typer.Option("--home", metavar="GROUP", help="The home group.")],
    json_: JsonOption = False,
) -> None:
    """Create a user with a home group; grant permissions with `grant`."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    gid = _group(lm, actor, home)
    uid = lm.create_user(actor, name, gid)
    _done(json_, {"user_id": str(uid), "name": name.strip(),
                  "home_group": _group_path(lm, actor, gid), "home_group_id": str(gid)},
          f"Created user {name.strip()} with home group {home}.")


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
    json_: JsonOption = False,
) -> None:
    """Grant a user a permission on licenses in a group and its subgroups."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    uid, gid = _named_user(lm, actor, user), _group(lm, actor, group)
    lm.grant(actor, uid, gid, Permission[permission.value])
    _done(json_, {"user": user.strip(), "user_id": str(uid),
                  "group": _group_path(lm, actor, gid), "group_id": str(gid),
                  "permission": permission.value},
          f"{user} has {permission.value} (at least) on licenses in {group}.")


def _read_key(key: str | None, key_file: Path | None) -> str:
    """The license key: from stdin (``-``), from a file, or asked for without echo.

    Never from the command line: an argument is seen by every user of the
    machine (``ps``) and kept in shell history (R2). It is refused without being
    repeated.
    """
    if key is not None and key != "-":
        raise InvalidInput(
            "a license key is not taken from the command line (other users see it in "
            "the process list, and it stays in shell history): give it on stdin with "
            "'add-key -', from a file with 'add-key --file PATH', or run 'add-key' "
            "to be asked for it"
        )
    if key_file is not None:
        if key == "-":
            raise InvalidInput("give the license key on stdin (-) or with --file, not both")
        lines = _read_file_arg(str(key_file)).decode("utf-8", "replace").splitlines()
    elif key is None and sys.stdin.isatty():
        return str(typer.prompt("License key", hide_input=True))
    else:
        lines = list(sys.stdin)
    for line in lines:
        if line.strip():
            return line.strip()
    raise InvalidInput("no license key " + ("in the file" if key_file else "on stdin"))


@app.command("add-key")
@handled
def add_key(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(
        metavar="-", help="- to read the key from stdin (omitted: asked for without echo). "
                          "The key itself is never taken as an argument.")] = None,
    key_file: Annotated[Path | None, typer.Option(
        "--file", metavar="PATH", help="Read the license key from this file.")] = None,
    json_: JsonOption = False,
) -> None:
    """Add a license by its key; the key is never printed."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    secret = _read_key(key, key_file)
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
    _console().print(_text("Status: ").append(status_text(view)))


def _pools_arg(lm: LicenseManagement, actor: UserId, pools: list[str]) -> list[PoolId]:
    return [_pool(lm, actor, p) for p in pools]


@app.command()
@handled
def move(
    ctx: typer.Context,
    pools: Annotated[list[str], typer.Argument(
        metavar="POOL...", help="Pools by id, id prefix or name.")],
    to: Annotated[str, typer.Option("--to", metavar="GROUP", help="The target group.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show who would gain or lose which licenses, and which "
        "activations would use a license outside their computer's group; move nothing.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Move license pools to a static group (administrators)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    ids = _pools_arg(lm, actor, pools)
    target = _group(lm, actor, to)
    if dry_run:
        _print_impact(lm, actor, lm.preview_move(actor, ids, target), to, json_)
        return
    lm.move_pools(actor, ids, target)
    _done(json_, {"moved": [str(i) for i in ids], "to_group": _group_path(lm, actor, target),
                  "to_group_id": str(target)},
          f"Moved {len(ids)} license pool(s) to {to}.")


def _print_impact(
    lm: LicenseManagement, actor: UserId, impact: MoveImpact, to: str, as_json: bool
) -> None:
    names = {u.user_id: u.name for u in lm.users(actor)}  # moving is for administrators
    computers = {c: lm.computer(actor, c).name for c in impact.activations_outside}

    def by_user(side: Mapping[UserId, frozenset[PublicId]]) -> dict[str, list[str]]:
        ordered = sorted(side, key=lambda u: names.get(u, str(u)))
        return {names.get(u, str(u)): sorted(map(str, side[u])) for u in ordered}

    gains, loses = by_user(impact.gains), by_user(impact.loses)
    outside = {
        computers[c]: sorted(map(str, impact.activations_outside[c]))
        for c in sorted(impact.activations_outside, key=lambda c: computers[c])
    }
    data = {
        "to_group": to,
        "pools": [str(p) for p in impact.pool_ids],
        "gains": gains,
        "loses": loses,
        "activations_outside": outside,
    }
    if as_json:
        _print_json(data)
        return
    if impact.changes_nothing:
        _say(f"Moving {len(impact.pool_ids)} license pool(s) to {to} would change nothing.")
        return
    _say(f"Moving {len(impact.pool_ids)} license pool(s) to {to} would (nothing moved yet):")
    for label, side in (("gain", gains), ("lose", loses)):
        for name, pids in side.items():
            _say(f"  {name} would {label} {', '.join(pids)}")
    for name, pids in outside.items():
        _say(f"  computer {name} would use {', '.join(pids)} from outside its group")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


YesOption = Annotated[bool, typer.Option(
    "--yes", "-y", help="Do it without asking for confirmation.")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be done; change nothing.")]


def _confirm(yes: bool, question: str, what: str) -> None:
    """Ask ``question`` on a terminal unless --yes; without a terminal (cron, a
    pipe) refuse, saying that --yes is needed. Nothing is recorded either way."""
    if yes:
        return
    if not _stdin_is_tty():
        raise ConfirmationRequired(
            f"{what} needs confirmation and there is no terminal to ask on: run again with "
            "--yes (or --dry-run to see what it would do); nothing was changed"
        )
    if not typer.confirm(question, default=False):
        raise ConfirmationRequired("not confirmed; nothing was changed")


@app.command()
@handled
def remove(
    ctx: typer.Context,
    pools: Annotated[list[str], typer.Argument(
        metavar="POOL...", help="Pools by id, id prefix or name.")],
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
) -> None:
    """Remove license pools and their licenses (administrators).

    Asks for confirmation on a terminal; without a terminal it needs --yes.
    Products activated with the licenses stay activated.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    ids = list(dict.fromkeys(_pools_arg(lm, actor, pools)))
    # the library checks everything else first, then asks for confirmation
    with contextlib.suppress(ConfirmationRequired):
        lm.remove_pools(actor, ids, confirm=False)
    views = {v.pool_id: v for v in lm.pools(actor)}
    public_ids = sorted(str(p) for i in ids if i in views for p in views[i].public_ids)
    names = ", ".join(views[i].name for i in ids if i in views)
    data = {"pools": [str(i) for i in ids], "public_ids": public_ids, "dry_run": dry_run}
    if dry_run:
        _done(json_, data, f"Would remove {len(ids)} license pool(s) ({names}) with "
              f"{len(public_ids)} license(s): {', '.join(public_ids) or '-'}; nothing removed.")
        return
    _confirm(yes, f"Remove {len(ids)} license pool(s) ({names}) with {len(public_ids)} "
             "license(s)? Products activated with them stay activated",
             f"removing {len(ids)} license pool(s) ({names}) with {len(public_ids)} license(s)")
    lm.remove_pools(actor, ids, confirm=True)
    _done(json_, data, f"Removed {len(ids)} license pool(s).")


@tag_app.command("create")
@handled
def tag_create(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")],
               json_: JsonOption = False) -> None:
    """Create a tag."""
    session = _session(ctx)
    session.app.create_tag(session.actor, name)
    _done(json_, {"tag": name.strip()}, f"Created tag {name.strip()}.")


@tag_app.command("list")
@handled
def tag_list(ctx: typer.Context, as_of: AsOfOption = None, limit: LimitOption = None,
             json_: JsonOption = False) -> None:
    """The tag catalogue (shared by every user)."""
    session = _query_session(ctx)
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        names, note = _limited(session.app.tags(session.actor, as_of=when), limit)
    if json_:
        _print_json(names)
    elif not names:
        _say("No tags; create one with tag create NAME.")
    else:
        from rich.text import Text

        # the answer itself: printed under --quiet too
        _show(*(Text(escape_controls(n), no_wrap=True) for n in names), note=note)


@tag_app.command("delete")
@handled
def tag_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")],
               yes: YesOption = False, dry_run: DryRunOption = False,
               json_: JsonOption = False) -> None:
    """Delete a tag; it is unassigned everywhere (administrators).

    Asks for confirmation on a terminal; without a terminal it needs --yes.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    tag = name.strip()
    known = {t.casefold(): t for t in lm.tags(actor)}
    tag = known.get(tag.casefold(), tag)
    try:  # the library's own refusals, before a question or a preview
        lm.delete_tag(actor, tag, dry_run=True)
    except NotFound as e:
        raise _did_you_mean(e, tag, known.values(), "esmc-licensing tag list") from None
    pools_ = [str(p.pool_id) for p in lm.pools(actor, tags=[tag])]
    licenses_ = [str(v.public_id) for v in lm.licenses(actor, LicenseFilter(tags=[tag]))]
    computers = [str(c.computer_id) for c in lm.computers(actor, tags=[tag])]
    data = {"tag": tag, "pools": pools_, "public_ids": licenses_, "computers": computers,
            "dry_run": dry_run}
    tagged = (f"{len(licenses_)} license(s), {len(pools_)} pool(s) and {len(computers)} "
              "computer(s) you see")
    if dry_run:
        _done(json_, data, f"Would delete tag {tag}, unassigning it from {tagged}; "
              "nothing deleted.")
        return
    _confirm(yes, f"Delete tag {tag}? It is unassigned from {tagged}",
             f"deleting tag {tag} (on {tagged})")
    lm.delete_tag(actor, tag)
    _done(json_, data, f"Deleted tag {tag}.")


filter_app = typer.Typer(help="Delete saved license filters (list them with `filters`).",
                         no_args_is_help=True, cls=_Group)
app.add_typer(filter_app, name="filter")


@filter_app.command("delete")
@handled
def filter_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")],
                  json_: JsonOption = False) -> None:
    """Delete one of your saved filters."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    saved = {n.casefold(): n for n in lm.filters(actor)}
    wanted = saved.get(name.strip().casefold())
    if wanted is None:
        raise _did_you_mean(NotFound("saved filter", name.strip()), name, saved.values(),
                            "esmc-licensing filters")
    lm.delete_filter(actor, wanted)
    _done(json_, {"deleted": wanted}, f"Deleted filter {wanted}.")


TargetArg = Annotated[str, typer.Argument(
    metavar="TARGET", help="A Public ID, or a pool (id, id prefix or name).")]


@tag_app.command("assign")
@handled
def tag_assign(ctx: typer.Context, target: TargetArg,
               name: Annotated[str, typer.Argument(metavar="NAME")],
               json_: JsonOption = False) -> None:
    """Tag a license or a pool (WRITE on its group)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    what = _target(lm, actor, target)
    lm.assign_tag(actor, what, name)
    _done(json_, _tagged(what, name), f"Tagged {target} with {name.strip()}.")


def _tagged(target: PublicId | PoolId, name: str) -> dict[str, str]:
    key = "public_id" if isinstance(target, PublicId) else "pool_id"
    return {key: str(target), "tag": name.strip()}


@tag_app.command("unassign")
@handled
def tag_unassign(ctx: typer.Context, target: TargetArg,
                 name: Annotated[str, typer.Argument(metavar="NAME")],
                 json_: JsonOption = False) -> None:
    """Remove a tag from a license or a pool (WRITE on its group)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    what = _target(lm, actor, target)
    lm.unassign_tag(actor, what, name)
    _done(json_, _tagged(what, name), f"Removed tag {name.strip()} from {target}.")


# -- alerts (R35) ----------------------------------------------------------------------------

alerts_app = typer.Typer(
    help="Alerts: licenses entering or leaving a condition; `alerts deliver` sends them.",
    invoke_without_command=True, cls=_Group,
)
app.add_typer(alerts_app, name="alerts")

#: the environment naming the alert sinks of ``alerts deliver`` (the secret: environment only)
ALERT_SINK_VARIABLES = (
    "ESMC_ALERT_WEBHOOK_URL", "ESMC_ALERT_WEBHOOK_SECRET", "ESMC_ALERT_SMTP_HOST",
    "ESMC_ALERT_SMTP_PORT", "ESMC_ALERT_SMTP_FROM", "ESMC_ALERT_SMTP_TO",
)


def alert_sinks(environ: Mapping[str, str]) -> list[Any]:
    """The alert sinks the environment configures: a webhook (URL and signing
    secret) and/or e-mail (SMTP host, port, sender, recipients)."""
    from .adapters.alert_sinks import SmtpAlertSink, WebhookAlertSink

    sinks: list[Any] = []
    url = environ.get("ESMC_ALERT_WEBHOOK_URL", "").strip()
    if url:
        secret = environ.get("ESMC_ALERT_WEBHOOK_SECRET", "")
        if not secret:
            raise InvalidInput(
                "ESMC_ALERT_WEBHOOK_URL is set but ESMC_ALERT_WEBHOOK_SECRET is not: "
                "the webhook signs its alerts with that secret"
            )
        sinks.append(WebhookAlertSink(url, secret))
    host = environ.get("ESMC_ALERT_SMTP_HOST", "").strip()
    if host:
        port_text = environ.get("ESMC_ALERT_SMTP_PORT", "25").strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidInput(f"ESMC_ALERT_SMTP_PORT is a port number, not {port_text!r}")
        sender = environ.get("ESMC_ALERT_SMTP_FROM", "").strip()
        recipients = [
            r.strip() for r in environ.get("ESMC_ALERT_SMTP_TO", "").split(",") if r.strip()
        ]
        if not sender or not recipients:
            raise InvalidInput(
                "e-mail alerts need ESMC_ALERT_SMTP_FROM and ESMC_ALERT_SMTP_TO "
                "(comma-separated) beside ESMC_ALERT_SMTP_HOST"
            )
        sinks.append(SmtpAlertSink(host, int(port_text), sender, recipients))
    return sinks


@alerts_app.callback()
@handled
def alerts(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="Only alerts raised from this date or date-time on.")]
        = None,
    as_of: AsOfOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
) -> None:
    """The alerts of the licenses you may see, oldest first (with --as-of, those
    raised by then, without their deliveries)."""
    if ctx.invoked_subcommand is not None:
        return
    session = _query_session(ctx)
    lm, actor = session.app, session.actor
    start = _when(since, "--since")
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        raised = lm.alerts(actor, since=start, as_of=when)
    found, note = _limited(raised, limit)
    if json_:
        _print_json([{**a.to_json(), "deliveries": to_jsonable(a.deliveries)} for a in found])
        return
    if not found:
        _say(f"No alerts for {session.user_name}.")
        return
    _show(fitted_table(
        (Column("When"), Column("Public ID", no_wrap=True), Column("Condition"),
         Column("", no_wrap=True), Column("Delivered", drop=2),
         Column("Alert id", no_wrap=True, drop=1)),
        ((a.when.strftime("%Y-%m-%d %H:%M"), str(a.public_id),
          a.reason.name.lower().replace("_", " "), "entered" if a.entered else "left",
          ", ".join(f"{d.sink}: {d.outcome}" for d in a.deliveries.values()) or "-",
          a.alert_id) for a in found)), note=note)


@alerts_app.command("deliver")
@handled
def alerts_deliver(
    ctx: typer.Context,
    every: Annotated[float | None, typer.Option(
        "--every", metavar="SECONDS",
        help="Keep delivering, every SECONDS (default: once, for cron).")] = None,
    json_: JsonOption = False,
) -> None:
    """Send the alerts not yet delivered to the configured sinks.

    Sinks come from the environment: ESMC_ALERT_WEBHOOK_URL and
    ESMC_ALERT_WEBHOOK_SECRET; ESMC_ALERT_SMTP_HOST, _PORT, _FROM, _TO. Exit 3
    when a sink failed (its alerts are offered again next time).
    """
    sinks = alert_sinks(os.environ)
    if not sinks:
        raise InvalidInput(
            "no alert sink configured: set ESMC_ALERT_WEBHOOK_URL and "
            "ESMC_ALERT_WEBHOOK_SECRET, or ESMC_ALERT_SMTP_HOST, ESMC_ALERT_SMTP_FROM and "
            "ESMC_ALERT_SMTP_TO"
        )
    if every is not None and every <= 0:
        raise InvalidInput("--every takes a number of seconds > 0")
    lm = _session(ctx).app
    lm._core.adapters.alert_sinks = tuple(sinks)
    while True:
        report = lm.deliver_alerts()
        if json_:
            _print_json({"delivered": dict(report.delivered), "failed": dict(report.failed)})
        else:
            for name in report.delivered:
                _say(f"{name}: {report.delivered[name]} delivered, {report.failed[name]} failed")
        if every is None:
            break
        try:
            import time as _time

            _time.sleep(every)
        except KeyboardInterrupt:
            return
    if not report.ok:
        raise typer.Exit(EXIT_UNAVAILABLE)


# -- views: the optional runner and the rebuild ----------------------------------------------

ViewsOption = Annotated[str | None, typer.Option(
    "--views", envvar="ESMC_VIEWS", metavar="VIEWS",
    help="Where views persist: sqlite:PATH or postgres (default: beside the store).")]


def _views_env(ctx: typer.Context, views: str | None) -> dict[str, str]:
    """The store's settings, with ``--views`` as ``ESMC_VIEWS`` when given (by
    default the views live beside the events)."""
    store = parse_store(_session(ctx).store)
    env = dict(store.env)
    _data_key_setting(store, env)  # license rows show a key's last four (R32)
    if views:
        env["ESMC_VIEWS"] = views
    return env


@app.command()
@handled
def project(
    ctx: typer.Context,
    views: ViewsOption = None,
    once: Annotated[bool, typer.Option("--once", help="Catch up, then stop.")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", metavar="SECONDS", help="Pause between polls of the log.")] = 0.2,
    json_: JsonOption = False,
) -> None:
    """Keep the views current with the log (a separate process; optional)."""
    from .projections.runner import run_projections

    if not 0 < interval <= 3600:  # also refuses nan
        raise InvalidInput(f"--interval is a number of seconds in (0, 3600], not {interval}")
    env = _views_env(ctx, views)
    try:
        position = run_projections(env, once=once, interval=interval)
    except KeyboardInterrupt:
        return
    _done(json_, {"position": position}, f"Views are at log position {position}.")


#: views still this far behind the log after a first batch get a progress bar
CATCH_UP_SHOWN = 20_000


def _positions_bar(console: Console, *, transient: bool = False) -> Any:
    """A Rich bar of log positions applied to the views (``rebuild``, a long catch-up).

    The description is a plain-text column: the consoles here never read markup
    (R33), so Rich's default ``[progress.description]…`` was printed as it is.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=transient,
    )


def catch_up_showing_progress(app: LicenseManagement, console: Console | None = None) -> None:
    """Bring the views up to date before the command, with a progress bar on
    stderr when they are far behind (a store written in bulk, or whose views an
    upgrade rebuilds): the first command would otherwise seem to hang for a
    minute a million events. A failure is left to the command, which catches
    up as it always does and reports it in its own way (``verify-history``
    reads a damaged store)."""
    bar: Any = None
    task: Any = None

    def progress(done: int, end: int) -> None:
        nonlocal bar, task
        if bar is None:
            if end - done < CATCH_UP_SHOWN:
                return
            bar = _positions_bar(console or _console_class()(stderr=True), transient=True)
            bar.start()
            task = bar.add_task("Bringing the views up to date with the log", total=end)
        bar.update(task, completed=done, total=end)

    try:
        app.catch_up(progress)
    except Exception:
        logging.getLogger("esmc_licensing").debug(
            "catching up before the command failed; the command will", exc_info=True
        )
    finally:
        if bar is not None:
            bar.stop()


@app.command()
@handled
def rebuild(ctx: typer.Context, views: ViewsOption = None, json_: JsonOption = False) -> None:
    """Empty the views and rebuild them from the log."""
    from .projections.runner import rebuild_views

    env = _views_env(ctx, views)
    console = _console()
    if console.is_terminal and not json_:
        with _positions_bar(console) as bar:
            task = bar.add_task("Rebuilding views", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            position = rebuild_views(env, progress=progress)
    else:
        position = rebuild_views(env)
    _done(json_, {"position": position},
          f"Rebuilt the views from the log up to position {position}.")


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
        "--claim-idle", min=1, max=7 * 24 * 3600,
        help="Take over results another consumer left pending this many seconds.")] = 60,
    once: Annotated[bool, typer.Option(
        "--once", help="Settle what is waiting, then stop.")] = False,
    json_: JsonOption = False,
) -> None:
    """Record agents' task results from Redis Streams, each exactly once.

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
    _done(json_, {"settled": count}, f"Settled {count} task result(s).")


# -- more of the public API: files, accounts, sync, computers, tasks, history --------------


def _read_file_arg(path: str) -> bytes:
    """``PATH`` or ``-`` for stdin, at most one byte more than a file may hold."""
    from .adapters.offline_file import MAX_FILE_SIZE

    if path == "-":
        data: bytes = sys.stdin.buffer.read(MAX_FILE_SIZE + 1)
        if not data:
            raise InvalidInput("no offline license file on stdin")
        return data
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise InvalidInput(f"the file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not an offline license file") from None
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from None


@app.command("add-file")
@handled
def add_file(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(
        metavar="PATH", help="An offline license file (.lf), or - to read it from stdin.")],
    json_: JsonOption = False,
) -> None:
    """Add a license from an offline license file generated for this console.

    The file must be signed by the vendor (ESMC_VENDOR_PUBLIC_KEY with a real
    vendor) and generated for this installation's console token (see `info`).
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    content = _read_file_arg(path)
    if lm._core.adapters.offline_verifier is None:
        raise AdapterUnavailable(
            "no vendor public key to verify offline license files: set ESMC_VENDOR_PUBLIC_KEY "
            "(or vendor.public_key_file in the config file) to the vendor's Ed25519 key"
        )
    before = lm.position
    pid = lm.add_offline_license_file(actor, content)
    added = lm.position != before
    view = lm.license(actor, pid)
    names = _group_namer(lm)
    if json_:
        _print_json({"public_id": str(pid), "added": added, "pool_id": str(view.pool_id),
                     "group": names(view.group), "group_id": str(view.group)})
        return
    if added:
        _say(f"Added license {pid} ({view.product}, {view.units} units, owner "
             f"{view.owner or '-'}) from the offline file to pool {view.pool_id} in "
             f"{names(view.group)}.")
    else:
        _say(f"License {pid} is already present; nothing recorded.")
    _console().print(_text("Status: ").append(status_text(view)))


@app.command()
@handled
def info(ctx: typer.Context, json_: JsonOption = False) -> None:
    """This installation: the store, the vendor the CLI talks to, the console token."""
    session = _session(ctx)
    lm = session.app
    cfg = session.config
    data = {
        "store": parse_store(session.store).description,
        "vendor": cfg.describe(),
        "demo_vendor": cfg.uses_demo_vendor,
        "config_file": None if cfg.source is None else str(cfg.source),
        "credentials_file": None if cfg.credentials_file is None else str(cfg.credentials_file),
        "console_token": lm.console_token,
    }
    if json_:
        _print_json(data)
        return
    table = _table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key.replace("_", " ").capitalize(), "-" if value is None else str(value))
    _console().print(table)


# -- accounts and sync (R17, R18) ----------------------------------------------------------


class KindChoice(enum.StrEnum):
    EBA = "EBA"
    EMA2 = "EMA2"
    ELA = "ELA"


KindArg = Annotated[KindChoice, typer.Argument(metavar="EBA|EMA2|ELA", case_sensitive=False)]
UsernameOption = Annotated[str, typer.Option(
    "--username", "-u", metavar="USERNAME", help="The account's username.")]


def _account_password(session: Session, kind: AccountKind, username: str,
                      from_stdin: bool) -> str:
    """The password: stdin (--password-stdin), ESMC_ACCOUNT_PASSWORD, the
    credentials file, or a prompt without echo on a terminal; never argv."""
    from .config import PASSWORD_VARIABLE

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("no password on stdin")
        return line
    env = os.environ.get(PASSWORD_VARIABLE)
    if env:
        return env
    stored = session.secrets.password(kind, username)
    if stored:
        return stored
    if _stdin_is_tty():
        return str(typer.prompt(f"Password of {kind.value} account {username}",
                                hide_input=True))
    raise InvalidInput(
        f"no password for {kind.value} account {username}: set {PASSWORD_VARIABLE}, put it "
        "in the credentials file (mode 0600), pipe it with --password-stdin, or run on a "
        "terminal to be asked"
    )


@app.command("connect-account")
@handled
def connect_account(
    ctx: typer.Context,
    kind: KindArg,
    username: UsernameOption,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
    json_: JsonOption = False,
) -> None:
    """Connect an EBA, EMA2 or ELA account and import its licenses.

    The password is never taken from the command line: it comes from
    ESMC_ACCOUNT_PASSWORD, the credentials file, stdin (--password-stdin) or a
    prompt without echo.
    """
    from .domain.credentials import Credentials

    session = _session(ctx)
    lm, actor = session.app, session.actor
    account_kind = AccountKind(kind.value)
    password = _account_password(session, account_kind, username, password_stdin)
    pool_ids = lm.connect_account(actor, account_kind, Credentials(username, password))
    del password
    views = {v.pool_id: v for v in lm.pools(actor)}
    names = _group_namer(lm)
    rows = [views[p] for p in pool_ids if p in views]
    if json_:
        _print_json({"kind": account_kind.value, "username": username.strip(),
                     "pools": [to_jsonable(v, names) for v in rows]})
        return
    count = sum(len(v.public_ids) for v in rows)
    _say(f"Connected {account_kind.value} account {username.strip()}: {count} license(s) in "
         f"{len(rows)} pool(s)" + (": " + ", ".join(v.name for v in rows) if rows else "") + ".")


@app.command("disconnect-account")
@handled
def disconnect_account(ctx: typer.Context, kind: KindArg, username: UsernameOption,
                       json_: JsonOption = False) -> None:
    """Stop syncing an account; its pools and licenses stay."""
    session = _session(ctx)
    session.app.disconnect_account(session.actor, AccountKind(kind.value), username)
    _done(json_, {"kind": kind.value, "username": username.strip(), "connected": False},
          f"Disconnected {kind.value} account {username.strip()}; its pools stay.")


def _when_text(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@handled
def accounts(ctx: typer.Context, as_of: AsOfOption = None, limit: LimitOption = None,
             json_: JsonOption = False) -> None:
    """The accounts ever connected (administrators); never their passwords."""
    session = _session(ctx)
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        views, note = _limited(session.app.accounts(session.actor, as_of=when), limit)
    if json_:
        _print_json([to_jsonable(v) for v in views])
        return
    if not views:
        _say("No accounts connected; connect one with connect-account.")
        return
    _show(fitted_table(
        (Column("Kind", no_wrap=True), Column("Username"), Column("Type", drop=3),
         Column("Connected", no_wrap=True), Column("Connected at (UTC)", drop=2),
         Column("Last synced (UTC)"), Column("Pools", drop=1)),
        ((v.kind.value, v.username, "-" if v.account_type is None else v.account_type.name,
          "yes" if v.connected else "no", _when_text(v.connected_at),
          _when_text(v.last_synced), str(len(v.pools))) for v in views)), note=note)


def _report_json(report: Any, due: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(report)
    data["ok"] = report.ok
    if due is not None:
        data["due"] = due
    return data


def _show_report(report: Any, json_: bool, due: list[str] | None = None) -> None:
    """Print a SyncReport; exit 3 (with one line on stderr) when a source failed."""
    if json_:
        _print_json(_report_json(report, due))
    else:
        table = _table(title="Sync report", title_justify="left")
        for column in ("Source", "Result", "Added", "Changed", "Events"):
            table.add_column(column)
        for s in report.synced:
            table.add_row(s.source, _text("synced", style="green"),
                          ", ".join(map(str, s.added)) or "-",
                          ", ".join(map(str, s.changed)) or "-", str(s.events))
        for f in report.failed:
            table.add_row(f.source, _text("FAILED", style="bold red"), "-", "-", f.reason)
        if report.synced or report.failed:
            _console().print(table)
        else:
            _say("Nothing to synchronise: no account is connected and no license was added "
                 "by key.")
    if report.failed:
        failures = "; ".join(f"{f.source} ({_one_line(Exception(f.reason))})"
                             for f in report.failed)
        typer.echo(f"error: {len(report.failed)} source(s) failed to sync, nothing recorded "
                   f"for them: {failures}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE)


@contextmanager
def _working(message: str) -> Iterator[None]:
    """A spinner on a terminal; nothing when stdout is not one."""
    console = _console()
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        yield


@app.command()
@handled
def sync(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Synchronise every connected account and license-key license now.

    Prints what each source added and changed. Exit 0 when every source
    synced, 3 when any failed (the others keep their results).
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    with _working("Synchronising with the vendor…"):
        report = lm.synchronize(actor)
    _show_report(report, json_)


@app.command("run-due")
@handled
def run_due(ctx: typer.Context, json_: JsonOption = False) -> None:
    """The scheduled daily sync, for cron: sync the sources that are due.

    Recorded as the `sync` actor. Then makes and keeps today's forecasts,
    so that the first `licenses` of the day only reads them. Exit 0 when
    nothing was due or all synced, 3 when a source failed.
    """
    from .commands.accounts import SyncReport

    session = _session(ctx)
    lm = session.app
    due = lm.due_syncs()
    with _working("Synchronising what is due…"):
        report = lm.run_due() if due else None
    with _working("Making today's forecasts…"):
        lm.prepare_forecasts()  # the first licenses of the day then only reads them
    if report is None:
        if json_:
            _print_json(_report_json(SyncReport(), due))
        else:
            _say("Nothing is due.")
        return
    _show_report(report, json_, due)


# -- computers and client tasks (R20-R26) ---------------------------------------------------


def _computer(lm: LicenseManagement, actor: UserId, text: str) -> ComputerId:
    """A computer by id, by a unique id prefix or by a unique name, among those visible."""
    try:
        return ComputerId(uuid.UUID(text.strip()))
    except ValueError:
        pass
    views = [(c.computer_id, c.name) for c in lm.computers(actor)]
    return ComputerId(_pick("computer", text, views))


def _computers_arg(lm: LicenseManagement, actor: UserId, texts: list[str]) -> list[ComputerId]:
    return [_computer(lm, actor, t) for t in texts]


ComputersArg = Annotated[list[str], typer.Argument(
    metavar="COMPUTER...", help="Computers by id, id prefix or name.")]


def _products_text(view: ComputerView) -> str:
    parts = []
    for p in view.products:
        if p.activated:
            state = f"activated with {p.public_id}" if p.public_id else "activated"
            if p.validity is not None:
                state += f", {p.validity}"
        elif p.suspended:
            state = f"suspended ({p.public_id})"
        else:
            state = "not activated"
        parts.append(f"{p.product}: {state}")
    return "; ".join(parts) or "-"


@app.command("computers")
@handled
def computers_(ctx: typer.Context, tag: TagOption = None, as_of: AsOfOption = None,
               limit: LimitOption = None, json_: JsonOption = False) -> None:
    """The computers you may see, with their products and licenses (--tag filters)."""
    session = _session(ctx)
    lm = session.app
    when = _as_of(session, as_of, json_)
    with _replaying(session, when):
        all_views = lm.computers(session.actor, tags=tag or (), as_of=when)
    views, note = _limited(all_views, limit)
    names = _group_namer(lm)
    if json_:
        _print_json([to_jsonable(v, names) for v in views])
        return
    if not views:
        _say(f"No computers visible to {session.user_name}.")
        return
    _show(fitted_table(
        (Column("Name"), Column("Computer ID", no_wrap=True), Column("Group", drop=2),
         Column("Last connected (UTC)"), Column("Products", drop=1)),
        ((v.name, str(v.computer_id), names(v.group),
          _when_text(v.last_connected) if v.managed else "no agent", _products_text(v))
         for v in views)), note=note)


@app.command("computer")
@handled
def computer_(
    ctx: typer.Context,
    computer: Annotated[str, typer.Argument(metavar="COMPUTER",
                                            help="A computer by id, id prefix or name.")],
    as_of: AsOfOption = None,
    json_: JsonOption = False,
) -> None:
    """One computer: each product, the license it is activated with and its validity."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    when = _as_of(session, as_of, json_, None)
    with _replaying(session, when):
        view = lm.computer(actor, _computer(lm, actor, computer), as_of=when)
    names = _group_namer(lm)
    if json_:
        _print_json(to_jsonable(view, names))
        return
    table = _table(show_header=False, title=f"Computer {view.name}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in (
        ("Computer ID", str(view.computer_id)),
        ("Group", names(view.group)),
        ("Managed", "yes (agent)" if view.managed else "no agent"),
        ("Fingerprint", view.fingerprint or "-"),
        ("Registered (UTC)", _when_text(view.registered_at)),
        ("Last connected (UTC)", _when_text(view.last_connected)),
        ("Tags", ", ".join(sorted(view.tags))),
    ):
        table.add_row(field, value)
    for p in view.products:
        table.add_row(f"Product {p.product}", _products_text(
            attrs.evolve(view, products=(p,))).split(": ", 1)[1])
    _console().print(table)


@app.command("agent-secret")
@handled
def agent_secret(
    ctx: typer.Context,
    computer: Annotated[str, typer.Argument(metavar="COMPUTER",
                                            help="A computer by id, id prefix or name.")],
    json_: JsonOption = False,
) -> None:
    """Print the secret to provision a computer's agent with (administrators).

    Derived from ESMC_AGENT_KEY and the agent's id, it is stored nowhere: the
    agent signs its results and opens its orders with it. Run it when the
    computer is registered, and again after the agent key is rotated.
    """
    from .adapters.redis_agents import AGENT_KEY_VARIABLE, agent_keys

    session = _session(ctx)
    lm, actor = session.app, session.actor
    view = lm.computer(actor, _computer(lm, actor, computer))
    if actor != lm.administrator:
        raise PermissionDenied("issuing agent secrets is for the administrator")
    if not view.managed:
        raise InvalidInput(f"computer {view.name} has no agent to provision")
    keys = agent_keys()
    if keys is None:
        raise InvalidInput(f"no agent key is configured: set {AGENT_KEY_VARIABLE}")
    secret = keys.secret(str(view.computer_id)).text
    if json_:
        _print_json({"computer_id": str(view.computer_id), "name": view.name,
                     "agent_secret": secret})
    else:
        typer.echo(secret)


@app.command("register-computer")
@handled
def register_computer(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    group: Annotated[str, typer.Option("--group", metavar="GROUP", help="A static group.")],
    fingerprint: Annotated[str | None, typer.Option(
        "--fingerprint", metavar="F", help="The hardware fingerprint (managed computers).")
    ] = None,
    product: Annotated[list[str] | None, typer.Option(
        "--product", metavar="PRODUCT", help="An installed product (repeatable).")] = None,
    activated_outside: Annotated[list[str] | None, typer.Option(
        "--activated-outside", metavar="PRODUCT",
        help="An installed product already activated outside this console (repeatable).")
    ] = None,
    unmanaged: Annotated[bool, typer.Option(
        "--unmanaged", help="A computer without a management agent (no fingerprint).")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Register a computer in a static group (WRITE needed there)."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    before = lm.position
    cid = lm.register_computer(
        actor, name, _group(lm, actor, group), fingerprint=fingerprint,
        products=list(product or ()), activated_outside=list(activated_outside or ()),
        managed=not unmanaged,
    )
    registered = lm.position != before
    if json_:
        _print_json({"computer_id": str(cid), "registered": registered})
        return
    if registered:
        _say(f"Registered computer {name.strip()} ({cid}) in {group.strip()}.")
        return
    # R20: the same hardware again records nothing; say what is there, not a success
    view = lm.computer(actor, cid)
    _say(f"Nothing recorded: this computer is already registered as {view.name} ({cid}) "
         f"in {lm.group_name(view.group)}.")


def _show_task(lm: LicenseManagement, actor: UserId, task_id: TaskId, json_: bool,
               what: str) -> None:
    view = lm.task(actor, task_id)
    if json_:
        _print_json(to_jsonable(view))
        return
    _say(f"{what}: task {task_id}.")
    _console().print(_task_table(lm, actor, view))


def _task_table(lm: LicenseManagement, actor: UserId, view: TaskView) -> Table | LongTable:
    computer_names: dict[ComputerId, str] = {}
    with contextlib.suppress(LicensingError):
        computer_names = {c.computer_id: c.name for c in lm.computers(actor)}
    styles = {"SUCCEEDED": "green", "FAILED": "bold red", "PENDING": "yellow",
              "DELIVERED": "yellow"}
    return fitted_table(
        (Column("Computer"), Column("Computer ID", no_wrap=True),
         Column("Result", no_wrap=True), Column("Reason")),
        ((computer_names.get(cid, "(removed)"), str(cid),
          _text(r.state.name, style=styles.get(r.state.name, "")), r.reason or "")
         for cid, r in sorted(view.results.items(), key=lambda kv: str(kv[0]))))


@app.command()
@handled
def activate(
    ctx: typer.Context,
    public_id: Annotated[str, typer.Argument(metavar="PUBLIC_ID")],
    computers: ComputersArg,
    product: Annotated[str | None, typer.Option(
        "--product", help="The product to activate (default: the license's).")] = None,
    json_: JsonOption = False,
) -> None:
    """Run a product activation task with a license on computers.

    Each target's result is shown; a target can fail (overuse ceiling, agent)
    while the others succeed. Exit 0 once the task exists.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    tid = lm.run_product_activation(actor, PublicId(public_id),
                                    _computers_arg(lm, actor, computers), product)
    _show_task(lm, actor, tid, json_, f"Product activation with {PublicId(public_id)}")


@app.command()
@handled
def install(
    ctx: typer.Context,
    package: Annotated[str, typer.Argument(metavar="PACKAGE", help="The product to install.")],
    public_id: Annotated[str, typer.Argument(metavar="PUBLIC_ID")],
    computers: ComputersArg,
    json_: JsonOption = False,
) -> None:
    """Run a software install task with a license on computers."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    tid = lm.run_software_install(actor, _computers_arg(lm, actor, computers), package,
                                  PublicId(public_id))
    _show_task(lm, actor, tid, json_, f"Software install of {package.strip()}")


def _write_private(path: Path, data: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting) and write ``data``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; the installer configuration is "
                           "written only to a new file") from None
    except OSError as e:
        raise InvalidInput(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)


@app.command()
@handled
def installer(
    ctx: typer.Context,
    public_id: Annotated[str, typer.Argument(metavar="PUBLIC_ID")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="Write the configuration, with the license key, to this new file (mode 0600).")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """An all-in-one agent installer configuration for a license (USE needed).

    The license key is a secret: it is never printed, only its last four
    characters. It leaves the tool only in the file named by --output, created
    new with mode 0600.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    lic = lm.installer_license(actor, PublicId(public_id))
    shown = {
        "public_id": str(lic.public_id),
        "product": lic.product,
        "expires": None if lic.expires is None else lic.expires.isoformat(),
        "license_key": lic.key.masked,
        "written_to": None if output is None else str(output),
    }
    if output is not None:
        configuration = dict(lic.configuration())
        if lic.expires is not None:
            configuration["expires"] = lic.expires.isoformat()
        _write_private(output, json.dumps(configuration, indent=2) + "\n")
        del configuration
    if json_:
        _print_json(shown)
        return
    table = _table(show_header=False, title=f"Installer configuration for {lic.public_id}",
                  title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("Product", lic.product)
    table.add_row("Expires", shown["expires"] or "-")
    table.add_row("License key", str(shown["license_key"]))
    _console().print(table)
    if output is not None:
        _say(f"Wrote the installer configuration with the license key to {output} (mode 0600).")
    else:
        _say("The key is not printed; use --output FILE to write the configuration "
             "with the key to a new private file.")


@app.command()
@handled
def deactivate(
    ctx: typer.Context,
    computers: ComputersArg,
    product: Annotated[list[str] | None, typer.Option(
        "--product", help="Only this product (repeatable; default: every installed one).")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Deactivate products on computers through the activation server; frees seats."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    tid = lm.deactivate_products(actor, _computers_arg(lm, actor, computers),
                                 None if not product else list(product))
    _show_task(lm, actor, tid, json_, "Deactivation")


@app.command("remove-computer")
@handled
def remove_computer(
    ctx: typer.Context,
    computer: Annotated[str, typer.Argument(metavar="COMPUTER",
                                            help="A computer by id, id prefix or name.")],
    deactivate_: Annotated[bool, typer.Option(
        "--deactivate", help="Deactivate its products first and free the seats.")
    ] = False,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
) -> None:
    """Remove a computer from management (WRITE on its group).

    Without --deactivate its seats stay used and can no longer be freed here
    (a warning says so). Asks for confirmation on a terminal; without one it
    needs --yes.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    cid = _computer(lm, actor, computer)
    view = lm.computer(actor, cid)
    # the library's own refusals, before a question or a preview
    lm.remove_computer(actor, cid, deactivate=deactivate_, dry_run=True)
    held = [p for p in view.products if p.activated or p.suspended]
    consequence = (
        "its products are deactivated and the seats freed" if deactivate_ else
        f"{len(held)} activated product(s) keep their seats, which can no longer be freed"
    )
    if dry_run:
        _done(json_, {"computer_id": str(cid), "name": view.name, "dry_run": True,
                      "deactivate": deactivate_,
                      "products": [p.product for p in held]},
              f"Would remove computer {view.name} ({cid}): {consequence}; nothing removed.")
        return
    _confirm(yes, f"Remove computer {view.name}? {consequence}",
             f"removing computer {view.name}")
    result = lm.remove_computer(actor, cid, deactivate=deactivate_)
    if json_:
        _print_json(to_jsonable(result))
        return
    _say(f"Removed computer {view.name} ({cid}).")
    if result.warning:
        _say(f"warning: {result.warning}")


@app.command("delete-not-connecting")
@handled
def delete_not_connecting(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(metavar="GROUP")],
    days: Annotated[int, typer.Option("--days", metavar="N", min=1, max=MAX_DAYS,
                                      help="Not connected for at least N days.")],
    deactivate_license: Annotated[bool, typer.Option(
        "--deactivate-license", help="Deactivate their products and free the seats.")
    ] = False,
    remove_unmanaged: Annotated[bool, typer.Option(
        "--remove-unmanaged", help="Also remove computers without an agent.")] = False,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
) -> None:
    """Remove the computers of a group (and subgroups) not connected for N days.

    A computer that never connected counts from its registration. Asks for
    confirmation on a terminal; without a terminal it needs --yes.
    """
    session = _session(ctx)
    lm, actor = session.app, session.actor
    gid = _group(lm, actor, group)
    doomed = lm.not_connecting_computers(actor, gid, days, remove_unmanaged=remove_unmanaged)
    listed = ", ".join(c.name for c in doomed) or "none"
    if dry_run:
        _done(json_, {"group": _group_path(lm, actor, gid), "group_id": str(gid),
                      "days": days, "dry_run": True,
                      "computers": [{"computer_id": str(c.computer_id), "name": c.name}
                                    for c in doomed]},
              f"Would remove {len(doomed)} computer(s) of {group} not connected for {days} "
              f"day(s): {listed}; nothing removed.")
        return
    if doomed:
        _confirm(yes, f"Remove {len(doomed)} computer(s) of {group} not connected for {days} "
                 f"day(s) ({listed})?",
                 f"removing {len(doomed)} computer(s) of {group} ({listed})")
    tid = lm.delete_not_connecting_computers(
        actor, gid, days, deactivate_license=deactivate_license,
        remove_unmanaged=remove_unmanaged,
    )
    view = lm.task(actor, tid)
    if json_:
        _print_json(to_jsonable(view))
        return
    _say(f"Removed {len(view.results)} computer(s) of {group} not connected for {days} "
         f"day(s): task {tid}.")
    if view.results:
        _console().print(_task_table(lm, actor, view))


def _task_id(lm: LicenseManagement, actor: UserId, text: str) -> TaskId:
    """A task by id, or by a unique id prefix (at least 4 characters) among the
    tasks recorded on the computers the actor sees, as pools and computers are."""
    text = text.strip()
    try:
        return TaskId(uuid.UUID(text))
    except ValueError:
        pass
    if len(text) < 4 or not re.fullmatch(r"[0-9a-fA-F-]+", text):
        raise InvalidInput(f"a task id is a UUID or a prefix of one (4 characters or more), "
                           f"not {text!r}")
    found = lm.tasks_starting(actor, text, limit=5)
    if len(found) > 1:
        more = " (and maybe more)" if len(found) == 5 else ""
        raise InvalidInput(f"{len(found)} tasks have ids starting {text!r}{more}: "
                           f"{', '.join(str(t) for t in found)}; give more of the id")
    if not found:
        raise NotFound("task", text)
    return found[0]


@app.command("task")
@handled
def task_(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(
        metavar="TASK_ID", help="A task id, or a unique prefix of one (4 characters or more).")],
    as_of: AsOfOption = None,
    json_: JsonOption = False,
) -> None:
    """A client task and each target's result."""
    session = _session(ctx)
    lm, actor = session.app, session.actor
    tid = _task_id(lm, actor, task_id)
    when = _as_of(session, as_of, json_, None)
    with _replaying(session, when):
        view = lm.task(actor, tid, as_of=when)
    if json_:
        _print_json(to_jsonable(view))
        return
    what = view.kind.name.replace("_", " ").lower()
    extra = ", ".join(x for x in (str(view.public_id or ""), view.product or "") if x)
    _say(f"Task {tid}: {what}" + (f" ({extra})" if extra else "") +
         f", created {_when_text(view.created_at)} UTC.")
    _console().print(_task_table(lm, actor, view))


# -- the data keys (R32) ------------------------------------------------------------------------


def _data_key_file(ctx: typer.Context) -> Path:
    """The data key file this store uses: ESMC_DATA_KEY_FILE, else the file
    beside a SQLite store."""
    from .adapters.field_cipher import DATA_KEY_FILE_VARIABLE, DATA_KEY_VARIABLE

    if os.environ.get(DATA_KEY_VARIABLE):
        raise InvalidInput(
            f"{DATA_KEY_VARIABLE} is set: its keys live in the environment, not in a file. "
            "Rotate by appending a new key after a comma (oldest first, the last is "
            f"current), or move the keys to a key file ({DATA_KEY_FILE_VARIABLE})"
        )
    configured = os.environ.get(DATA_KEY_FILE_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    store = parse_store(_session(ctx).store)
    if store.sqlite_path is None:
        raise InvalidInput(
            f"this store has no key file beside it: set {DATA_KEY_FILE_VARIABLE} to the "
            "data key file it uses"
        )
    return data_key_file_of(store.sqlite_path)


@app.command("rotate-data-key")
@handled
def rotate_data_key(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Add a new data key for new secrets; older keys stay to read older ones.

    Creates the key file (mode 0600) when there is none. Run `migrate-secrets`
    afterwards to re-state the current secrets with the new key.
    """
    from .keyring import rotate_key_file

    path = _data_key_file(ctx)
    ring, created = rotate_key_file(path, "data")
    if json_:
        _print_json({"key_file": str(path), "created": created, "key_id": ring.current_id,
                     "key_ids": list(ring.ids)})
        return
    if created:
        _say(f"Created the data key file {path} with key {ring.current_id} (mode 0600).")
        return
    older = ", ".join(ring.ids[:-1])
    _say(
        f"Data key {ring.current_id} is now current in {path}; {older} stay to read "
        "older secrets. Run `esmc-licensing migrate-secrets` to re-state the current "
        "secrets with the new key."
    )


@app.command("forget-data-key")
@handled
def forget_data_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The id of the data key to forget.")],
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Confirm: what only this key protects becomes unreadable.")] = False,
    json_: JsonOption = False,
) -> None:
    """Forget a data key ("crypto-shredding"): every secret only it protects
    becomes unavailable; every other fact stays readable."""
    from .keyring import read_key_file, write_key_file

    path = _data_key_file(ctx)
    ring = read_key_file(path, "data")
    if key_id not in ring:
        raise NotFound("data key", key_id)
    if key_id == ring.current_id:
        raise InvalidInput(
            f"{key_id} is the current data key in {path}: run `rotate-data-key` first, so "
            "that new secrets have another key"
        )
    if not yes:
        raise ConfirmationRequired(
            f"forgetting data key {key_id} makes the secrets only it protects unreadable "
            "for good; run again with --yes to confirm"
        )
    write_key_file(path, ring.without(key_id))
    kept = [k for k in ring.ids if k != key_id]
    _done(json_, {"key_file": str(path), "forgotten": key_id, "key_ids": kept},
          f"Forgot data key {key_id}; {path} keeps {', '.join(kept)}.")


@app.command("migrate-secrets")
@handled
def migrate_secrets(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Re-state every license key and password not sealed with the current data key
    (plain text from older versions, or an older key) as new events.

    History is not rewritten: the older rows keep what they held.
    """
    session = _session(ctx)
    store = parse_store(session.store)
    if store.sqlite_path is not None and store.sqlite_path.exists():
        from .adapters.field_cipher import DATA_KEY_FILE_VARIABLE, DATA_KEY_VARIABLE

        path = data_key_file_of(store.sqlite_path)
        configured = os.environ.get(DATA_KEY_VARIABLE) or os.environ.get(DATA_KEY_FILE_VARIABLE)
        if not configured and not path.exists():
            from .keyring import create_key_file

            create_key_file(path, "data")
            typer.echo(
                f"Created the data key file {path} (readable by you only): license keys and "
                "passwords in the store are encrypted with it. Back it up apart from the "
                "store; without it they cannot be read.",
                err=True,
            )
    app_ = session.app
    count = app_.migrate_secrets(session.actor)
    _done(
        json_, {"restated": count},
        f"Re-stated {count} secret(s) sealed with the current data key. Rows written "
        "before stay as they were (history is not rewritten)."
    )


# -- the history's seals (R31) ----------------------------------------------------------------


ReceiptOption = Annotated[str | None, typer.Option(
    "--receipt", metavar="FILE", help="The receipt file: written by seal-history, "
    "checked by verify-history.")]


@app.command("seal-history")
@handled
def seal_history(ctx: typer.Context, receipt: ReceiptOption = None,
                 json_: JsonOption = False) -> None:
    """Take a signed receipt of the history as it ends now.

    Every save is sealed as it is recorded; keep the receipt away from the
    store: verify-history --receipt FILE then also proves that nothing up to
    it was deleted, the end of the log included. Needs the seal key.
    """
    session = _session(ctx)
    made = session.app.seal_history(session.actor)
    if receipt is not None:
        path = Path(receipt).expanduser()
        try:
            path.write_bytes(made.to_bytes())
        except OSError as e:
            raise InvalidInput(f"cannot write the receipt {path}: {e.strerror}") from None
    _done(json_, {"position": made.position, "seal": made.seal, "key_id": made.key_id,
                  "receipt": receipt},
          f"Sealed the history up to log position {made.position} (seal {made.seal}, key id "
          f"{made.key_id})." + (f" Receipt written to {receipt}." if receipt else
                                " Add --receipt FILE to keep a receipt of it."))


def _read_receipt(path: str | None) -> Receipt | None:
    if path is None:
        return None
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read the receipt {path}: {e.strerror}") from None
    return Receipt.from_bytes(data)


@app.command("verify-history")
@handled
def verify_history(ctx: typer.Context, receipt: ReceiptOption = None,
                   json_: JsonOption = False) -> None:
    """Verify the whole stored history, first event to last, against its seals.

    Exit 0 when nothing is wrong; 1 when tampering is found, each problem named.
    The seal key comes from ESMC_SEAL_KEY_FILE, ESMC_SEAL_KEY, the credentials
    file, or the key file beside a SQLite store (STORE.seal-key).
    """
    session = _session(ctx)
    report = session.verify_history(_read_receipt(receipt))
    if json_:
        data = to_jsonable(report)
        data["ok"] = report.ok
        _print_json(data)
    elif report.ok:
        _say(str(report))
    else:
        table = _table(title=f"{len(report.problems)} problem(s) in the history",
                      title_justify="left")
        for column in ("Position", "Problem", "Detail"):
            table.add_column(column)
        for p in report.problems:
            table.add_row("-" if p.position is None else str(p.position), p.kind, p.detail)
        _console().print(table)
    if not report.ok:
        first = report.problems[0]
        where = "" if first.position is None else f" at position {first.position}"
        typer.echo(f"error: the history was tampered with: {len(report.problems)} problem(s), "
                   f"first {first.kind}{where}: {_one_line(Exception(first.detail))}", err=True)
        raise typer.Exit(EXIT_REFUSED)


@app.command()
@handled
def keygen(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="Write a key file (mode 0600, never over an existing file) instead of printing "
             "the key.")] = None,
    json_: JsonOption = False,
) -> None:
    """Make a new key for ESMC_SEAL_KEY or ESMC_DATA_KEY: the base64 text of 32 random bytes.

    With --output FILE it is written as a key file for ESMC_SEAL_KEY_FILE or
    ESMC_DATA_KEY_FILE instead, and only the key's id is printed.
    """
    import base64

    from .keyring import create_key_file, generate_key

    if output is None:
        key = base64.b64encode(generate_key()).decode("ascii")
        if json_:
            _print_json({"key": key})
        else:
            typer.echo(key)
        return
    path = output.expanduser()
    if path.exists() or path.is_symlink():
        raise InvalidInput(f"{path} already exists; a key file is written only to a new file")
    try:
        ring = create_key_file(path, "new")
    except OSError as e:
        raise InvalidInput(f"cannot write the key file {path}: {e.strerror}") from None
    _done(json_, {"key_file": str(path), "key_id": ring.current_id},
          f"Wrote a new key (id {ring.current_id}) to {path} (mode 0600); point "
          "ESMC_SEAL_KEY_FILE or ESMC_DATA_KEY_FILE at it.")


@app.command("rotate-seal-key")
@handled
def rotate_seal_key(
    ctx: typer.Context,
    key_file: Annotated[str, typer.Option(
        "--key-file", metavar="PATH", help="The seal key file (created, mode 0600, if missing).")],
    json_: JsonOption = False,
) -> None:
    """Add a new current key to a seal key file; older keys stay to verify
    the seals they made. Point ESMC_SEAL_KEY_FILE at the file."""
    from .keyring import rotate_key_file

    path = Path(key_file).expanduser()
    ring, created = rotate_key_file(path, "seal")
    if json_:
        _print_json({"key_file": str(path), "created": created, "key_id": ring.current_id,
                     "key_ids": list(ring.ids)})
        return
    if created:
        _say(f"Created the seal key file {path} (mode 0600) with key id {ring.current_id}.")
    else:
        _say(f"Rotated the seal key in {path}: new saves are sealed with key id "
             f"{ring.current_id}; key ids {', '.join(ring.ids[:-1])} still verify older seals.")


audit_app = typer.Typer(help="The whole audit log: export it for a SIEM.",
                        no_args_is_help=True, cls=_Group)
app.add_typer(audit_app, name="audit")


class ExportFormat(enum.Enum):
    JSONL = "jsonl"
    CSV = "csv"


_CSV_COLUMNS = (
    "position", "when", "actor", "actor_name", "what", "target", "target_name", "sealed",
    "details",
)


@audit_app.command("export")
@handled
def audit_export(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="From this date, date-time (UTC) or log position.")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="WHEN",
        help="Up to this date (inclusive), date-time or log position.")] = None,
    format_: Annotated[ExportFormat, typer.Option(
        "--format", help="jsonl (one JSON object a line) or csv.")] = ExportFormat.JSONL,
    output: Annotated[str | None, typer.Option(
        "--output", metavar="FILE", help="Write here instead of stdout.")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", help="JSON lines (the same as --format jsonl); with --output, the "
                       "summary as JSON.")] = False,
) -> None:
    """Export every recorded event in log order, with whether a verified seal covers it.

    Streams: memory stays bounded whatever the log's length. Progress goes to
    stderr when it is a terminal. Only an administrator or a user with READ on
    All may export.
    """
    if json_ and format_ is not ExportFormat.JSONL:
        raise InvalidInput("--json exports JSON lines; it cannot be combined with --format csv")
    session = _session(ctx)
    lm, actor = session.app, session.actor

    def bound(value: str | None, option: str, end: bool) -> datetime | int | None:
        if value is not None and value.strip().isdigit():
            return int(value.strip())
        return _when(value, option, end_of_day=end)

    start, stop = bound(since, "--since", False), bound(until, "--until", True)
    entries = lm.audit_log(actor, since=start, until=stop)
    report = lm.verify_history(actor)
    first_problem = min((p.position for p in report.problems if p.position is not None),
                        default=None)
    if report.problems and first_problem is None:
        first_problem = 0  # a problem without a position: vouch for nothing

    def sealed(position: int) -> bool:
        if first_problem is not None and position >= first_problem:
            return False
        if report.unsealed and report.not_sealed_before and position < report.not_sealed_before:
            return False
        return (report.unsealed == 0 and position <= report.sealed_up_to) or (
            bool(report.not_sealed_before) and position <= report.sealed_up_to
        )

    progress = sys.stderr.isatty()
    with contextlib.ExitStack() as stack:
        if output is None:
            out = sys.stdout
        else:
            try:
                out = stack.enter_context(Path(output).expanduser().open("w", encoding="utf-8",
                                                                          newline=""))
            except OSError as e:
                raise InvalidInput(f"cannot write {output}: {e.strerror}") from None
        writer = None
        if format_ is ExportFormat.CSV:
            import csv

            writer = csv.writer(out)
            writer.writerow(_CSV_COLUMNS)
        count = 0
        for entry in entries:
            record = {
                "position": entry.position,
                "when": entry.when.isoformat(),
                "actor": entry.actor,
                "actor_name": entry.actor_name,
                "what": entry.what,
                "target": entry.target,
                "target_name": entry.target_name,
                "sealed": sealed(entry.position),
                "details": dict(entry.details),
            }
            if writer is not None:
                writer.writerow([*(record[c] for c in _CSV_COLUMNS[:-1]),
                                 json_line(record["details"])])
            else:
                out.write(json_line(record) + "\n")
            count += 1
            if progress and count % 10_000 == 0:
                sys.stderr.write(f"\r{count} events exported")
                sys.stderr.flush()
        if progress:
            sys.stderr.write(f"\r{count} events exported\n")
    if output is not None:
        _done(json_, {"exported": count, "output": output}, f"Exported {count} events to {output}.")


#: Examples shown under each command's --help; docs/cli.md ("Examples") shows
#: the same lines (a test keeps the two in step).
EXAMPLES: Mapping[str, tuple[str, ...]] = {
    "demo": ("esmc-licensing demo",),
    "licenses": (
        "esmc-licensing licenses --level ERROR --level EXPIRED",
        'esmc-licensing licenses --product "eset endpoint security" --limit 20',
        "esmc-licensing --as John licenses --json",
    ),
    "license": ("esmc-licensing license DMO-SDG-001",),
    "history": ("esmc-licensing history DMO-SDG-001 --since 2026-01-01",),
    "add-key": ("esmc-licensing add-key - < key.txt",),
    "create-group": ('esmc-licensing create-group Lab --parent "All/San Diego" --json',),
    "create-user": ('esmc-licensing create-user Greta --home "All/San Diego"',),
    "grant": ('esmc-licensing grant Greta "All/San Diego" USE',),
    "move": ('esmc-licensing move "Acme Corp" --to "All/San Diego" --dry-run',),
    "remove": ('esmc-licensing remove "Acme Corp" --dry-run',),
    "delete-not-connecting": (
        'esmc-licensing delete-not-connecting "All/San Diego" --days 30 --dry-run',),
    "run-due": ("esmc-licensing run-due --json >> sync.log",),
    "keygen": ("esmc-licensing keygen --output seal.key",),
    "tag delete": ("esmc-licensing tag delete audit --dry-run",),
    "audit export": ("esmc-licensing audit export --format csv --output audit.csv",),
}


def _add_examples() -> None:
    """Each command's examples (EXAMPLES) as the epilog of its help."""
    for prefix, typer_app in (("", app), ("tag ", tag_app), ("audit ", audit_app),
                              ("filter ", filter_app), ("alerts ", alerts_app)):
        for info in typer_app.registered_commands:
            assert info.callback is not None
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            lines = EXAMPLES.get(prefix + name)
            if lines:
                info.epilog = "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


_add_examples()


#: the root options (see ``_root``) that take a value
_ROOT_VALUE_OPTIONS = frozenset({"--store", "--as", "--config", "--credentials"})
#: the root options that are flags
_ROOT_FLAGS = frozenset({"--debug", "--quiet", "-q", "--json", "--no-pager"})


def _command_named(args: Sequence[str]) -> str | None:
    """The command the arguments name after plain root options; None if unsure."""
    rest = iter(args)
    for arg in rest:
        if arg in _ROOT_VALUE_OPTIONS:
            next(rest, None)
        elif arg in _ROOT_FLAGS or arg.partition("=")[0] in _ROOT_VALUE_OPTIONS:
            continue
        elif arg == "--":
            return next(rest, None)
        elif arg.startswith("-"):
            return None  # --help, or something Typer will explain
        else:
            return arg
    return None


def app_for(args: Sequence[str]) -> typer.Typer:
    """``app`` with only the command ``args`` name (``app`` itself if unsure).

    Typer builds every command it holds (their parameters from their
    signatures) before it runs one; one command, with the same root, runs the
    same and starts sooner. Help and errors about the commands themselves
    (``--help``, an unknown command) come from the whole ``app``.
    """
    name = _command_named(args)
    if name is None:
        return app
    commands = [
        c for c in app.registered_commands
        if c.callback is not None
        and (c.name or typer.main.get_command_name(c.callback.__name__)) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if len(commands) + len(groups) != 1:
        return app
    one = copy.copy(app)
    one.registered_commands = commands
    one.registered_groups = groups
    return one


def main() -> None:
    """The console script ``esmc-licensing``."""
    try:
        app_for(sys.argv[1:])()
    except BrokenPipeError:
        _quiet_broken_pipe()
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()


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
