"""Account credentials: a secret value (R2, R17).

Kept apart from the account decider so that events can carry it without an
import cycle.
"""

from __future__ import annotations

from .errors import InvalidInput, LicensingError

#: longest username / password accepted (the vendor's own limits are lower)
MAX_CREDENTIAL_LENGTH = 256


class AccountRejected(LicensingError):
    """The account service refused the credentials (wrong username or password)."""


class Credentials:
    """An account's username and password (R17).

    A secret: ``repr`` and ``str`` show the username only. The password is
    read with :meth:`reveal_password`, which only account adapters call.
    """

    __slots__ = ("_password", "_username")
    _username: str
    _password: str

    def __init__(self, username: object, password: object) -> None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidInput("account credentials are a username and a password, both text")
        name = username.strip()
        if not name:
            raise InvalidInput("an account username cannot be empty")
        if not password:
            raise InvalidInput("an account password cannot be empty")
        if len(name) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH:
            raise InvalidInput(
                f"account usernames and passwords have at most {MAX_CREDENTIAL_LENGTH} characters"
            )
        if any(ord(c) < 32 for c in name):
            raise InvalidInput("an account username cannot contain control characters")
        object.__setattr__(self, "_username", name)
        object.__setattr__(self, "_password", password)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are immutable")

    @property
    def username(self) -> str:
        return self._username

    def reveal_password(self) -> str:
        """The password, for the account service adapters only."""
        return self._password

    def __repr__(self) -> str:
        return f"Credentials(username={self._username!r}, password=<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Credentials)
            and other._username == self._username
            and other._password == self._password
        )

    def __hash__(self) -> int:
        return hash(("Credentials", self._username, self._password))

    def __reduce__(self) -> tuple[type[Credentials], tuple[str, str]]:
        return (Credentials, (self._username, self._password))


class UnavailableCredentials(Credentials):
    """Credentials whose password was recorded with a data key that is not
    configured (R32): the account and its username stay, the password cannot
    be revealed, so a sync asks for the account to be connected again."""

    __slots__ = ("key_id",)
    key_id: str

    def __init__(self, username: str, key_id: object) -> None:
        object.__setattr__(self, "_username", username)
        object.__setattr__(self, "_password", "")
        object.__setattr__(self, "key_id", str(key_id))

    def reveal_password(self) -> str:
        from .errors import SecretUnavailable

        raise SecretUnavailable(
            f"the password of account {self._username!r} was recorded with data key "
            f"{self.key_id}, which is not configured (forgotten or missing); connect "
            "the account again with its password"
        )

    def __repr__(self) -> str:
        return f"UnavailableCredentials(username={self._username!r}, key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnavailableCredentials)
            and other._username == self._username
            and other.key_id == self.key_id
        )

    def __hash__(self) -> int:
        return hash(("UnavailableCredentials", self._username, self.key_id))

    def __reduce__(self) -> tuple[type[UnavailableCredentials], tuple[str, str]]:
        return (UnavailableCredentials, (self._username, self.key_id))
