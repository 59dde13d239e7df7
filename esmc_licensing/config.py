"""The command line's configuration: which vendor it talks to, and its secrets.

Two sources, with a strict split between them (docs/cli.md):

- **Settings** (not secret): the vendor's URLs, the vendor's public key for
  offline license files, HTTP timeouts and retries, the agents' broker, where
  the credentials file is. From environment variables (``ESMC_ACTIVATION_URL``,
  ``ESMC_ACCOUNTS_URL``, ``ESMC_EMA2_URL``, ``ESMC_EBA_URL``, ``ESMC_ELA_URL``,
  ``ESMC_VENDOR_PUBLIC_KEY``, ``ESMC_HTTP_TIMEOUT``, ``ESMC_HTTP_ATTEMPTS``,
  ``ESMC_AGENTS_URL``, ``ESMC_CREDENTIALS_FILE``) or a TOML file (``--config
  PATH``, ``ESMC_CONFIG``, or ``./esmc-licensing.toml`` when it exists); the
  environment wins over the file. A config file that holds a secret is refused.
- **Secrets**: account passwords and the history seal key. Only from
  environment variables (``ESMC_ACCOUNT_PASSWORD``, ``ESMC_SEAL_KEY``) or from a
  credentials file (TOML) that must be a regular file owned by the user running
  the tool and readable by that user only (mode 0600 or 0400); anything else is
  refused (exit 2) before it is read. Never from the command line.

With no vendor URL configured, the CLI keeps using the in-memory demo vendor
(``esmc_licensing.cli.demo_vendor``). With ``ESMC_ACTIVATION_URL`` (and
optionally account URLs) it talks HTTP through ``esmc_licensing.adapters.http``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from .domain.errors import InvalidInput
from .domain.values import AccountKind

# The HTTP clients (httpx), the offline-file code (cryptography), Redis and the
# TOML parser are imported only when the configuration asks for them, so that a
# command run against the demo vendor without a config file loads none of them.
if TYPE_CHECKING:
    from .adapters.http import RetryPolicy
    from .adapters.ports import ActivationServer, Clock

#: the config file read from the working directory when none is named
DEFAULT_CONFIG_FILE = "esmc-licensing.toml"

#: environment variable -> key in the config file's ``[vendor]`` table
URL_VARIABLES: Mapping[str, str] = {
    "ESMC_ACTIVATION_URL": "activation_url",
    "ESMC_ACCOUNTS_URL": "accounts_url",
    "ESMC_EMA2_URL": "ema2_url",
    "ESMC_EBA_URL": "eba_url",
    "ESMC_ELA_URL": "ela_url",
}
PUBLIC_KEY_VARIABLE = "ESMC_VENDOR_PUBLIC_KEY"
TIMEOUT_VARIABLE = "ESMC_HTTP_TIMEOUT"
ATTEMPTS_VARIABLE = "ESMC_HTTP_ATTEMPTS"
AGENTS_VARIABLE = "ESMC_AGENTS_URL"
CONFIG_VARIABLE = "ESMC_CONFIG"
CREDENTIALS_VARIABLE = "ESMC_CREDENTIALS_FILE"
PASSWORD_VARIABLE = "ESMC_ACCOUNT_PASSWORD"
SEAL_KEY_VARIABLE = "ESMC_SEAL_KEY"

_SECRET_WORDS = ("password", "secret", "seal_key", "token", "license_key")
#: URL query parameters that hold a secret
_URL_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
#: the longest HTTP timeout, in seconds (a request hanging longer is a fault)
MAX_TIMEOUT = 600.0
#: the most attempts at one HTTP request (retries back off, so more only delays
#: the answer "unavailable")
MAX_ATTEMPTS = 10
_SETTINGS_KEYS = {
    "vendor": {*URL_VARIABLES.values(), "public_key_file"},
    "http": {"timeout", "attempts"},
    "agents": {"url"},
    "credentials": {"file"},
}


class ConfigError(InvalidInput):
    """The configuration or the credentials file cannot be used (exit code 2)."""


# -- secrets ----------------------------------------------------------------------------


@attrs.frozen
class Secrets:
    """What a credentials file holds. ``repr`` shows no secret."""

    path: Path | None = None
    seal_key: str | None = attrs.field(default=None, repr=False)
    #: (kind, casefolded username) -> password
    passwords: Mapping[tuple[AccountKind, str], str] = attrs.field(factory=dict, repr=False)

    def password(self, kind: AccountKind, username: str) -> str | None:
        return self.passwords.get((kind, username.strip().casefold()))


def check_private(path: Path) -> None:
    """Refuse a credentials file anyone but its owner could read or change."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"the credentials file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read the credentials file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"the credentials file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the credentials file {path} has mode {mode:04o}, so other users can read it; "
            f"it holds secrets and must be readable by its owner only: chmod 600 {path}"
        )
    getuid: Callable[[], int] | None = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise ConfigError(
            f"the credentials file {path} belongs to another user; it must be your own"
        )


