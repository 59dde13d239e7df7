"""In-memory account services (EBA, EMA2, ELA): the ``AccountService`` test double.

Deterministic and complete enough for products' own tests: accounts hold
Public IDs of licenses issued by an ``InMemoryActivationServer``, and every
``fetch`` reads those licenses as the vendor holds them *now*, so a test
changes the vendor (``vendor.suspend(...)``, ``vendor.set_units(...)``) or the
account (add it again with the same credentials) and watches a sync pick it up.

>>> vendor = InMemoryActivationServer(clock=clock)
>>> vendor.issue(public_id="3AB-C12-D34", product="ESET Endpoint Security", ...)
>>> accounts = InMemoryAccounts(vendor)
>>> accounts.add_ema2_account(Credentials("msp", "pw"), Ema2AccountType.MSP,
...                           companies={"Contoso": ["3AB-C12-D34"]})
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from ..domain.account import AccountCompany, AccountSnapshot
from ..domain.credentials import AccountRejected, Credentials
from ..domain.errors import AdapterUnavailable, InvalidInput
from ..domain.ids import PublicId
from ..domain.values import AccountKind, CompanyAccess, Ema2AccountType

if TYPE_CHECKING:
    from .memory import InMemoryActivationServer


def company_id_of(name: str) -> str:
    """A stable company id for a company name (the in-memory vendor's customerId)."""
    return "c-" + hashlib.sha256(name.strip().casefold().encode()).hexdigest()[:16]


@attrs.frozen
class VendorCompany:
    company_id: str
    name: str
    public_ids: tuple[PublicId, ...]
    parent_id: str | None = None


@attrs.frozen
class VendorAccount:
    """One account as the vendor holds it."""

    kind: AccountKind
    credentials: Credentials = attrs.field(repr=False)
    companies: tuple[VendorCompany, ...]
    account_type: Ema2AccountType | None = None
    company_access: CompanyAccess | None = None
    site: str | None = None


class InMemoryAccounts:
    """EBA, EMA2 and ELA accounts held in memory over an in-memory vendor.

    Adding an account with credentials (username) already known for that kind
    replaces what the account holds. ``fail_next(n)`` makes the next n fetches
    raise ``AdapterUnavailable``; ``fail_account(username)`` makes every fetch
    of that account fail until ``heal_account``.
    """

    def __init__(self, vendor: InMemoryActivationServer) -> None:
        self.vendor = vendor
        self._accounts: dict[tuple[AccountKind, str], VendorAccount] = {}
        self._lock = threading.RLock()
        self._fail_next = 0
        self._failing: set[str] = set()
        self.calls = 0

    # -- the vendor's side ----------------------------------------------------

    def _ids(self, public_ids: Iterable[str]) -> tuple[PublicId, ...]:
        if isinstance(public_ids, str):
            raise InvalidInput("name the licenses as a list of Public IDs, not one string")
        ids = tuple(dict.fromkeys(PublicId(p) for p in public_ids))
        for pid in ids:
            self.vendor.details_of(pid)  # NotFound for a license never issued
        return ids

    def _put(self, account: VendorAccount) -> None:
        with self._lock:
            self._accounts[(account.kind, account.credentials.username.casefold())] = account

    def add_eba_account(
        self,
        credentials: Credentials,
        company: str,
        public_ids: Iterable[str],
        company_access: CompanyAccess = CompanyAccess.WRITE,
        site: str | None = None,
    ) -> None:
        """An EBA account of ``company``; a ``site`` name makes it a site account."""
        vc = VendorCompany(company_id_of(company), company.strip(), self._ids(public_ids))
        self._put(
            VendorAccount(
                AccountKind.EBA, credentials, (vc,), company_access=company_access, site=site
            )
        )

    def add_ema2_account(
        self,
        credentials: Credentials,
        account_type: Ema2AccountType,
        companies: Mapping[str, Iterable[str]],
        parents: Mapping[str, str] | None = None,
    ) -> None:
        """An EMA2 (MSP) account reading ``companies`` (company name -> Public IDs).

        ``parents`` optionally names a company's parent company (companies and
        their children, as EMA2 lists them).
        """
        parents = parents or {}
        vcs = tuple(
            VendorCompany(
                company_id_of(name),
                name.strip(),
                self._ids(ids),
                company_id_of(parents[name]) if name in parents else None,
            )
            for name, ids in companies.items()
        )
        self._put(VendorAccount(AccountKind.EMA2, credentials, vcs, account_type=account_type))

    def add_ela_account(self, credentials: Credentials, public_ids: Iterable[str]) -> None:
        """A legacy security-admin (ELA) account holding ``public_ids``."""
        vc = VendorCompany(
            company_id_of("ela:" + credentials.username),
            credentials.username,
            self._ids(public_ids),
        )
        self._put(VendorAccount(AccountKind.ELA, credentials, (vc,)))

    def remove_account(self, kind: AccountKind, username: str) -> None:
        with self._lock:
            self._accounts.pop((kind, username.casefold()), None)

    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._fail_next += n

    def fail_account(self, username: str) -> None:
        with self._lock:
            self._failing.add(username.casefold())

    def heal_account(self, username: str) -> None:
        with self._lock:
            self._failing.discard(username.casefold())

    def account(self, kind: AccountKind, credentials: Credentials) -> VendorAccount:
        """The account these credentials open, or ``AccountRejected``."""
        with self._lock:
            found = self._accounts.get((kind, credentials.username.casefold()))
        if found is None or found.credentials.reveal_password() != credentials.reveal_password():
            raise AccountRejected(
                f"the {kind.value} account service refused the credentials of "
                f"{credentials.username!r}: wrong username or password"
            )
        return found

    # -- the AccountService port ----------------------------------------------

    def fetch(self, kind: AccountKind, credentials: Credentials) -> AccountSnapshot:
        with self._lock:
            self.calls += 1
            if self._fail_next > 0:
                self._fail_next -= 1
                raise AdapterUnavailable(
                    f"the {kind.value} account service is unavailable (simulated failure)"
                )
            if credentials.username.casefold() in self._failing:
                raise AdapterUnavailable(
                    f"the {kind.value} account service is unavailable (simulated failure)"
                )
        acc = self.account(kind, credentials)
        companies = tuple(
            AccountCompany(
                company_id=c.company_id,
                name=c.name,
                licenses=tuple(self.vendor.details_of(p) for p in c.public_ids),
                parent_id=c.parent_id,
            )
            for c in acc.companies
        )
        return AccountSnapshot(
            kind=kind,
            companies=companies,
            account_type=acc.account_type,
            company_access=acc.company_access,
            site=acc.site,
        )
