"""Connected accounts and the daily sync (R7, R12, R17, R18, R27; legacy credentials R2).

``connect_account`` asks the account service first, refuses what R17 refuses
before anything is recorded, and saves the connection and the whole import in
one atomic call. ``synchronize`` asks each connected account's service, then
decides and saves *per account*: a failing account records nothing and is
named in the report; the others keep their results (R18). License-key
licenses are refreshed from the activation server the same way.

Only changes are recorded (``license.follow_vendor``), so a second sync in a
row records nothing. Licenses new to an EMA2 company land in the company's
pool wherever that pool is now (R7). A license an administrator removed (R19)
is not brought back by a scheduled sync; connecting the account again does.

Scheduling: ``due_syncs(now)`` names the sources whose last run is at least
``sync_interval`` (a day) old and ``run_due(now)`` syncs them; a host process or
the CLI calls them, driven by the application's ``Clock``. A run that changed
nothing records nothing, so the time of such a run is kept in memory only: a
restarted process syncs once more than strictly needed, which records nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import attrs

from ..domain import account, directory, license, pool, tags
from ..domain.account import (
    AccountCompany,
    AccountSnapshot,
    AccountState,
    account_id_for,
    label_of,
)
from ..domain.credentials import Credentials
from ..domain.errors import InvalidInput, LicensingError, NotFound
from ..domain.events import (
    SYNC_ACTOR,
    DomainEvent,
    Emitter,
    LicenseSuspended,
    LicenseUnsuspended,
    TagAssigned,
    TagCreated,
    user_actor,
)
from ..domain.ids import (
    TAGS_ID,
    LicenseKey,
    PoolId,
    PublicId,
    UserId,
    pool_id_for,
)
from ..domain.license import LicenseState
from ..domain.values import AccountKind, Ema2AccountType, LicenseDetails, Source
from ..handler import Handler
from ..projections.fold import pool_target
from ..service import Decision, ServiceBase, log
from .computers import ComputerCommands
from .intake import IntakeCommands

#: the report's name for the license-key licenses refreshed from the activation server
KEY_LICENSES = "license keys"

_SOURCE_OF = {
    AccountKind.EBA: Source.EBA,
    AccountKind.EMA2: Source.EMA2,
    AccountKind.ELA: Source.ELA,
}


@attrs.frozen
class SourceSync:
    """What one source (an account, or the license keys) added and changed."""

    source: str
    added: tuple[PublicId, ...] = ()
    changed: tuple[PublicId, ...] = ()
    events: int = 0


@attrs.frozen
class SyncFailure:
    """A source whose sync failed; nothing was recorded for it (R18)."""

    source: str
    reason: str


@attrs.frozen
class SyncReport:
    """R18: per source what was added and changed, and what failed with why."""

    synced: tuple[SourceSync, ...] = ()
    failed: tuple[SyncFailure, ...] = ()

    @property
    def added(self) -> tuple[PublicId, ...]:
        return tuple(p for s in self.synced for p in s.added)

    @property
    def changed(self) -> tuple[PublicId, ...]:
        return tuple(p for s in self.synced for p in s.changed)

    @property
    def events(self) -> int:
        """How many events the sync recorded."""
        return sum(s.events for s in self.synced)

    @property
    def ok(self) -> bool:
        return not self.failed

    def source(self, name: str) -> SourceSync:
        for s in self.synced:
            if s.source == name:
                return s
        raise KeyError(name)


@attrs.frozen
class AccountView:
    """A connected (or disconnected) account; never its password."""

    kind: AccountKind
    username: str
    connected: bool
    account_type: Ema2AccountType | None
    connected_at: datetime | None
    last_synced: datetime | None
    pools: tuple[PoolId, ...]

    @property
    def label(self) -> str:
        return label_of(self.kind, self.username)


@attrs.frozen
class _Imported:
    pools: tuple[PoolId, ...] = ()
    added: tuple[PublicId, ...] = ()
    changed: tuple[PublicId, ...] = ()
    events: int = 0


@attrs.define
class _Plan:
    """What one account's import decides, gathered company by company."""

    tag_emit: Emitter
    tags: tags.TagsState
    pool_events: list[DomainEvent] = attrs.Factory(list)
    license_events: list[DomainEvent] = attrs.Factory(list)
    suspensions: list[DomainEvent] = attrs.Factory(list)
    added: list[PublicId] = attrs.Factory(list)
    changed: list[PublicId] = attrs.Factory(list)
    pools: list[PoolId] = attrs.Factory(list)
    seen: set[PublicId] = attrs.Factory(set)
    skipped: int = 0


