"""LicenseManagement: the application a product embeds.

A facade and the composition root: it builds the service core (the unit of
work over one event store: store, aggregate cache, command path, views; see
``service.py``) and one handler per area (``commands/``, ``queries.py``,
``alerting.py``) over it, and offers exactly the public contract
(``docs/api`` and the design's api.md) as thin typed methods. Areas are composed
rather than inherited so that nothing of eventsourcing's ``Application`` nor
one area's helpers leak into what a product sees, and so that each area states
what it needs of the others (the computers area for suspensions, R27; the
intake for legacy logins; the queries for a pool's or license's history).

Tests, the command line, the testing kit and the projection runner reach the
internals through ``app._core`` (an underscore: not part of the contract).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from types import TracebackType

from . import _attrs_code  # noqa: F401 - first: attrs' code of the classes below cached
from .alerting import AlertQueries
from .commands.accounts import AccountCommands, AccountView, SyncReport
from .commands.computers import ComputerCommands
from .commands.directory import DirectoryCommands
from .commands.history import HistoryCommands, SealingService
from .commands.intake import IntakeCommands
from .commands.pools import PoolCommands
from .commands.secrets import SecretCommands
from .commands.tags import TagCommands
from .domain.credentials import Credentials
from .domain.filters import LicenseFilter
from .domain.ids import ComputerId, GroupId, LicenseKey, PoolId, PublicId, Target, TaskId, UserId
from .domain.values import AccountKind, Permission, Policy
from .projections.tables import ViewStore
from .projections.views import (
    Alert,
    ComputerView,
    DeliveryReport,
    Forecast,
    GroupView,
    HistoryEntry,
    InstallerLicense,
    LicenseView,
    MoveImpact,
    PoolView,
    RemovalResult,
    TaskView,
    UserView,
)
from .seals import HistoryReport, Receipt
from .service import ADMINISTRATOR_ID, ALL_GROUP_ID, EVOLVE
from .wiring import Adapters

__all__ = ["ADMINISTRATOR_ID", "ALL_GROUP_ID", "EVOLVE", "LicenseManagement"]


class LicenseManagement:
    """The license management of one console installation, over one event store.

    ``env`` takes eventsourcing's settings (PERSISTENCE_MODULE, SQLITE_DBNAME,
    POSTGRES_*, COMPRESSOR_TOPIC) and the library's own (``ESMC_DATA_KEY``,
    ``ESMC_SEAL_KEY``, ``ESMC_VIEWS``, ``ESMC_CACHE_SIZE``,
    ``ESMC_SNAPSHOT_EVERY``); with none it keeps everything in memory.
    ``adapters`` defaults to in-memory doubles, ``policy`` to ``Policy()``.
    ``views`` shares a view store that another process's runner keeps.

    Every command takes the acting user first and records nothing when it
    raises; every query shows only what the actor may see (R14). Errors raised
    on purpose derive from ``LicensingError``. Use it as a context manager, or
    call :meth:`close`, to release the store's connections.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        adapters: Adapters | None = None,
        policy: Policy | None = None,
        views: ViewStore | None = None,
    ) -> None:
        core = SealingService(env, adapters=adapters, policy=policy, views=views)
        self._core = core
        self._intake_area = IntakeCommands(core)
        self._directory_area = DirectoryCommands(core)
        self._pool_area = PoolCommands(core)
        self._tag_area = TagCommands(core)
        self._query_area = AlertQueries(core)
        self._computer_area = ComputerCommands(core)
        self._account_area = AccountCommands(core, self._intake_area, self._computer_area)
        self._history_area = HistoryCommands(core)
        self._secret_area = SecretCommands(core)

    def __repr__(self) -> str:
        return f"<LicenseManagement at position {self._core._position}>"

    def __enter__(self) -> LicenseManagement:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the installation ---------------------------------------------------------------

    @property
    def administrator(self) -> UserId:
        """The built-in Administrator (home group All, WRITE on All), created the
        first time an application opens an empty store (R10)."""
        return self._core.administrator

    @property
    def all_group(self) -> GroupId:
        """The root static group ``All`` (R10)."""
        return self._core.all_group

    @property
    def console_token(self) -> str:
        """This installation's token, stable for the life of the store; offline
        license files are generated for it (R16)."""
        return self._core.console_token

    @property
    def position(self) -> int:
        """The position of the last event recorded in the store (for ``as_of``, R30)."""
        return self._core.position

    def user_named(self, name: str) -> UserId:
        """The id of a user by name (case-insensitive).

        Raises ``NotFound`` when no user has that name.
        """
        return self._core.user_named(name)

    def group_named(self, name: str) -> GroupId:
        """The id of a static group by name (case-insensitive), whoever may see it.

        Raises ``NotFound`` when no group has that name; see
        :meth:`visible_group_named` for a lookup that keeps R14.
        """
        return self._core.group_named(name)

    def group_name(self, group: GroupId) -> str:
        """The name of a static group by id (to show a view's ``group``).

        Raises ``NotFound`` for an unknown group.
        """
        return self._core.group_name(group)

    def visible_group_named(self, actor: UserId, name: str) -> GroupId:
        """A static group the actor sees (READ, R11), by name or id.

        Raises ``NotFound`` alike for a group outside the actor's visibility and
        one that does not exist, with the name as given, never its id (R14).
        """
        return self._directory_area.visible_group_named(actor, name)

    def wait_for(self, position: int | None = None, timeout: float = 10.0) -> None:
        """Block until the views have applied the log up to ``position`` (None: its end).

        An application keeps its views current by itself, so this returns as
        soon as they have caught up; it waits only for views that a separate
        runner keeps. Raises ``TimeoutError``.
        """
        self._core.wait_for(position, timeout)

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring the views up to the end of the log now; returns their position (R30).

        Every query does this by itself. Call it first where the views may be
        far behind -- a store written in bulk or by another version, whose
        views are built by the first query (a million events take about a
        minute) -- to report ``progress(position, end)`` after each batch of
        events applied.
        """
        return self._core.catch_up(progress)

    def close(self) -> None:
        """Release the store's connections and the views this application opened."""
        self._core.close()

    # -- groups, users and permissions (R10, R11) -----------------------------------

    def create_group(self, actor: UserId, name: str, parent: GroupId | None = None) -> GroupId:
        """Create a static group under ``parent`` (None: under All); administrators only (R10).

        Raises ``PermissionDenied`` for a non-administrator, ``NotFound`` for an
        unknown parent, ``AlreadyExists`` for a name taken under that parent,
        ``InvalidInput`` for an unusable name.
        """
        return self._directory_area.create_group(actor, name, parent)

    def create_user(self, actor: UserId, name: str, home_group: GroupId) -> UserId:
        """Create a user with a home group; administrators only (R10).

        Raises ``PermissionDenied`` for a non-administrator, ``NotFound`` for an
        unknown group, ``AlreadyExists`` for a name taken, ``InvalidInput`` for
        an unusable name.
        """
        return self._directory_area.create_user(actor, name, home_group)

    def grant(self, actor: UserId, user: UserId, group: GroupId, permission: Permission) -> None:
        """Give ``user`` ``permission`` (READ, USE, WRITE) on ``group`` and the groups
        below it; administrators only (R11).

        Raises ``PermissionDenied`` for a non-administrator, ``NotFound`` for an
        unknown user or group, ``InvalidInput`` for something not a Permission.
        """
        self._directory_area.grant(actor, user, group, permission)

    def revoke(self, actor: UserId, user: UserId, group: GroupId) -> None:
        """Take back the permission granted to ``user`` on ``group``; administrators only (R11).

        What the user holds there through a grant on a group above stays;
        revoking what was never granted records nothing. Raises ``NotFound``
        for an unknown user or group, ``PermissionDenied`` for a
        non-administrator or for the Administrator's own grant on All.
        """
        self._directory_area.revoke(actor, user, group)

    def groups(self, actor: UserId, *, as_of: datetime | int | None = None) -> list[GroupView]:
        """The static groups the actor sees and its own home group, by path (R11, R14).

        A path names the groups above too (``All/San Diego/Lab``); ``as_of`` (a
        time or a log position) answers as it was then (R30). Raises
        ``NotFound`` for an unknown actor.
        """
        return self._directory_area.groups(actor, as_of=as_of)

    def users(self, actor: UserId, *, as_of: datetime | int | None = None) -> list[UserView]:
        """The users whose home group the actor sees (and the actor), by name, with
        their grants and effective permissions on the groups the actor sees (R11, R14).

        ``as_of`` answers as it was then (R30). Raises ``NotFound`` for an
        unknown actor.
        """
        return self._directory_area.users(actor, as_of=as_of)

    # -- intake (R2, R12, R15, R16, R17, R18) ------------------------------------------

    def add_license_key(self, actor: UserId, key: str) -> PublicId:
        """Add a license by its key; returns its Public ID (R2, R12, R15).

        The key's shape is checked before the activation server is asked, and
        the server is asked before anything is recorded; a license already
        present records nothing. Raises ``InvalidLicenseKey``,
        ``LicenseKeyRejected``, ``PermissionDenied`` (administrators only),
        ``AdapterUnavailable``. The key never appears in errors or logs.
        """
        return self._intake_area.add_license_key(actor, key)

    def add_offline_license_file(self, actor: UserId, content: bytes) -> PublicId:
        """Add a license from a signed offline license file; returns its Public ID (R16).

        Raises ``InvalidLicenseFile`` naming the check that failed (signature,
        this installation's ``console_token``, issued in the future, expired,
        a subscription), ``PermissionDenied`` (administrators only).
        """
        return self._intake_area.add_offline_license_file(actor, content)

    def connect_account(
        self, actor: UserId, kind: AccountKind, credentials: Credentials
    ) -> list[PoolId]:
        """Connect an EBA, EMA2 or ELA account and import its licenses (R17).

        Returns the pools holding the account's licenses (EMA2: one per company
        with licenses). Raises ``UnsupportedAccount`` (site and distributor
        accounts), ``AccountRejected`` (refused credentials),
        ``AdapterUnavailable``, ``PermissionDenied`` (administrators only);
        nothing is recorded then.
        """
        return self._account_area.connect_account(actor, kind, credentials)

    def disconnect_account(self, actor: UserId, kind: AccountKind, username: str) -> None:
        """Stop syncing an account; its pools stay; administrators only (R12, R17).

        Raises ``PermissionDenied``, ``NotFound`` for an account never connected,
        ``InvalidInput`` for an empty username.
        """
        self._account_area.disconnect_account(actor, kind, username)

    def accounts(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> list[AccountView]:
        """The accounts ever connected; administrators only (R12, R17).

        ``as_of`` answers as it was then, with the actor's rights then (R30).
        Raises ``PermissionDenied`` for anyone else.
        """
        return self._account_area.accounts(actor, as_of=as_of)

    def synchronize(self, actor: UserId | None = None) -> SyncReport:
        """Sync every connected account and every license-key license (R18).

        ``actor=None`` is the scheduled daily sync (recorded as ``sync``); a
        user's on-demand refresh needs an administrator (``PermissionDenied``).
        A source that fails is reported in ``SyncReport.failed``; the others
        are still synced.
        """
        return self._account_area.synchronize(actor)

    def due_syncs(self, now: datetime | None = None) -> list[str]:
        """The sources (account labels, ``"license keys"``) due for their daily sync (R18)."""
        return self._account_area.due_syncs(now)

    def run_due(self, now: datetime | None = None) -> SyncReport | None:
        """Run the syncs that are due, as the scheduled ``sync`` actor; None if none is (R18)."""
        return self._account_area.run_due(now)

    def convert_credentials(self, actor: UserId, credentials: Credentials) -> LicenseKey:
        """Legacy username and password to a license key, through the activation server (R2).

        Raises ``AdapterUnavailable`` when the server cannot convert them or
        cannot be reached, ``LicenseKeyRejected`` when it refuses them.
        """
        return self._account_area.convert_credentials(actor, credentials)

    def add_legacy_credentials(self, actor: UserId, credentials: Credentials) -> PublicId:
        """Convert legacy credentials to a key and add the license by that key (R15).

        Raises what :meth:`convert_credentials` and :meth:`add_license_key` raise.
        """
        return self._account_area.add_legacy_credentials(actor, credentials)

    # -- pools (R7, R13, R19, R37) -----------------------------------------------------

    def move_pools(self, actor: UserId, pool_ids: Iterable[PoolId], to_group: GroupId) -> None:
        """Distribute pools to a static group; administrators only (R7, R13).

        Raises ``NotFound`` for a pool the actor does not see or an unknown
        group, ``PermissionDenied`` for a non-administrator, ``InvalidInput``
        for no pools.
        """
        self._pool_area.move_pools(actor, pool_ids, to_group)

    def preview_move(
        self, actor: UserId, pool_ids: Iterable[PoolId], to_group: GroupId
    ) -> MoveImpact:
        """What :meth:`move_pools` with the same arguments would change, recording
        nothing (R37).

        Refuses what the move would refuse, with the same errors.
        """
        return self._pool_area.preview_move(actor, pool_ids, to_group)

    def remove_pools(self, actor: UserId, pool_ids: Iterable[PoolId], *, confirm: bool) -> None:
        """Remove pools and their licenses; activated products stay activated (R12, R19).

        Raises ``ConfirmationRequired`` without ``confirm=True``,
        ``PermissionDenied`` for a non-administrator, ``NotFound`` for a pool
        the actor does not see.
        """
        self._pool_area.remove_pools(actor, pool_ids, confirm=confirm)

    # -- tags and saved filters (R8a, R28) ---------------------------------------------

    def tags(self, actor: UserId, *, as_of: datetime | int | None = None) -> list[str]:
        """The tag catalogue (R28): shared by every user, its names are not secret.

        ``as_of`` (a time or a log position) answers as it was then (R30).
        Raises ``NotFound`` for an unknown actor (or one who did not exist then).
        """
        return self._directory_area.tags(actor, as_of=as_of)

    def create_tag(self, actor: UserId, name: str) -> None:
        """Add a tag to the catalogue (R28); needs WRITE in at least one group.

        Raises ``PermissionDenied``, ``AlreadyExists``, ``InvalidInput`` for an
        unusable name.
        """
        self._tag_area.create_tag(actor, name)

    def delete_tag(self, actor: UserId, name: str, *, dry_run: bool = False) -> None:
        """Delete a tag, unassigning it everywhere; administrators only (R28).

        Raises ``PermissionDenied``, ``NotFound`` for an unknown tag. With
        ``dry_run=True`` it checks and raises the same, and deletes nothing.
        """
        self._tag_area.delete_tag(actor, name, dry_run=dry_run)

    def assign_tag(self, actor: UserId, target: Target, name: str) -> None:
        """Tag a pool (PoolId), a license (PublicId or its string) or a computer
        (ComputerId); needs WRITE on the target's group (R28).

        Raises ``NotFound`` for a target the actor does not see or an unknown
        tag, ``PermissionDenied`` without WRITE.
        """
        self._tag_area.assign_tag(actor, target, name)

    def unassign_tag(self, actor: UserId, target: Target, name: str) -> None:
        """Take a tag off a pool, license or computer; needs WRITE on its group (R28).

        Raises as :meth:`assign_tag`.
        """
        self._tag_area.unassign_tag(actor, target, name)

    def save_filter(self, actor: UserId, name: str, license_filter: LicenseFilter) -> None:
        """Save a license filter preset under ``name`` for the actor (R8a).

        Saving under an existing name replaces it. Raises ``InvalidInput`` for an
        unusable name or something not a ``LicenseFilter``.
        """
        self._tag_area.save_filter(actor, name, license_filter)

    def delete_filter(self, actor: UserId, name: str) -> None:
        """Delete one of the actor's saved filter presets (R8a).

        Raises ``NotFound`` when the actor has no preset of that name.
        """
        self._tag_area.delete_filter(actor, name)

    def filters(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> dict[str, LicenseFilter]:
        """The actor's saved filter presets by name (R8a); with ``as_of``, as they
        were then (R30)."""
        return self._query_area.filters(actor, as_of=as_of)

    # -- computers and client tasks (R20-R27) ------------------------------------------

    def register_computer(
        self,
        actor: UserId,
        name: str,
        group: GroupId,
        *,
        fingerprint: str | None = None,
        products: Iterable[str] = (),
        activated_outside: Iterable[str] = (),
        managed: bool = True,
    ) -> ComputerId:
        """Register a computer in a static group; returns its id (R20, R26).

        A managed computer needs its hardware ``fingerprint``; its id derives
        from it, so registering the same hardware again records nothing.
        ``managed=False``: a computer without an agent. ``activated_outside``:
        products already activated outside this console (R24). Raises
        ``PermissionDenied`` without WRITE on the group, ``NotFound``,
        ``InvalidInput``.
        """
        return self._computer_area.register_computer(
            actor, name, group, fingerprint=fingerprint, products=products,
            activated_outside=activated_outside, managed=managed,
        )

    def computer_connected(self, computer_id: ComputerId, at: datetime | None = None) -> None:
        """An agent's check-in (R20, R26); ``at`` None: the clock's now.

        Raises ``NotFound`` for an unknown or removed computer.
        """
        self._computer_area.computer_connected(computer_id, at)

    def run_product_activation(
        self,
        actor: UserId,
        public_id: PublicId | str,
        computer_ids: Iterable[ComputerId],
        product: str | None = None,
    ) -> TaskId:
        """Activate a product on computers with a license; returns the task (R21, R23).

        ``product`` None: the license's product. USE is needed on the license's
        group and each computer's group (``PermissionDenied``). Raises
        ``LicenseUnusable`` (expired, suspended, not registered) or
        ``OveruseRefused`` (no target can proceed) before any task exists;
        targets beyond the overuse ceiling otherwise fail with that reason.
        """
        return self._computer_area.run_product_activation(actor, public_id, computer_ids, product)

    def run_software_install(
        self,
        actor: UserId,
        computer_ids: Iterable[ComputerId],
        package: str,
        public_id: PublicId | str,
    ) -> TaskId:
        """Install ``package`` (a product) with a license on computers; returns the task (R21).

        Raises as :meth:`run_product_activation`.
        """
        return self._computer_area.run_software_install(actor, computer_ids, package, public_id)

    def record_task_result(
        self,
        task_id: TaskId,
        computer_id: ComputerId,
        *,
        succeeded: bool,
        reason: str | None = None,
    ) -> bool:
        """Record an agent's result for one target of a task (R21).

        The first final result stands: a repeat records nothing and returns
        False. Raises ``NotFound`` for an unknown task, ``InvalidInput`` for a
        computer that is not a target.
        """
        return self._computer_area.record_task_result(
            task_id, computer_id, succeeded=succeeded, reason=reason
        )

    def installer_license(self, actor: UserId, public_id: PublicId | str) -> InstallerLicense:
        """A license for an all-in-one agent installer; records nothing (R22).

        Raises ``PermissionDenied`` without USE on the license's group,
        ``NotFound``, ``LicenseUnusable``.
        """
        return self._computer_area.installer_license(actor, public_id)

    def deactivate_products(
        self,
        actor: UserId,
        computer_ids: Iterable[ComputerId],
        products: Iterable[str] | None = None,
    ) -> TaskId:
        """Deactivate products on computers through the activation server, freeing
        the seats; returns the task (R24).

        ``products`` None: every installed product; otherwise those, installed
        on every computer named. Raises ``PermissionDenied`` without USE on a
        computer's group, ``NotFound``, ``InvalidInput``.
        """
        return self._computer_area.deactivate_products(actor, computer_ids, products)

    def remove_computer(
        self, actor: UserId, computer_id: ComputerId, *, deactivate: bool, dry_run: bool = False
    ) -> RemovalResult:
        """Remove a computer from management; its history stays (R25).

        With ``deactivate=True`` its products are deactivated first and the
        seats freed; without, ``RemovalResult.warning`` says the seats stay
        used. Raises ``PermissionDenied`` without WRITE on its group,
        ``NotFound``. With ``dry_run=True``: the same checks and answer, and
        nothing is deactivated or recorded.
        """
        return self._computer_area.remove_computer(
            actor, computer_id, deactivate=deactivate, dry_run=dry_run
        )

    def delete_not_connecting_computers(
        self,
        actor: UserId,
        group: GroupId,
        days: int,
        *,
        deactivate_license: bool,
        remove_unmanaged: bool = False,
    ) -> TaskId:
        """Remove the computers of a group and its subgroups not connected for
        ``days``; returns the task (R26).

        A computer that never connected counts from its registration; those
        without an agent only with ``remove_unmanaged``. Raises
        ``PermissionDenied`` without WRITE on the group, ``NotFound``,
        ``InvalidInput``.
        """
        return self._computer_area.delete_not_connecting_computers(
            actor, group, days, deactivate_license=deactivate_license,
            remove_unmanaged=remove_unmanaged,
        )

    def not_connecting_computers(
        self, actor: UserId, group: GroupId, days: int, *, remove_unmanaged: bool = False
    ) -> list[ComputerView]:
        """What :meth:`delete_not_connecting_computers` would remove now, by name
        (R26): the same selection and refusals, recording nothing (the command
        line's confirmation and ``--dry-run``).
        """
        return self._computer_area.not_connecting_computers(
            actor, group, days, remove_unmanaged=remove_unmanaged
        )

    def computer(
        self, actor: UserId, computer_id: ComputerId, *, as_of: datetime | int | None = None
    ) -> ComputerView:
        """A computer with each product's license and its validity (R9, R20);
        with ``as_of``, as it was then (R30).

        Raises ``NotFound`` for a computer the actor does not see (R14).
        """
        return self._computer_area.computer(actor, computer_id, as_of=as_of)

    def computers(
        self, actor: UserId, *, tags: Iterable[str] = (), as_of: datetime | int | None = None
    ) -> list[ComputerView]:
        """The computers the actor may see, by name (R14); with ``tags``, those
        carrying any (R28); with ``as_of``, as they were then (R30)."""
        return self._computer_area.computers(actor, tags=tags, as_of=as_of)

    def tasks_starting(self, actor: UserId, prefix: str, *, limit: int = 10) -> list[TaskId]:
        """The ids of the client tasks the actor may see (R21) whose id starts
        with ``prefix``, at most ``limit``, in id order.

        Read from the tasks view, not the computers' histories. Raises
        ``InvalidInput`` for a prefix shorter than 4 hexadecimal digits.
        """
        return self._computer_area.tasks_starting(actor, prefix, limit=limit)

    def task(
        self, actor: UserId, task_id: TaskId, *, as_of: datetime | int | None = None
    ) -> TaskView:
        """A client task and each target's result (R21); with ``as_of``, as it was then.

        Visible to its creator and to users who see every group it acted on;
        raises ``NotFound`` for anyone else.
        """
        return self._computer_area.task(actor, task_id, as_of=as_of)

    # -- licenses and pools (R8, R9, R11, R14, R30) -------------------------------------

    def licenses(
        self,
        actor: UserId,
        filter: LicenseFilter | None = None,
        *,
        as_of: datetime | int | None = None,
    ) -> list[LicenseView]:
        """The licenses the actor may see, ordered by Public ID (R8, R11, R14);
        with ``as_of``, as they were then (R30).

        Raises ``InvalidInput`` for a filter that is not a ``LicenseFilter``.
        """
        return self._query_area.licenses(actor, filter, as_of=as_of)

    def license(
        self, actor: UserId, public_id: PublicId | str, *, as_of: datetime | int | None = None
    ) -> LicenseView:
        """One license by Public ID (R8, R9); with ``as_of``, as it was then (R30).

        Raises ``NotFound`` alike for a license the actor does not see and one
        that does not exist (R14).
        """
        return self._query_area.license(actor, public_id, as_of=as_of)

    def pools(
        self, actor: UserId, *, tags: Iterable[str] = (), as_of: datetime | int | None = None
    ) -> list[PoolView]:
        """The pools the actor may see (R14); with ``tags``, those carrying any
        (R28); with ``as_of``, as they were then (R30)."""
        return self._query_area.pools(actor, tags=tags, as_of=as_of)

    def history(
        self,
        actor: UserId,
        target: Target,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
        as_of: datetime | int | None = None,
    ) -> list[HistoryEntry]:
        """The history of a pool, a license or a computer, oldest first (R29), with
        names as they were at each entry and nothing the actor may not see.

        ``since``/``until`` (times or log positions) bound it; ``as_of`` keeps
        what was recorded by then (R30). Removed objects keep theirs. Raises
        ``NotFound`` for a target the actor does not see (R14), ``InvalidInput``
        for bounds in the wrong order.
        """
        return self._query_area.history(actor, target, since=since, until=until, as_of=as_of)

    # -- alerts and forecasts (R35, R36) ------------------------------------------------

    def alerts(
        self,
        actor: UserId,
        *,
        since: date | datetime | None = None,
        as_of: datetime | int | None = None,
    ) -> list[Alert]:
        """The alerts of the licenses the actor may see, oldest first (R35); with
        ``since`` (a date, or an aware datetime) those raised from then on.

        ``as_of`` (a time or a log position) gives the alerts raised by then, on
        the licenses the actor could see then, without deliveries: those are
        not part of the recorded history (R30). Raises ``InvalidInput`` for a
        naive datetime.
        """
        return self._query_area.alerts(actor, since=since, as_of=as_of)

    def deliver_alerts(self) -> DeliveryReport:
        """Send every alert not yet accepted by each sink, oldest first, and record
        each outcome (R35).

        A sink that fails is offered its remaining alerts next time; the others
        carry on. Raises nothing for a failing sink: the report counts it.
        """
        return self._query_area.deliver_alerts()

    def prepare_forecasts(self) -> int:
        """Make and keep today's forecast of every license (R36), for a daily job:
        the first ``licenses`` of the day then reads them instead of fitting a
        trend per license (about a millisecond each). Returns how many licenses
        have one for today. ``esmc-licensing run-due`` calls it."""
        return self._query_area.prepare_forecasts()

    def forecast(
        self, actor: UserId, public_id: PublicId | str, *, as_of: datetime | int | None = None
    ) -> Forecast:
        """When the license's used units will reach its units (R36).

        ``as_of`` (a time or a log position) gives the forecast of that day, made
        from what was recorded by then (R30). Raises ``NotFound`` for a license
        the actor does not see (R14).
        """
        return self._query_area.forecast(actor, public_id, as_of=as_of)

    # -- the history as evidence (R29, R31, R32) --------------------------------------

    def seal_history(self, actor: UserId) -> Receipt:
        """A signed receipt of the history as it ends now (R31).

        Kept by an auditor outside the store, it lets :meth:`verify_history`
        prove that nothing up to here was deleted later. Raises
        ``SealKeyMissing`` without a seal key, ``PermissionDenied`` for anyone
        but an administrator or a user with READ on All.
        """
        return self._history_area.seal_history(actor)

    def verify_history(self, actor: UserId, receipt: Receipt | None = None) -> HistoryReport:
        """Check the whole stored history, first event to last, against its seals (R31).

        With ``receipt``, also that the log still holds everything up to it
        unchanged. Problems are reported, not raised; raises
        ``PermissionDenied`` as :meth:`seal_history`.
        """
        return self._history_area.verify_history(actor, receipt)

    def audit_log(
        self,
        actor: UserId,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[HistoryEntry]:
        """Every recorded event as a history entry, streamed in log order (R29, R31).

        ``since`` / ``until``: times or log positions, inclusive. Raises
        ``PermissionDenied`` as :meth:`seal_history` (before the first entry),
        ``InvalidInput`` for a naive datetime.
        """
        return self._history_area.audit_log(actor, since=since, until=until)

    def first_recorded(self) -> datetime | None:
        """When the store's first event was recorded (None: nothing yet), so that a
        replay "as of" an earlier moment can say so rather than fail (R30)."""
        return self._history_area.first_recorded()

    def migrate_secrets(self, actor: UserId) -> int:
        """Re-state every license key and password not sealed with the current data
        key, as new events; returns how many (R32). Administrators only.

        Secrets whose key is no longer configured stay unavailable. Raises
        ``PermissionDenied``, ``DataKeyMissing`` without a data key.
        """
        return self._secret_area.migrate_secrets(actor)
