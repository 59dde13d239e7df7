"""Connected accounts (R17, R18): the Account decider and the values its port returns.

An account (EBA, EMA2 or ELA) is connected once by an administrator and then
synchronised: its licenses are imported into pools (one per company; for EMA2
an indivisible pool per company, R7) and later syncs record only what changed.

The account aggregate holds the credentials the daily sync needs. They are a
``Credentials`` value whose ``repr``/``str`` never show the password; the
history view hides the field altogether.

Disconnecting stops the account's sync; its pools and licenses stay (removing
them is R19's explicit, confirmed removal).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs

from .credentials import AccountRejected, Credentials
from .errors import UnsupportedAccount
from .events import (
    AccountConnected,
    AccountCredentialsResealed,
    AccountDisconnected,
    AccountSynchronized,
    DomainEvent,
    Emitter,
)
from .evolving import replace
from .ids import NAMESPACE, PoolId
from .values import AccountKind, CompanyAccess, Ema2AccountType, LicenseDetails


@attrs.frozen
class AccountCompany:
    """One company an account can read, with its licenses as the vendor holds them."""

    company_id: str
    name: str
    licenses: tuple[LicenseDetails, ...] = ()
    parent_id: str | None = None


@attrs.frozen
class AccountSnapshot:
    """What an account service says about one account: the input of connect and sync.

    ``account_type`` is set for EMA2 accounts; ``company_access`` and ``site``
    for EBA accounts (a ``site`` makes it a site account, which is refused).
    """

    kind: AccountKind
    companies: tuple[AccountCompany, ...] = ()
    account_type: Ema2AccountType | None = None
    company_access: CompanyAccess | None = None
    site: str | None = None


IMPORTABLE_EMA2 = frozenset(
    {Ema2AccountType.MSP, Ema2AccountType.MANAGED_MSP, Ema2AccountType.MSP_MANAGER}
)


def importable_companies(snapshot: AccountSnapshot, label: str) -> tuple[AccountCompany, ...]:
    """R17: the companies whose licenses an account imports, or ``UnsupportedAccount``.

    EBA: site accounts are refused; company access NO_ACCESS imports nothing.
    EMA2: MSP, Managed MSP and MSP Manager accounts that can read at least one
    company; distributor accounts are refused.
    """
    if snapshot.kind is AccountKind.EBA:
        if snapshot.site is not None:
            raise UnsupportedAccount(
                f"{label} is an EBA site account; site accounts are not supported: connect "
                "the company account instead"
            )
        if snapshot.company_access is CompanyAccess.NO_ACCESS:
            return tuple(replace(c, licenses=()) for c in snapshot.companies)
        return snapshot.companies
    if snapshot.kind is AccountKind.EMA2:
        if snapshot.account_type not in IMPORTABLE_EMA2:
            kind = snapshot.account_type.value if snapshot.account_type else "unknown"
            raise UnsupportedAccount(
                f"{label} is an EMA2 {kind} account; only MSP, Managed MSP and MSP Manager "
                "accounts can be imported (distributor accounts cannot)"
            )
        if not snapshot.companies:
            raise UnsupportedAccount(
                f"{label} cannot read any company; an EMA2 account is imported through "
                "the companies it can read"
            )
        return snapshot.companies
    return snapshot.companies


def account_id_for(kind: AccountKind, username: str) -> uuid.UUID:
    """Accounts are identified by kind and username (case-insensitive)."""
    return uuid.uuid5(NAMESPACE, f"account:{kind.value}:{username.casefold()}")


def label_of(kind: AccountKind, username: str) -> str:
    """How reports and logs name an account: kind and username, never the password."""
    return f"{kind.value} account {username}"


@attrs.frozen
class AccountState:
    account_id: uuid.UUID
    version: int = 0
    connected: bool = False
    kind: AccountKind | None = None
    username: str = ""
    credentials: Credentials | None = attrs.field(default=None, repr=False)
    account_type: Ema2AccountType | None = None
    connected_at: datetime | None = None
    last_synced: datetime | None = None
    pools: frozenset[PoolId] = frozenset()

    @property
    def label(self) -> str:
        assert self.kind is not None
        return label_of(self.kind, self.username)


def initial(account_id: uuid.UUID) -> AccountState:
    return AccountState(account_id=account_id)


def evolve(state: AccountState, event: DomainEvent) -> AccountState:
    v = event.originator_version
    if isinstance(event, AccountConnected):
        return replace(
            state,
            version=v,
            connected=True,
            kind=event.kind,
            username=event.username,
            credentials=event.credentials,
            account_type=event.account_type,
            connected_at=event.timestamp,
            last_synced=event.timestamp,
        )
    if isinstance(event, AccountDisconnected):
        return replace(state, version=v, connected=False)
    if isinstance(event, AccountCredentialsResealed):
        return replace(state, version=v, credentials=event.credentials)
    if isinstance(event, AccountSynchronized):
        return replace(
            state,
            version=v,
            last_synced=event.timestamp,
            pools=state.pools | set(event.pools),
        )
    return replace(state, version=v)


def connect(
    state: AccountState,
    kind: AccountKind,
    credentials: Credentials,
    snapshot: AccountSnapshot,
    emit: Emitter,
) -> None:
    """Connect the account, or refresh its credentials; the same again records nothing."""
    if (
        state.connected
        and state.credentials == credentials
        and state.account_type == snapshot.account_type
    ):
        return
    emit(
        AccountConnected,
        kind=kind,
        username=credentials.username,
        credentials=credentials,
        account_type=snapshot.account_type,
    )


def synchronized(
    state: AccountState,
    emit: Emitter,
    *,
    added: int,
    changed: int,
    pools: tuple[PoolId, ...],
) -> None:
    """R18: a sync that changed something says so; one that changed nothing records nothing."""
    if not added and not changed and set(pools) <= state.pools:
        return
    emit(
        AccountSynchronized,
        added=added,
        changed=changed,
        pools=tuple(sorted(set(pools) - state.pools, key=str)),
    )


def reseal(state: AccountState, now: datetime, actor: str) -> list[DomainEvent]:
    """R32: state the credentials again (sealed with the current data key)."""
    if state.credentials is None:
        return []
    state.credentials.reveal_password()  # an unavailable password cannot be re-stated
    emit = Emitter(state.account_id, state.version, now, actor)
    emit(AccountCredentialsResealed, username=state.username, credentials=state.credentials)
    return emit.events


def disconnect(state: AccountState, now: datetime, actor: str) -> list[DomainEvent]:
    if not state.connected:
        return []
    emit = Emitter(state.account_id, state.version, now, actor)
    emit(AccountDisconnected, username=state.username)
    return emit.events


__all__ = [
    "AccountCompany",
    "AccountRejected",
    "AccountSnapshot",
    "AccountState",
    "Credentials",
    "account_id_for",
    "importable_companies",
]
