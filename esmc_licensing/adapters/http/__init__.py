"""HTTP implementations of the ports (httpx): EMA2, EBA/ELA accounts, activation server.

See docs/formats/vendor-apis.md for the APIs and
``esmc_licensing.testing.vendor_http`` for a server that serves them from the
in-memory vendor.
"""

from ._base import BadPayload, RetryPolicy
from .clients import (
    EMA2_STATES,
    MAX_TAKE,
    AccountApiClient,
    Ema2Client,
    HttpAccounts,
    HttpActivationServer,
)

__all__ = [
    "EMA2_STATES",
    "MAX_TAKE",
    "AccountApiClient",
    "BadPayload",
    "Ema2Client",
    "HttpAccounts",
    "HttpActivationServer",
    "RetryPolicy",
]
