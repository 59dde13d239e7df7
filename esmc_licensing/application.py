"""LicenseManagement: the application a product embeds.

It is composed of one mixin per area (``commands/``, ``queries.py``) over the
service core (``service.py``), which holds the command path, the aggregate
cache and the views.
"""

from __future__ import annotations

from .alerting import AlertQueries
from .commands.accounts import AccountCommands
from .commands.computers import ComputerCommands
from .commands.directory import DirectoryCommands
from .commands.history import HistoryCommands
from .commands.intake import IntakeCommands
from .commands.pools import PoolCommands
from .commands.secrets import SecretCommands
from .commands.tags import TagCommands
from .queries import Queries
from .service import ADMINISTRATOR_ID, ALL_GROUP_ID, EVOLVE

__all__ = ["ADMINISTRATOR_ID", "ALL_GROUP_ID", "EVOLVE", "LicenseManagement"]


class LicenseManagement(
    IntakeCommands,
    PoolCommands,
    TagCommands,
    DirectoryCommands,
    AccountCommands,
    ComputerCommands,
    HistoryCommands,
    SecretCommands,
    AlertQueries,
    Queries,
):
    """The license management of one console installation, over one event store.

    ``env`` takes eventsourcing's settings (PERSISTENCE_MODULE, SQLITE_DBNAME,
    POSTGRES_*, CIPHER_*, COMPRESSOR_TOPIC); with none it keeps everything in
    memory. ``adapters`` defaults to in-memory doubles, ``policy`` to
    ``Policy()``.
    """

    name = "LicenseManagement"
