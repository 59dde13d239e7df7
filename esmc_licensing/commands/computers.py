"""Computers, client tasks and seats (R20-R27).

Seats are counted on the License aggregate: a task that takes seats saves its
``SeatTaken`` events under the license's next versions, so two racing
activations of one license cannot both take the last seat — the loser's save
conflicts and it is decided again from fresh state (optimistic concurrency,
no lock in Python). The overuse ceiling therefore holds across threads,
processes and machines sharing a store.

A product activation or software install reserves its seats when the task is
created, in the same save as the task; a target's failure frees the seat it
reserved, its success records the product activated on the computer. With an
in-process transport (``InMemoryAgents``) the results are known at once and
saved with the task: one transaction per command. With a broker
(``RedisAgents``) results arrive later through ``record_task_result``, which
is idempotent, so a result delivered twice or out of order is recorded once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain import computer, license, task
from ..domain.client_tasks import AgentResult, TaskKind, TaskOrder
from ..domain.computer import ComputerState, computer_id_for
from ..domain.directory import DirectoryState
from ..domain.errors import (
    AlreadyExists,
    InvalidInput,
    LicenseUnusable,
    LicensingError,
    NotFound,
    OveruseRefused,
    PermissionDenied,
)
from ..domain.events import (
    DomainEvent,
    LicenseSuspended,
    LicenseUnsuspended,
    agent_actor,
    user_actor,
)
from ..domain.ids import (
    ComputerId,
    GroupId,
    PublicId,
    TaskId,
    UserId,
    license_aggregate_id,
)
from ..domain.license import LicenseState
from ..domain.task import TaskState
from ..domain.values import Permission, check_name
from ..handler import Handler
from ..projections.fold import computer_target
from ..projections.tables import row_expires
from ..projections.views import (
    ComputerView,
    InstallerLicense,
    ProductView,
    RemovalResult,
    TargetResult,
    TaskView,
    Validity,
)
from ..queries import visible_groups
from ..service import EVOLVE, Decision, FoldedEvents

log = logging.getLogger("esmc_licensing.computers")

LICENSE_TASKS = (TaskKind.PRODUCT_ACTIVATION, TaskKind.SOFTWARE_INSTALL)


class _Unit:
    """The aggregates one decision touches, kept current as its events are added.

    Deciders number their events from the state they are given, so a decision
    that calls several deciders on one aggregate passes each the state the
    previous one left.
    """

    __slots__ = ("_svc", "events", "states")

    def __init__(self, svc: Handler) -> None:
        self._svc = svc
        #: by aggregate id's ``.int`` (an int hashes in C, a UUID in Python)
        self.states: dict[int, Any] = {}
        self.events = FoldedEvents()

    def seed(self, aggregate_id: uuid.UUID, state: Any) -> None:
        """Start from a state the caller already holds (saves loading it again)."""
        self.states.setdefault(aggregate_id.int, state)

    def license(self, public_id: PublicId) -> LicenseState:
        key = license_aggregate_id(public_id).int
        state: LicenseState | None = self.states.get(key)
        if state is None:
            state = self.states[key] = self._svc._license(public_id)
        return state

    def computer(self, computer_id: ComputerId) -> ComputerState:
        key = computer_id.int
        state: ComputerState | None = self.states.get(key)
        if state is None:
            state = self.states[key] = self._svc._computer(computer_id)
        return state

    def task(self, task_id: TaskId) -> TaskState:
        key = task_id.int
        state: TaskState | None = self.states.get(key)
        if state is None:
            state = self.states[key] = self._svc._load(
                task_id, lambda: task.initial(task_id), task.evolve
            )
        return state

    def add(self, events: Sequence[DomainEvent]) -> None:
        states, add = self.states, self.events.add
        for e in events:
            key = e.originator_id.int
            before = states[key]
            states[key] = after = EVOLVE[type(e)](before, e)
            add(e, before, after)


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, not {value!r}")
    return value


def _days(days: object) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInput(f"days must be a whole number of days ≥ 1, not {days!r}")


class ComputerCommands(Handler):
    # -- helpers ---------------------------------------------------------------------

    def _computer_ids(self, computer_ids: object) -> list[ComputerId]:
        if isinstance(computer_ids, (str, bytes, uuid.UUID)):
            computer_ids = [computer_ids]
        if not isinstance(computer_ids, Iterable):
            raise InvalidInput(
                f"name the target computers as a list of computer ids, not "
                f"{type(computer_ids).__name__}"
            )
        ids = list(
            dict.fromkeys(c if type(c) is ComputerId else ComputerId(c) for c in computer_ids)
        )
        if not ids:
            raise InvalidInput("a client task needs at least one target computer")
        return ids

    def _product_names(self, products: object, *, what: str = "product") -> tuple[str, ...]:
        if isinstance(products, str) or not isinstance(products, Iterable):
            raise InvalidInput(f"name the {what}s as a list of product names")
        return tuple(dict.fromkeys(check_name(what, p, lookalikes=False) for p in products))

    def _task_state(self, task_id: TaskId) -> TaskState:
        return self._load(task_id, lambda: task.initial(task_id), task.evolve)

    def _visible_computer(
        self, d: DirectoryState, uid: UserId, computer_id: ComputerId
    ) -> ComputerState:
        c = self._computer(computer_id)
        if not c.exists or c.group is None or not self._can(d, uid, c.group, Permission.READ):
            raise NotFound("computer", computer_id)
        return c

    def _visible_license(
        self, d: DirectoryState, uid: UserId, public_id: PublicId
    ) -> tuple[LicenseState, GroupId]:
        lic = self._license(public_id)
        if not lic.exists or lic.pool_id is None:
            raise NotFound("license", public_id)
        p = self._pool(lic.pool_id)
        if p.group is None or not self._can(d, uid, p.group, Permission.READ):
            raise NotFound("license", public_id)
        return lic, p.group

    def _visible_group(self, d: DirectoryState, uid: UserId, group: GroupId) -> GroupId:
        if group not in d.groups or not self._can(d, uid, group, Permission.READ):
            raise NotFound("static group", group)
        return group

    def _require(
        self, d: DirectoryState, uid: UserId, group: GroupId, needed: Permission, doing: str
    ) -> None:
        if not self._can(d, uid, group, needed):
            raise PermissionDenied(
                f"{doing} needs {needed.name} permission on group {d.groups[group].name!r}"
            )

    @staticmethod
    def _check_usable(lic: LicenseState, now: datetime) -> None:
        """R21: expired, suspended and not-registered licenses are refused."""
        why = []
        if lic.suspended:
            why.append("suspended by the vendor")
        if lic.expires is not None and lic.expires < now.date():
            why.append(f"expired (on {lic.expires.isoformat()})")
        if not lic.registered:
            url = f" at {lic.registration_url}" if lic.registration_url else ""
            why.append(f"not registered yet (register it{url})")
        if why:
            raise LicenseUnusable(
                f"license {lic.public_id} cannot be used: it is {' and '.join(why)}"
            )

    def _overuse_message(self, lic: LicenseState, ceiling: int | None) -> str:
        return (
            f"license {lic.public_id} is at its overuse ceiling: {lic.used_units} of "
            f"{ceiling} seats used ({lic.units} units, policy {self.policy.overuse.value}); "
            "no further seat can be taken"
        )

    # -- computers (R20) ---------------------------------------------------------------

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
        """Register a computer in a static group (WRITE needed there); returns its id.

        A managed computer (with an agent) needs its hardware ``fingerprint``;
        its id is derived from it, so a new fingerprint is a new computer and
        registering the same hardware again records nothing and returns the
        same id (R20). ``managed=False`` registers a computer known only by
        name (R26). ``activated_outside``: installed products already activated
        outside this console (R24).
        """
        uid = self._actor(actor)
        computer_name = check_name("computer", name)
        gid = GroupId(group)
        prods = self._product_names(products)
        outside = self._product_names(activated_outside)
        stray = [p for p in outside if p not in prods]
        if stray:
            raise InvalidInput(
                f"products activated outside this console must be installed: {stray[0]!r} "
                "is not among the computer's products"
            )
        is_managed = _bool(managed, "managed")
        fp = (
            None
            if fingerprint is None
            else check_name("hardware fingerprint", fingerprint, lookalikes=False)
        )
        if is_managed and fp is None:
            raise InvalidInput("a managed computer needs its hardware fingerprint")
        cid = computer_id_for(fp, name=computer_name, group=gid)

        def decide() -> Decision[ComputerId]:
            d = self._directory()
            self._visible_group(d, uid, gid)
            self._require(d, uid, gid, Permission.WRITE, "registering a computer")
            c = self._computer(cid)
            if c.exists and (c.group is None or not self._can(d, uid, c.group, Permission.READ)):
                # R14: the hardware is registered where the actor cannot see; saying
                # where (or answering with its id, as if registered) would leak it
                raise AlreadyExists(
                    "this hardware fingerprint is already registered to a computer outside "
                    "the groups you can see; nothing was recorded (an administrator can "
                    "move or remove that computer)"
                )
            return cid, computer.register(
                c,
                name=computer_name,
                group=gid,
                fingerprint=fp,
                agent_id=str(cid) if is_managed else None,
                products=prods,
                activated_outside=outside,
                now=self._now(),
                actor=user_actor(uid),
            )

        return self._execute(decide)

    def computer_connected(self, computer_id: ComputerId, at: datetime | None = None) -> None:
        """An agent check-in (R20, R26); ``at`` None: the clock's now."""
        cid = ComputerId(computer_id)
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
            raise InvalidInput("a check-in time must be a timezone-aware datetime (UTC)")

        def decide() -> Decision[None]:
            c = self._computer(cid)
            if not c.exists:
                raise NotFound("computer", cid)
            if not c.managed:
                raise InvalidInput(
                    f"computer {c.name!r} has no management agent, so it cannot check in"
                )
            now = self._now()
            when = now if at is None else at.astimezone(UTC)
            return None, computer.connected(c, when, now, agent_actor(c.agent_id))

        self._execute(decide)

    # -- activation and install (R21, R23) ----------------------------------------------

    def run_product_activation(
        self,
        actor: UserId,
        public_id: PublicId | str,
        computer_ids: Iterable[ComputerId],
        product: str | None = None,
    ) -> TaskId:
        """Activate a product on computers with a license (R21, R23).

        ``product`` None: the license's product. USE is needed on the license's
        group and on each computer's group; the product must be installed.
        An expired, suspended or unregistered license raises ``LicenseUnusable``
        and a license at its overuse ceiling ``OveruseRefused`` (when no target
        can proceed), before any task exists; otherwise targets beyond the
        ceiling are FAILED with that reason and seats already taken stay.
        """
        return self._run_license_task(
            actor, TaskKind.PRODUCT_ACTIVATION, public_id, computer_ids, product
        )

    def run_software_install(
        self,
        actor: UserId,
        computer_ids: Iterable[ComputerId],
        package: str,
        public_id: PublicId | str,
    ) -> TaskId:
        """Install ``package`` (a product) with a license on computers (R21)."""
        name = check_name("package", package, lookalikes=False)
        return self._run_license_task(
            actor, TaskKind.SOFTWARE_INSTALL, public_id, computer_ids, name
        )

    def _run_license_task(
        self,
        actor: object,
        kind: TaskKind,
        public_id: object,
        computer_ids: object,
        product: str | None,
    ) -> TaskId:
        uid = self._actor(actor)
        pid = PublicId(public_id)
        ids = self._computer_ids(computer_ids)
        if product is not None:
            product = check_name("product", product, lookalikes=False)
        task_id = TaskId.random()
        agents = self.adapters.agents
        doing = (
            "a product activation"
            if kind is TaskKind.PRODUCT_ACTIVATION
            else "a software install"
        )

        def decide() -> Decision[tuple[list[TaskOrder], TaskState]]:
            d = self._directory()
            lic, lic_group = self._visible_license(d, uid, pid)
            comps = [self._visible_computer(d, uid, c) for c in ids]
            # the messages are built only for a refusal (this is the hot path)
            if not self._can(d, uid, lic_group, Permission.USE):
                self._require(d, uid, lic_group, Permission.USE, f"{doing} with license {pid}")
            for c in comps:
                assert c.group is not None
                if not self._can(d, uid, c.group, Permission.USE):
                    self._require(
                        d, uid, c.group, Permission.USE, f"{doing} on computer {c.name!r}"
                    )
            prod = product or lic.product
            for c in comps:
                if not c.managed:
                    raise InvalidInput(
                        f"computer {c.name!r} has no management agent, so no client task "
                        "can reach it"
                    )
                if kind is TaskKind.PRODUCT_ACTIVATION and prod not in c.products:
                    raise InvalidInput(
                        f"computer {c.name!r} has no {prod!r} installed to activate "
                        f"(installed: {', '.join(sorted(c.products)) or 'nothing'})"
                    )
            now = self._now()
            self._check_usable(lic, now)
            who = user_actor(uid)
            unit = _Unit(self)
            unit.seed(license_aggregate_id(pid), lic)  # loaded just above
            # a fresh random id: never in the log, so nothing to load
            unit.seed(task_id, task.initial(task_id))
            ceiling = self.policy.overuse.ceiling(lic.units)
            taken, refused, seat_events = license.take_seats(
                lic,
                [(c.computer_id, prod) for c in comps],
                ceiling=ceiling,
                task_id=task_id,
                now=now,
                actor=who,
            )
            if refused and len(refused) == len(comps):
                raise OveruseRefused(self._overuse_message(lic, ceiling))
            unit.add(seat_events)
            message = self._overuse_message(unit.license(pid), ceiling) if refused else ""
            scope = tuple(sorted({c.group for c in comps if c.group is not None}, key=str))
            unit.add(
                task.create(
                    unit.task(task_id),
                    kind=kind,
                    user=uid,
                    targets=tuple(ids),
                    scope=scope,
                    public_id=pid,
                    product=prod,
                    new_seats=tuple(c for c, _ in taken),
                    now=now,
                    actor=who,
                )
            )
            refused_ids = {c for c, _ in refused}
            for cid in ids:
                if cid in refused_ids:
                    unit.add(
                        task.record_result(
                            unit.task(task_id), cid, succeeded=False, reason=message,
                            now=now, actor=who,
                        )
                    )
            orders = [
                TaskOrder(
                    task_id=task_id,
                    kind=kind,
                    computer_id=c.computer_id,
                    agent_id=c.agent_id or str(c.computer_id),
                    product=prod,
                    public_id=pid,
                    key=lic.key,
                )
                for c in comps
                if c.computer_id not in refused_ids
            ]
            for r in agents.immediate_results(orders):
                self._apply_result(unit, r.task_id, r.computer_id, r.succeeded, r.reason, now)
            return (orders, unit.task(task_id)), unit.events

        orders, state = self._execute(decide)
        self._deliver(state, orders)
        return task_id

    def _deliver(self, state: TaskState, orders: list[TaskOrder]) -> None:
        """Hand a saved task to the agents; failing that, its targets fail."""
        if not orders:
            return
        task_id = state.task_id
        try:
            self.adapters.agents.deliver(orders)
        except Exception as e:
            reason = (
                str(e) if isinstance(e, LicensingError) else f"{type(e).__name__}: {e}"
            )
            log.warning("client task %s could not be delivered: %s", task_id, reason)
            for o in orders:
                if not state.targets[o.computer_id].state.final:
                    self.record_task_result(
                        task_id, o.computer_id, succeeded=False,
                        reason=f"the task could not be delivered to its agent ({reason})",
                    )
            return
        pending = [o.computer_id for o in orders if not state.targets[o.computer_id].state.final]
        if not pending:
            return

        def decide() -> Decision[None]:
            t = self._task_state(task_id)
            return None, task.delivered(t, pending, self._now(), "system")

        self._execute(decide)

    def _apply_result(
        self,
        unit: _Unit,
        task_id: TaskId,
        computer_id: ComputerId,
        succeeded: bool,
        reason: str | None,
        now: datetime,
    ) -> bool:
        """Record one target's result and what follows from it; False if already recorded."""
        t = unit.task(task_id)
        if not t.exists:
            raise NotFound("client task", task_id)
        comp = unit.computer(computer_id)
        who = agent_actor(comp.agent_id or computer_id)
        events = task.record_result(
            t, computer_id, succeeded=succeeded, reason=reason, now=now, actor=who
        )
        if not events:
            return False
        unit.add(events)
        if t.kind not in LICENSE_TASKS or t.public_id is None or t.product is None:
            return True
        pid, prod = t.public_id, t.product
        if succeeded:
            if t.kind is TaskKind.SOFTWARE_INSTALL:
                unit.add(computer.install(comp, prod, task_id, now, who))
                comp = unit.computer(computer_id)
            previous = comp.products.get(prod)
            unit.add(computer.activate(comp, prod, pid, task_id=task_id, now=now, actor=who))
            if previous is not None and previous.public_id not in (None, pid):
                assert previous.public_id is not None
                old = unit.license(previous.public_id)
                unit.add(
                    license.release_seats(
                        old, [(computer_id, prod)], f"activated with license {pid} instead",
                        now, who,
                    )
                )
            lic = unit.license(pid)
            if (str(computer_id), prod) not in lic.seats:
                # freed while the task ran: the agent's report is a fact and holds a seat
                _, _, more = license.take_seats(
                    lic, [(computer_id, prod)], ceiling=None, task_id=task_id, now=now, actor=who
                )
                unit.add(more)
        elif computer_id in t.new_seats:
            current = comp.products.get(prod)
            if current is None or current.public_id != pid or not current.holds_seat:
                text = (reason or "").strip() or "no reason given"
                unit.add(
                    license.release_seats(
                        unit.license(pid), [(computer_id, prod)],
                        f"the activation failed: {text}"[:500], now, who,
                    )
                )
        return True

    def record_task_result(
        self,
        task_id: TaskId,
        computer_id: ComputerId,
        *,
        succeeded: bool,
        reason: str | None = None,
    ) -> bool:
        """Record an agent's result for one target of a task (R21).

        Idempotent: the first final result of a target stands; a repeat (or a
        later, different report) records nothing and returns False. An unknown
        task is ``NotFound``, a computer that is not a target ``InvalidInput``.
        """
        result = AgentResult(
            task_id=TaskId(task_id),
            computer_id=ComputerId(computer_id),
            succeeded=succeeded,
            reason=reason,
        )

        def decide() -> Decision[bool]:
            unit = _Unit(self)
            recorded = self._apply_result(
                unit, result.task_id, result.computer_id, result.succeeded, result.reason,
                self._now(),
            )
            return recorded, unit.events

        return self._execute(decide)

    # -- installer (R22) -----------------------------------------------------------------

    def installer_license(self, actor: UserId, public_id: PublicId | str) -> InstallerLicense:
        """A license for an all-in-one agent installer (USE needed, R22); records nothing."""
        uid = self._actor(actor)
        pid = PublicId(public_id)
        self._refresh()
        d = self._directory()
        lic, group = self._visible_license(d, uid, pid)
        self._require(d, uid, group, Permission.USE, f"an installer with license {pid}")
        self._check_usable(lic, self._now())
        if lic.key is None:
            raise InvalidInput(
                f"license {pid} was added from an offline license file and has no license "
                "key to put into an installer"
            )
        return InstallerLicense(
            public_id=pid, product=lic.product, key=lic.key, expires=lic.expires
        )

    # -- deactivation and removal (R24, R25, R26) ----------------------------------------

    def _deactivate_at_server(self, plan: list[tuple[ComputerState, list[str]]]) -> None:
        """R24: through the activation server, before anything is recorded."""
        server = self.adapters.activation_server
        for c, names in plan:
            for name in names:
                installed = c.products.get(name)
                pid = installed.public_id if installed is not None else None
                device = c.device

                def call(
                    pid: PublicId | None = pid, device: str = device, name: str = name
                ) -> None:
                    server.deactivate(pid, device, name)

                self._ask("the activation server", call)

    @staticmethod
    def _holding(c: ComputerState, names: Iterable[str]) -> list[str]:
        return [n for n in names if n in c.products and (
            c.products[n].activated or c.products[n].suspended
        )]

    def _deactivate_on(
        self, unit: _Unit, c: ComputerState, names: list[str], reason: str, now: datetime,
        who: str,
    ) -> None:
        seats = [
            (p.public_id, n) for n in names
            if (p := c.products.get(n)) is not None and p.holds_seat and p.public_id is not None
        ]
        unit.add(computer.deactivate(c, names, reason, now, who))
        for pid, n in seats:
            unit.add(
                license.release_seats(unit.license(pid), [(c.computer_id, n)], reason, now, who)
            )

    def deactivate_products(
        self,
        actor: UserId,
        computer_ids: Iterable[ComputerId],
        products: Iterable[str] | None = None,
    ) -> TaskId:
        """R24: deactivate products on computers through the activation server.

        ``products`` None: every installed product; otherwise only those (each
        must be installed on every computer named). Works for products
        activated outside this console too. Frees the seats. USE is needed on
        each computer's group.
        """
        uid = self._actor(actor)
        ids = self._computer_ids(computer_ids)
        chosen = None if products is None else self._product_names(products)
        if chosen is not None and not chosen:
            raise InvalidInput("name at least one product to deactivate, or None for all")
        task_id = TaskId.random()

        def plan() -> tuple[DirectoryState, list[tuple[ComputerState, list[str]]]]:
            d = self._directory()
            comps = [self._visible_computer(d, uid, c) for c in ids]
            out = []
            for c in comps:
                assert c.group is not None
                self._require(
                    d, uid, c.group, Permission.USE, f"deactivating products on {c.name!r}"
                )
                names = sorted(c.products) if chosen is None else list(chosen)
                missing = [n for n in names if n not in c.products]
                if missing:
                    raise InvalidInput(
                        f"computer {c.name!r} has no {missing[0]!r} installed "
                        f"(installed: {', '.join(sorted(c.products)) or 'nothing'})"
                    )
                out.append((c, names))
            return d, out

        self._refresh()
        self._deactivate_at_server(plan()[1])

        def decide() -> Decision[TaskId]:
            _, current = plan()
            unit = _Unit(self)
            now, who = self._now(), user_actor(uid)
            for c, names in current:
                self._deactivate_on(
                    unit, unit.computer(c.computer_id), names, "deactivated by a user", now, who
                )
            scope = tuple(sorted({c.group for c, _ in current if c.group is not None}, key=str))
            unit.add(
                task.create(
                    unit.task(task_id), kind=TaskKind.DEACTIVATION, user=uid, targets=tuple(ids),
                    scope=scope, public_id=None,
                    product=None if chosen is None else ", ".join(chosen),
                    new_seats=(), now=now, actor=who,
                )
            )
            for cid in ids:
                unit.add(task.record_result(
                    unit.task(task_id), cid, succeeded=True, reason=None, now=now, actor=who
                ))
            return task_id, unit.events

        return self._execute(decide)

    def _removal(
        self, unit: _Unit, c: ComputerState, deactivate: bool, now: datetime, who: str
    ) -> tuple[tuple[PublicId, str], ...]:
        """Remove one computer; returns the seats that stay used (R25)."""
        c = unit.computer(c.computer_id)
        if deactivate:
            self._deactivate_on(
                unit, c, self._holding(c, c.products), "the computer was removed", now, who
            )
            c = unit.computer(c.computer_id)
        left = tuple(c.seats())
        unit.add(computer.remove(
            c, deactivated=deactivate, seats_left=tuple(f"{p} {n}" for p, n in left),
            now=now, actor=who,
        ))
        return left

    def remove_computer(
        self, actor: UserId, computer_id: ComputerId, *, deactivate: bool, dry_run: bool = False
    ) -> RemovalResult:
        """R25: remove a computer from management (WRITE on its group).

        With ``deactivate=True`` its products are deactivated through the
        activation server first and the seats freed; without, the seats stay
        used and ``RemovalResult.warning`` says they can no longer be freed
        from here. The computer is ``NotFound`` afterwards; its history stays.
        ``dry_run``: the same checks and answer, nothing asked of the server
        and nothing recorded.
        """
        uid = self._actor(actor)
        cid = ComputerId(computer_id)
        deactivating = _bool(deactivate, "deactivate")
        previewing = _bool(dry_run, "dry_run")

        def check() -> tuple[DirectoryState, ComputerState]:
            d = self._directory()
            c = self._visible_computer(d, uid, cid)
            assert c.group is not None
            self._require(d, uid, c.group, Permission.WRITE, f"removing computer {c.name!r}")
            return d, c

        self._refresh()
        _, first = check()
        if deactivating and not previewing:
            self._deactivate_at_server([(first, self._holding(first, first.products))])

        def decide() -> Decision[RemovalResult]:
            _, c = check()
            unit = _Unit(self)
            left = self._removal(unit, c, deactivating, self._now(), user_actor(uid))
            warning = None
            if left:
                seats = ", ".join(f"{p} for {n}" for p, n in left)
                warning = (
                    f"computer {c.name!r} was removed without deactivating its products: "
                    f"{len(left)} seat(s) stay used ({seats}) and can no longer be freed "
                    "(deactivated) from this console"
                )
            return RemovalResult(computer_id=cid, warning=warning, seats_left=left), unit.events

        return self._execute(decide, dry_run=previewing)

    def _not_connecting(
        self, uid: UserId, gid: GroupId, days: int, unmanaged: bool
    ) -> list[ComputerState]:
        """R26's selection: the computers of ``gid`` and its subgroups not connected
        (or, never connected, registered) for ``days``; without an agent only with
        ``unmanaged``. WRITE is needed on the group."""
        d = self._directory()
        self._visible_group(d, uid, gid)
        self._require(d, uid, gid, Permission.WRITE, "deleting not connecting computers")
        groups = d.subgroups(gid)
        cutoff = self._now() - timedelta(days=days)
        self._refresh()  # the views list the group's computers
        out = []
        for c in self._computer_states([ComputerId(k) for k in self.views.computers_in(groups)]):
            seen = c.last_seen
            if not c.exists or c.group not in groups or seen is None:
                continue
            if (c.managed or unmanaged) and seen <= cutoff:
                out.append(c)
        return out

    def not_connecting_computers(
        self, actor: UserId, group: GroupId, days: int, *, remove_unmanaged: bool = False
    ) -> list[ComputerView]:
        """What ``delete_not_connecting_computers`` would remove now, by name (R26):
        the same selection and the same refusals, recording nothing."""
        uid = self._actor(actor)
        gid = GroupId(group)
        _days(days)
        unmanaged = _bool(remove_unmanaged, "remove_unmanaged")
        chosen = {c.computer_id for c in self._not_connecting(uid, gid, days, unmanaged)}
        d = self._directory()
        states, tags, licenses = self.views.computer_rows(frozenset(d.subgroups(gid)))
        views = [self._computer_view(c, tags, licenses) for c in states if c.computer_id in chosen]
        return sorted(views, key=lambda v: (v.name.casefold(), str(v.computer_id)))

    def delete_not_connecting_computers(
        self,
        actor: UserId,
        group: GroupId,
        days: int,
        *,
        deactivate_license: bool,
        remove_unmanaged: bool = False,
    ) -> TaskId:
        """R26: remove the computers of a group and its subgroups not connected for ``days``.

        A computer that never connected counts from its registration.
        Computers without an agent are removed only with ``remove_unmanaged``
        (they never connect, so they count from registration). With
        ``deactivate_license`` their products are deactivated through the
        activation server and the seats freed. WRITE is needed on the group.
        """
        uid = self._actor(actor)
        gid = GroupId(group)
        _days(days)
        deactivating = _bool(deactivate_license, "deactivate_license")
        unmanaged = _bool(remove_unmanaged, "remove_unmanaged")
        task_id = TaskId.random()

        def candidates() -> list[ComputerState]:
            return self._not_connecting(uid, gid, days, unmanaged)

        self._refresh()
        planned = candidates()
        if deactivating:
            self._deactivate_at_server([(c, self._holding(c, c.products)) for c in planned])
        planned_ids = {c.computer_id for c in planned}

        def decide() -> Decision[TaskId]:
            current = [c for c in candidates() if c.computer_id in planned_ids]
            unit = _Unit(self)
            now, who = self._now(), user_actor(uid)
            for c in current:
                self._removal(unit, unit.computer(c.computer_id), deactivating, now, who)
            targets = tuple(c.computer_id for c in current)
            unit.add(task.create(
                unit.task(task_id), kind=TaskKind.DELETE_NOT_CONNECTING, user=uid,
                targets=targets, scope=(gid,), public_id=None, product=None, new_seats=(),
                now=now, actor=who,
            ))
            for cid in targets:
                unit.add(task.record_result(
                    unit.task(task_id), cid, succeeded=True, reason=None, now=now, actor=who
                ))
            return task_id, unit.events

        return self._execute(decide)

    # -- suspension (R27) ------------------------------------------------------------------

    def _effects_of_license_events(
        self, events: list[DomainEvent], now: datetime, actor: str
    ) -> list[DomainEvent]:
        """R27: a suspension deactivates the products activated with the license
        (their seats kept); an unsuspension reactivates them."""
        out = list(super()._effects_of_license_events(events, now, actor))
        unit = _Unit(self)
        for e in events:
            if not isinstance(e, LicenseSuspended | LicenseUnsuspended):
                continue
            pid = e.public_id
            suspending = isinstance(e, LicenseSuspended)
            for cid_text, product in sorted(self._license(pid).seats):
                c = unit.computer(ComputerId(cid_text))
                p = c.products.get(product)
                if not c.exists or p is None or p.public_id != pid:
                    continue
                if suspending and p.activated:
                    unit.add(computer.deactivate(
                        c, [product], f"license {pid} was suspended by the vendor", now, actor,
                        suspended=True,
                    ))
                elif not suspending and p.suspended:
                    unit.add(computer.activate(
                        c, product, pid, task_id=None, reactivated=True, now=now, actor=actor
                    ))
        return out + unit.events

    # -- queries -----------------------------------------------------------------------------

    @staticmethod
    def _computer_view(
        c: ComputerState, tags: Mapping[str, frozenset[str]], licenses: Mapping[str, Any]
    ) -> ComputerView:
        assert c.group is not None
        products = []
        for name, p in sorted(c.products.items()):
            validity = None
            if p.public_id is not None:
                lic = licenses.get(str(p.public_id))
                if lic is not None:
                    validity = Validity(
                        valid_until=row_expires(lic), subscription=lic["subscription"]
                    )
            products.append(ProductView(
                product=name, public_id=p.public_id, activated=p.activated,
                validity=validity, suspended=p.suspended,
            ))
        return ComputerView(
            computer_id=c.computer_id,
            name=c.name,
            group=c.group,
            fingerprint=c.fingerprint,
            last_connected=c.last_connected,
            products=tuple(products),
            managed=c.managed,
            registered_at=c.registered_at,
            tags=tags.get(computer_target(c.computer_id), frozenset()),
        )

    def computer(
        self, actor: UserId, computer_id: ComputerId, *, as_of: datetime | int | None = None
    ) -> ComputerView:
        """A computer with each product's license and its validity (R9, R20);
        with ``as_of``, as it was then (R30)."""
        cid = ComputerId(computer_id)
        with self._reading(as_of) as (views, d, _):
            uid = self._actor(actor, d)
            states, tags, licenses = views.computer_rows(
                visible_groups(d, uid), computer_id=str(cid)
            )
        if not states:
            raise NotFound("computer", cid)
        return self._computer_view(states[0], tags, licenses)

    def computers(
        self,
        actor: UserId,
        *,
        tags: Iterable[str] = (),
        as_of: datetime | int | None = None,
    ) -> list[ComputerView]:
        """The computers the actor may see, by name; with ``tags``, those carrying
        any (R28); with ``as_of``, as they were then (R30)."""
        wanted = frozenset(
            str(t).strip().casefold() for t in ((tags,) if isinstance(tags, str) else tags)
        )
        with self._reading(as_of) as (views, d, _):
            uid = self._actor(actor, d)
            states, tags_of, licenses = views.computer_rows(visible_groups(d, uid))
        rows = [self._computer_view(c, tags_of, licenses) for c in states]
        if wanted:
            rows = [v for v in rows if any(t.casefold() in wanted for t in v.tags)]
        return rows

    def tasks_starting(self, actor: UserId, prefix: str, *, limit: int = 10) -> list[TaskId]:
        """The ids of the client tasks the actor may see whose id starts with
        ``prefix`` (at least 4 hexadecimal digits and dashes), at most ``limit``,
        in id order: what a person typing an id's first characters means."""
        text = prefix.strip().lower() if isinstance(prefix, str) else ""
        if len(text) < 4 or text.strip("0123456789abcdef-"):
            raise InvalidInput(
                f"a task id prefix is 4 or more hexadecimal digits (and dashes), not {prefix!r}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be a whole number ≥ 1, not {limit!r}")
        self._refresh()
        # 4 hex digits or more: about one task in 65,536 shares a prefix, so the
        # candidates are few and each is checked as ``task`` checks it (R21)
        found: list[TaskId] = []
        for key in self.views.keys_starting("task", text):
            tid = TaskId(uuid.UUID(key))
            try:
                self.task(actor, tid)
            except NotFound:
                continue
            found.append(tid)
            if len(found) == limit:
                break
        return found

    def task(
        self, actor: UserId, task_id: TaskId, *, as_of: datetime | int | None = None
    ) -> TaskView:
        """A client task and each target's result; visible to its creator and to
        users who see every group it acted on; with ``as_of``, as it was then (R30)."""
        tid = TaskId(task_id)
        with self._reading(as_of) as (views, d, _):
            uid = self._actor(actor, d)
            t = views.state("task", str(tid))
            visible = d.visible_groups(uid)
        if t is None or not t.exists or t.kind is None or not (
            t.user == uid or all(g in visible for g in t.scope)
        ):
            raise NotFound("client task", tid)
        return TaskView(
            task_id=tid,
            kind=t.kind,
            results={
                cid: TargetResult(state=r.state, reason=r.reason)
                for cid, r in t.targets.items()
            },
            public_id=t.public_id,
            product=t.product,
            created_at=t.created_at,
        )


__all__ = ["ComputerCommands"]