def _tag_name(company: str) -> str:
    name = "".join(c for c in company if ord(c) >= 32).strip()[:64].strip()
    return name or "company"


class AccountCommands(Handler):
    #: how often connected accounts and license keys are synchronised (R18)
    sync_interval = timedelta(days=1)

    def __init__(
        self, core: ServiceBase, intake: IntakeCommands, computers: ComputerCommands
    ) -> None:
        super().__init__(core)
        #: a legacy login is added as the key it converts to
        self._intake = intake
        #: what a vendor's suspension does to the computers using the license (R27)
        self._computers = computers

    def _effects_of_license_events(
        self, events: list[DomainEvent], now: datetime, actor: str
    ) -> list[DomainEvent]:
        return self._computers._effects_of_license_events(events, now, actor)

    # -- helpers ------------------------------------------------------------------

    def _account_service(self) -> Any:
        service = self.adapters.accounts
        if service is None:
            from ..domain.errors import AdapterUnavailable

            raise AdapterUnavailable(
                "no account service is configured: pass Adapters(accounts=...)"
            )
        return service

    @staticmethod
    def _kind(kind: object) -> AccountKind:
        try:
            return kind if isinstance(kind, AccountKind) else AccountKind(kind)
        except ValueError:
            raise InvalidInput(
                f"{kind!r} is not an account kind: expected EBA, EMA2 or ELA"
            ) from None

    @staticmethod
    def _credentials(credentials: object) -> Credentials:
        if not isinstance(credentials, Credentials):
            raise InvalidInput(
                "account credentials must be given as Credentials(username, password)"
            )
        return credentials

    def _runs(self) -> dict[str, datetime]:
        runs: dict[str, datetime] = self.__dict__.setdefault("_sync_runs", {})
        return runs

    def _fetch(self, kind: AccountKind, credentials: Credentials) -> AccountSnapshot:
        service = self._account_service()
        snapshot: AccountSnapshot = self._ask(
            f"the {kind.value} account service", lambda: service.fetch(kind, credentials)
        )
        if not isinstance(snapshot, AccountSnapshot) or snapshot.kind is not kind:
            from ..domain.errors import AdapterUnavailable

            raise AdapterUnavailable(
                f"the {kind.value} account service answered with something other than "
                f"a {kind.value} account"
            )
        return snapshot

    @staticmethod
    def _pool_key(kind: AccountKind, username: str, company_id: str) -> PoolId:
        if kind is AccountKind.ELA:
            return pool_id_for(f"ela:{username.casefold()}")
        return pool_id_for(f"{kind.value.lower()}-company:{company_id}")

    # -- commands -----------------------------------------------------------------

    def connect_account(
        self, actor: UserId, kind: AccountKind, credentials: Credentials
    ) -> list[PoolId]:
        """R17: connect an EBA, EMA2 or ELA account and import its licenses.

        Returns the pools holding the account's licenses (EMA2: one per company
        with licenses). Site and distributor accounts raise
        ``UnsupportedAccount``; refused credentials ``AccountRejected``; an
        unreachable service ``AdapterUnavailable``. Nothing is recorded then.
        """
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "connecting accounts")
        kind = self._kind(kind)
        creds = self._credentials(credentials)
        label = label_of(kind, creds.username)
        snapshot = self._fetch(kind, creds)
        account.importable_companies(snapshot, label)  # refuse before anything is decided
        result = self._import(kind, creds, snapshot, user_actor(uid), connect=True)
        self._runs()[label] = self._now()
        log.info(
            "%s connected: %d license(s) added, %d changed, %d pool(s)",
            label,
            len(result.added),
            len(result.changed),
            len(result.pools),
        )
        return list(result.pools)

    def disconnect_account(self, actor: UserId, kind: AccountKind, username: object) -> None:
        """Stop syncing an account (R12: administrators only); its pools stay."""
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "disconnecting accounts")
        kind = self._kind(kind)
        name = username.username if isinstance(username, Credentials) else username
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name the account by its username")
        acc_id = account_id_for(kind, name.strip())

        def decide() -> Decision[None]:
            acc = self._load(acc_id, lambda: account.initial(acc_id), account.evolve)
            if not acc.connected:
                raise NotFound("account", label_of(kind, name.strip()))
            return None, account.disconnect(acc, self._now(), user_actor(uid))

        self._execute(decide)
        log.info("%s disconnected", label_of(kind, name.strip()))

    def accounts(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> list[AccountView]:
        """The accounts ever connected, for administrators (R12); with ``as_of``
        (a timezone-aware datetime or a log position), as they were then (R30)."""

        def targets() -> list[str]:  # every account's events, none of the licenses'
            return [f"account:{s.account_id}" for s in self.views.states("account")]

        with self._reading(as_of, targets) as (views, d, _):
            uid = self._actor(actor, d)
            directory.require_administrator(d, uid, "listing accounts")
            states = views.states("account")
        return sorted(
            (
                AccountView(
                    kind=s.kind,
                    username=s.username,
                    connected=s.connected,
                    account_type=s.account_type,
                    connected_at=s.connected_at,
                    last_synced=s.last_synced,
                    pools=tuple(sorted(s.pools, key=str)),
                )
                for s in states
                if s.kind is not None
            ),
            key=lambda v: (v.kind.value, v.username.casefold()),
        )

    def synchronize(self, actor: UserId | None = None) -> SyncReport:
        """R18: sync every connected account and every license-key license.

        ``actor=None`` is the scheduled daily sync (recorded as ``sync``); a
        user's on-demand refresh needs an administrator.
        """
        if actor is None:
            who = SYNC_ACTOR
        else:
            uid = self._actor(actor)
            directory.require_administrator(self._directory(), uid, "synchronising licenses")
            who = user_actor(uid)
        return self._sync(who, only=None)

    def due_syncs(self, now: datetime | None = None) -> list[str]:
        """The sources (account labels, ``"license keys"``) due for their daily sync."""
        now = now or self._now()
        runs = self._runs()
        accounts = self._connected_accounts()
        has_keys = bool(self._key_licenses())
        due = []
        for acc in sorted(accounts, key=lambda a: a.label):
            last = max(filter(None, (runs.get(acc.label), acc.last_synced)), default=None)
            if last is None or now - last >= self.sync_interval:
                due.append(acc.label)
        if has_keys:
            last = runs.get(KEY_LICENSES)
            if last is None or now - last >= self.sync_interval:
                due.append(KEY_LICENSES)
        return due

    def run_due(self, now: datetime | None = None) -> SyncReport | None:
        """Run the syncs that are due (as the scheduled ``sync`` actor); None if none is."""
        due = self.due_syncs(now)
        if not due:
            return None
        return self._sync(SYNC_ACTOR, only=set(due))

    # -- legacy credentials (R2, R15) -------------------------------------------------

    def convert_credentials(self, actor: UserId, credentials: Credentials) -> LicenseKey:
        """Legacy username/password to a license key, through the activation server (R2)."""
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "converting legacy credentials")
        creds = self._credentials(credentials)
        server = self.adapters.activation_server
        convert = getattr(server, "convert_credentials", None)
        if convert is None:
            from ..domain.errors import AdapterUnavailable

            raise AdapterUnavailable(
                "the configured activation server cannot convert legacy credentials"
            )
        key = self._ask("the activation server", lambda: convert(creds))
        if not isinstance(key, LicenseKey):
            key = LicenseKey(key)
        log.info("legacy credentials of %r converted to a license key", creds.username)
        return key

    def add_legacy_credentials(self, actor: UserId, credentials: Credentials) -> PublicId:
        """Convert legacy credentials to a key and add the license by that key (R15)."""
        key = self.convert_credentials(actor, credentials)
        return self._intake.add_license_key(actor, key.reveal())

    # -- the import ---------------------------------------------------------------------

    def _import(
        self,
        kind: AccountKind,
        creds: Credentials,
        snapshot: AccountSnapshot,
        actor: str,
        *,
        connect: bool,
    ) -> _Imported:
        """Decide and save one account's import in one atomic call (retried on races)."""
        label = label_of(kind, creds.username)
        companies = account.importable_companies(snapshot, label)
        acc_id = account_id_for(kind, creds.username)

        def decide() -> Decision[_Imported]:
            now = self._now()
            acc = self._load(acc_id, lambda: account.initial(acc_id), account.evolve)
            if not connect and (not acc.connected or acc.credentials != creds):
                return _Imported(), []  # disconnected (or reconnected) meanwhile
            acc_emit = Emitter(acc_id, acc.version, now, actor)
            if connect:
                account.connect(acc, kind, creds, snapshot, acc_emit)
            tag_state = self._tags()
            plan = _Plan(Emitter(TAGS_ID, tag_state.version, now, actor), tag_state)
            for company in companies:
                self._plan_company(plan, kind, creds, company, now, actor, connect=connect)
            if plan.skipped:
                log.info(
                    "%s: %d license(s) of products this console cannot manage skipped",
                    label,
                    plan.skipped,
                )
            account.synchronized(
                acc,
                acc_emit,
                added=len(plan.added),
                changed=len(plan.changed),
                pools=tuple(plan.pools),
            )
            effects = (
                self._effects_of_license_events(plan.suspensions, now, actor)
                if plan.suspensions
                else []
            )
            out = (
                acc_emit.events
                + plan.license_events  # added before they join their pools (R29)
                + plan.pool_events
                + plan.tag_emit.events
                + effects
            )
            result = _Imported(tuple(plan.pools), tuple(plan.added), tuple(plan.changed), len(out))
            return result, out

        return self._execute(decide)

    def _plan_company(
        self,
        plan: _Plan,
        kind: AccountKind,
        creds: Credentials,
        company: AccountCompany,
        now: datetime,
        actor: str,
        *,
        connect: bool,
    ) -> None:
        """One company's licenses: follow the vendor for known ones, add new ones to its pool."""
        pool_id = self._pool_key(kind, creds.username, company.company_id)
        manageable = self.policy.manageable_products
        new: list[tuple[LicenseDetails, LicenseState]] = []
        # a company can hold more licenses than the aggregate cache: loaded a
        # part at a time, not one by one past the cache's size
        states = self._licenses([d.public_id for d in company.licenses])
        for details, lic in zip(company.licenses, states, strict=True):
            pid = details.public_id
            if pid in plan.seen:
                continue
            plan.seen.add(pid)
            if details.product not in manageable:
                plan.skipped += 1
                continue
            if lic.exists:
                evs = license.follow_vendor(lic, details, now, actor)
                if evs:
                    plan.changed.append(pid)
                    plan.license_events += evs
                    plan.suspensions += [
                        e for e in evs if isinstance(e, LicenseSuspended | LicenseUnsuspended)
                    ]
            elif lic.version == 0 or connect:
                new.append((details, lic))
            # else: removed here (R19); the scheduled sync leaves it removed
        p = self._pool(pool_id)
        if new:
            source = _SOURCE_OF[kind]
            msp = kind is AccountKind.EMA2
            emit = pool.ensure(
                p,
                name=company.name,
                group=self.all_group,
                source=source,
                now=now,
                actor=actor,
                indivisible=msp,
                company=company.name if msp else None,
            )
            for details, lic in new:
                pool.join(p, emit, details.public_id)
                plan.license_events += license.add(
                    lic, details, pool_id=pool_id, source=source, key=None, now=now, actor=actor
                )
                plan.added.append(details.public_id)
            plan.pool_events += emit.events
            if msp and not p.exists:
                plan.tags = self._tag_company(plan.tags, plan.tag_emit, company.name, pool_id)
        if new or p.exists:
            plan.pools.append(pool_id)

    @staticmethod
    def _tag_company(
        state: tags.TagsState, emit: Emitter, company: str, pool_id: PoolId
    ) -> tags.TagsState:
        """R7: tag an MSP pool with its company name, creating the tag if missing."""
        name = _tag_name(company)
        existing = state.canonical(name)
        if existing is None:
            state = tags.evolve(state, emit(TagCreated, name=name))
            existing = name
        target = pool_target(pool_id)
        if target not in state.tags[existing]:
            state = tags.evolve(state, emit(TagAssigned, name=existing, target=target))
        return state

    def _connected_accounts(self) -> list[AccountState]:
        """The connected accounts, loaded with their credentials (the views keep none)."""
        self._refresh()
        states = []
        for key in self.views.connected_accounts():
            acc_id = uuid.UUID(key)
            acc = self._load(acc_id, partial(account.initial, acc_id), account.evolve)
            if acc.connected:
                states.append(acc)
        return sorted(states, key=lambda a: a.label)

    def _key_licenses(self) -> list[PublicId]:
        """The licenses added by key (R18: each follows the activation server)."""
        self._refresh()
        return [PublicId(k) for k in self.views.licenses_from(Source.LICENSE_KEY)]

    # -- the sync -------------------------------------------------------------------------

    def _sync(self, who: str, only: set[str] | None) -> SyncReport:
        accounts = self._connected_accounts()
        synced: list[SourceSync] = []
        failed: list[SyncFailure] = []
        runs = self._runs()
        for acc in accounts:
            label = acc.label
            if only is not None and label not in only:
                continue
            assert acc.kind is not None and acc.credentials is not None
            try:
                snapshot = self._fetch(acc.kind, acc.credentials)
                result = self._import(acc.kind, acc.credentials, snapshot, who, connect=False)
            except LicensingError as e:
                failed.append(SyncFailure(label, str(e)))
                log.warning("sync of %s failed, nothing recorded for it: %s", label, e)
                continue
            except Exception as e:  # a bug must not stop the other accounts' sync
                failed.append(SyncFailure(label, f"internal error ({type(e).__name__})"))
                log.error("sync of %s failed with %s; nothing recorded", label, type(e).__name__)
                continue
            finally:
                runs[label] = self._now()
            synced.append(SourceSync(label, result.added, result.changed, result.events))
            log.info(
                "sync of %s: %d added, %d changed, %d event(s) recorded",
                label,
                len(result.added),
                len(result.changed),
                result.events,
            )
        if only is None or KEY_LICENSES in only:
            self._sync_keys(who, synced, failed)
            runs[KEY_LICENSES] = self._now()
        return SyncReport(tuple(synced), tuple(failed))

    def _sync_keys(self, who: str, synced: list[SourceSync], failed: list[SyncFailure]) -> None:
        """R18: license-key licenses follow the activation server, per license."""
        pids = self._key_licenses()
        if not pids:
            return
        server = self.adapters.activation_server
        fetched: list[LicenseDetails] = []
        for pid in pids:
            try:
                details = self._ask("the activation server", partial(server.license_details, pid))
                if not isinstance(details, LicenseDetails) or details.public_id != pid:
                    raise InvalidInput("the activation server answered for another license")
            except LicensingError as e:
                failed.append(SyncFailure(f"license {pid}", str(e)))
                log.warning("sync of license %s failed, nothing recorded for it: %s", pid, e)
                continue
            fetched.append(details)

        def decide() -> Decision[tuple[tuple[PublicId, ...], int]]:
            now = self._now()
            out: list[DomainEvent] = []
            suspensions: list[DomainEvent] = []
            changed: list[PublicId] = []
            for details in fetched:
                lic = self._license(details.public_id)
                if not lic.exists:
                    continue
                evs = license.follow_vendor(lic, details, now, who)
                if evs:
                    changed.append(details.public_id)
                    out += evs
                    suspensions += [
                        e for e in evs if isinstance(e, LicenseSuspended | LicenseUnsuspended)
                    ]
            if suspensions:
                out += self._effects_of_license_events(suspensions, now, who)
            return (tuple(changed), len(out)), out

        try:
            changed, count = self._execute(decide)
        except LicensingError as e:
            failed.append(SyncFailure(KEY_LICENSES, str(e)))
            log.warning("sync of license keys failed, nothing recorded: %s", e)
            return
        synced.append(SourceSync(KEY_LICENSES, (), changed, count))
        log.info("sync of license keys: %d changed, %d event(s) recorded", len(changed), count)


__all__ = [
    "AccountCommands",
    "AccountView",
    "SourceSync",
    "SyncFailure",
    "SyncReport",
]