def load_secrets(path: Path) -> Secrets:
    """Read a credentials file (TOML) after checking its permissions.

    ``seal_key = "..."`` and one table per account kind mapping usernames to
    passwords: ``[accounts.EMA2]`` ``"msp@example.com" = "..."``.
    """
    import tomllib

    check_private(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        # never quote the file: it holds secrets
        raise ConfigError(f"the credentials file {path} is not valid TOML") from None
    except OSError as e:
        raise ConfigError(f"cannot read the credentials file {path}: {e.strerror}") from None
    unknown = sorted(set(data) - {"seal_key", "accounts"})
    if unknown:
        raise ConfigError(
            f"the credentials file {path} has an unknown entry {unknown[0]!r} "
            "(expected seal_key and [accounts.EBA|EMA2|ELA] tables)"
        )
    seal_key = data.get("seal_key")
    if seal_key is not None and (not isinstance(seal_key, str) or not seal_key):
        raise ConfigError(f"seal_key in {path} must be a non-empty string")
    passwords: dict[tuple[AccountKind, str], str] = {}
    accounts = data.get("accounts", {})
    if not isinstance(accounts, dict):
        raise ConfigError(f"accounts in {path} must be tables [accounts.EBA|EMA2|ELA]")
    for kind_name, table in accounts.items():
        try:
            kind = AccountKind(str(kind_name).upper())
        except ValueError:
            raise ConfigError(
                f"[accounts.{kind_name}] in {path}: the kinds are EBA, EMA2 and ELA"
            ) from None
        if not isinstance(table, dict):
            raise ConfigError(f"[accounts.{kind_name}] in {path} must map usernames to passwords")
        for username, password in table.items():
            if not isinstance(password, str) or not password:
                raise ConfigError(
                    f"the password of {kind.value} account {username!r} in {path} must be "
                    "a non-empty string"
                )
            passwords[(kind, str(username).strip().casefold())] = password
    return Secrets(path=path, seal_key=seal_key, passwords=passwords)


# -- settings -----------------------------------------------------------------------------


@attrs.frozen
class Config:
    """Where the CLI's adapters point; see the module docs."""

    activation_url: str | None = None
    accounts_url: str | None = None
    ema2_url: str | None = None
    eba_url: str | None = None
    ela_url: str | None = None
    public_key_file: Path | None = None
    timeout: float = 10.0
    attempts: int = 3
    agents_url: str | None = attrs.field(default=None, repr=False)
    credentials_file: Path | None = None
    #: the config file read, if any
    source: Path | None = None

    @property
    def uses_demo_vendor(self) -> bool:
        return not any(
            (self.activation_url, self.accounts_url, self.ema2_url, self.eba_url, self.ela_url)
        )

    def account_url(self, kind: AccountKind) -> str | None:
        own = {
            AccountKind.EMA2: self.ema2_url,
            AccountKind.EBA: self.eba_url,
            AccountKind.ELA: self.ela_url,
        }[kind]
        return own or self.accounts_url

    @property
    def retry(self) -> RetryPolicy:
        from .adapters.http import RetryPolicy

        return RetryPolicy(attempts=self.attempts, timeout=self.timeout)

    def describe(self) -> str:
        """One line saying which vendor the CLI talks to (no secret)."""
        if self.uses_demo_vendor:
            return "the in-memory demo vendor (no vendor URL configured)"
        parts = [f"activation server {self.activation_url}"]
        for kind in AccountKind:
            url = self.account_url(kind)
            if url:
                parts.append(f"{kind.value} {url}")
        return ", ".join(parts)


def _carries_credentials(url: str) -> bool:
    """A user, a password, or a query or fragment parameter that names a secret."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return True
    for part in (parts.query, parts.fragment):
        for key, _ in parse_qsl(part, keep_blank_values=True):
            if any(word in key.lower() for word in _URL_SECRET_WORDS):
                return True
    return False


def _check_url(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a URL like https://vendor.example")
    url = value.strip()
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here, not at the first request
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, not {_shown_url(url)!r}")
    if _carries_credentials(url):
        raise ConfigError(
            f"{name} must not carry credentials (a user, a password or a secret parameter); "
            "account passwords go in the environment or the credentials file"
        )
    return url.rstrip("/")


def _shown_url(url: str) -> str:
    """A URL as it may be quoted in a message: scheme, host and path only."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    except ValueError:
        return "(not a URL)"


def _secret_keys(data: Mapping[str, Any], where: str = "") -> list[str]:
    found = []
    for key, value in data.items():
        name = f"{where}{key}"
        if isinstance(value, dict):
            found += _secret_keys(value, name + ".")
        elif any(word in str(key).lower() for word in _SECRET_WORDS):
            found.append(name)
    return found


def _read_config_file(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the config file {path} is not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file {path}: {e}") from None
    secrets = _secret_keys(data)
    if secrets:
        raise ConfigError(
            f"the config file {path} holds a secret ({secrets[0]}); secrets go only in the "
            f"environment ({PASSWORD_VARIABLE}, {SEAL_KEY_VARIABLE}) or in the credentials "
            "file (mode 0600)"
        )
    for table, value in data.items():
        if table not in _SETTINGS_KEYS or not isinstance(value, dict):
            raise ConfigError(
                f"the config file {path} has an unknown entry {table!r} "
                f"(expected the tables {', '.join(sorted(_SETTINGS_KEYS))})"
            )
        unknown = sorted(set(value) - _SETTINGS_KEYS[table])
        if unknown:
            raise ConfigError(f"the config file {path} has an unknown key {table}.{unknown[0]}")
    return data


def load_config(  # noqa: PLR0915 - one check after another, in the order of the docs
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """The configuration: ``config_file`` (else ``ESMC_CONFIG``, else
    ``./esmc-licensing.toml`` if present), overridden by the environment."""
    env = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else cwd
    named = config_file if config_file not in (None, "") else env.get(CONFIG_VARIABLE) or None
    path: Path | None
    if named is not None:
        path = Path(named).expanduser()
    else:
        path = base / DEFAULT_CONFIG_FILE
        if not path.is_file():
            path = None
    data = _read_config_file(path) if path is not None else {}
    vendor = data.get("vendor", {})
    http = data.get("http", {})
    where = str(path) if path is not None else "config"

    urls: dict[str, str | None] = {}
    for variable, key in URL_VARIABLES.items():
        if env.get(variable):
            urls[key] = _check_url(env[variable], variable)
        elif key in vendor:
            urls[key] = _check_url(vendor[key], f"vendor.{key} in {where}")
        else:
            urls[key] = None

    def number(variable: str, key: str, default: float, kind: type, most: float) -> Any:
        raw: object = env.get(variable) or http.get(key, default)
        try:
            value = kind(raw)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{variable} (http.{key}) must be a number, not {raw!r}") from None
        if isinstance(raw, bool) or (isinstance(raw, float) and kind is int):
            raise ConfigError(f"{variable} (http.{key}) must be a whole number, not {raw!r}")
        # ``not 0 < value <= most`` also refuses nan (every comparison with it is false)
        if not 0 < value <= most:
            raise ConfigError(
                f"{variable} (http.{key}) must be a positive number of at most {most:g}, "
                f"not {raw!r}"
            )
        return value

    timeout = float(number(TIMEOUT_VARIABLE, "timeout", 10.0, float, MAX_TIMEOUT))
    attempts = int(number(ATTEMPTS_VARIABLE, "attempts", 3, int, MAX_ATTEMPTS))

    def file_setting(variable: str, value: object, name: str) -> Path | None:
        raw = env.get(variable) or value
        if raw in (None, ""):
            return None
        if not isinstance(raw, str):
            raise ConfigError(f"{name} must be a file path")
        p = Path(raw).expanduser()
        if not p.is_absolute() and path is not None and not env.get(variable):
            p = path.parent / p  # relative to the config file
        return p

    public_key = file_setting(PUBLIC_KEY_VARIABLE, vendor.get("public_key_file"),
                              "vendor.public_key_file")
    credentials = file_setting(CREDENTIALS_VARIABLE, data.get("credentials", {}).get("file"),
                               "credentials.file")
    agents = env.get(AGENTS_VARIABLE) or data.get("agents", {}).get("url")
    if agents is not None and (not isinstance(agents, str) or not agents.startswith(
            ("redis://", "rediss://", "unix://"))):
        raise ConfigError("the agents' broker (ESMC_AGENTS_URL, agents.url) must be a "
                          "redis:// URL")
    if agents and not env.get(AGENTS_VARIABLE) and _carries_credentials(agents):
        raise ConfigError("agents.url in the config file must not carry a password; set "
                          f"{AGENTS_VARIABLE} in the environment instead")
    cfg = Config(
        activation_url=urls["activation_url"],
        accounts_url=urls["accounts_url"],
        ema2_url=urls["ema2_url"],
        eba_url=urls["eba_url"],
        ela_url=urls["ela_url"],
        public_key_file=public_key,
        timeout=timeout,
        attempts=attempts,
        agents_url=agents or None,
        credentials_file=credentials,
        source=path,
    )
    if not cfg.uses_demo_vendor and cfg.activation_url is None:
        raise ConfigError(
            "account service URLs are configured but no activation server: set "
            "ESMC_ACTIVATION_URL (or vendor.activation_url)"
        )
    return cfg


# -- the adapters ---------------------------------------------------------------------------


@attrs.define
class Wiring:
    """The adapters built from a ``Config``, and how to close them."""

    activation_server: ActivationServer
    accounts: Any = None
    agents: Any = None
    offline_verifier: Any = None
    closers: list[Callable[[], None]] = attrs.Factory(list)

    def close(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):  # closing must not hide the command's result
                close()


def build_adapters(
    cfg: Config, clock: Clock, demo: Callable[[Clock], ActivationServer]
) -> Wiring:
    """The CLI's adapters: the demo vendor without URLs, else the HTTP clients."""
    verifier = None
    if cfg.public_key_file is not None:
        from .adapters.offline_file import Ed25519OfflineFileVerifier, load_public_key

        try:
            raw = cfg.public_key_file.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"cannot read the vendor public key {cfg.public_key_file}: {e.strerror}"
            ) from None
        verifier = Ed25519OfflineFileVerifier(load_public_key(raw.strip() if len(raw) != 32
                                                              else raw))
    if cfg.uses_demo_vendor:
        return _with_agents(cfg, Wiring(activation_server=demo(clock), offline_verifier=verifier))
    assert cfg.activation_url is not None
    from .adapters.http import AccountApiClient, Ema2Client, HttpAccounts, HttpActivationServer

    server = HttpActivationServer(cfg.activation_url, retry=cfg.retry)
    wiring = Wiring(activation_server=server, offline_verifier=verifier, closers=[server.close])
    clients: dict[str, Any] = {}
    for kind in AccountKind:
        url = cfg.account_url(kind)
        if url is None:
            continue
        client: Any = (
            Ema2Client(url, retry=cfg.retry) if kind is AccountKind.EMA2
            else AccountApiClient(url, kind, retry=cfg.retry)
        )
        clients[kind.value.lower()] = client
    if clients:
        accounts = HttpAccounts(**clients)
        wiring.accounts = accounts
        wiring.closers.append(accounts.close)
    return _with_agents(cfg, wiring)


def _with_agents(cfg: Config, wiring: Wiring) -> Wiring:
    if cfg.agents_url:
        from .adapters.redis_agents import RedisAgents

        wiring.agents = RedisAgents(url=cfg.agents_url)
    return wiring


__all__ = [
    "DEFAULT_CONFIG_FILE",
    "PASSWORD_VARIABLE",
    "SEAL_KEY_VARIABLE",
    "Config",
    "ConfigError",
    "Secrets",
    "Wiring",
    "build_adapters",
    "check_private",
    "load_config",
    "load_secrets",
]
