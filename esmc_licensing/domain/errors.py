"""Every error the library raises on purpose.

Callers catch ``LicensingError`` for "the library said no"; the subclasses say
which rule or which port refused, so a product can map them to its own UI or
exit codes without parsing messages. Messages are written for a person and
never carry a license key or a credential.
"""

from __future__ import annotations


class LicensingError(Exception):
    """Base of every deliberate refusal; nothing was recorded when it is raised."""


class InvalidInput(LicensingError):
    """An argument has the wrong shape (a name, an id, a number)."""


class PermissionDenied(LicensingError):
    """The actor can see the object but lacks the permission level (R12, R14)."""


class NotFound(LicensingError):
    """The object does not exist or lies outside the actor's visibility (R14).

    Both cases produce the same message so that a denial leaks nothing.
    """

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = str(ident)
        super().__init__(f"{kind} {self.ident} not found")


class InvalidLicenseKey(InvalidInput):
    """Not of the R2 shape; the activation server was not asked."""


class InvalidPublicId(InvalidInput):
    """Not of the R1 shape."""


class LicenseKeyRejected(LicensingError):
    """Well-formed, but the activation server refused the key (R15)."""


class UnsupportedProduct(LicensingError):
    """The license is for a product the console cannot manage (R15)."""


class InvalidLicenseFile(LicensingError):
    """An offline license file failed a check; the message names the check (R16)."""


class ConfirmationRequired(LicensingError):
    """A removal was asked for without explicit confirmation (R19)."""


class PoolIsIndivisible(LicensingError):
    """The operation would split an MSP pool or a license (R6, R7)."""


class LicenseUnusable(LicensingError):
    """The license is expired, suspended or not registered (R21)."""


class OveruseRefused(LicensingError):
    """The license is at its overuse ceiling (R23)."""


class UnsupportedAccount(LicensingError):
    """Site accounts and distributor accounts cannot be connected (R17)."""


class AdapterUnavailable(LicensingError):
    """A port's service could not be reached or answered badly."""


class ConcurrencyConflict(LicensingError):
    """A racing command kept losing; its retries ran out."""


class AlreadyExists(LicensingError):
    """A name that must be unique (group, user, tag) is taken."""


class SecretUnavailable(LicensingError):
    """A secret was recorded encrypted with a data key this process does not hold (R32).

    Either the key was forgotten on purpose (crypto-shredding) or it is not
    configured here; every other fact about the object stays readable.
    """


class DataKeyMissing(InvalidInput):
    """A secret would be recorded but no data key is configured (R32).

    Raised before anything is written, so the store is unchanged; a store
    never keeps a license key or a password in plain text.
    """
