"""Enumerations and small value objects shared by the aggregates and views."""

from __future__ import annotations

import enum
import functools
import unicodedata
from datetime import date
from fractions import Fraction

import attrs

from .errors import InvalidInput
from .ids import PublicId


class LicenseType(enum.Enum):
    """R3."""

    BUSINESS = "BUSINESS"
    TRIAL = "TRIAL"
    MSP = "MSP"
    NFR = "NFR"


class Source(enum.Enum):
    """How a license entered the console (R4)."""

    EBA = "EBA"
    EMA2 = "EMA2"
    ELA = "ELA"
    LICENSE_KEY = "LICENSE_KEY"
    OFFLINE_FILE = "OFFLINE_FILE"


class Permission(enum.IntEnum):
    """Access levels for licenses (R11); a higher level includes the lower ones."""

    READ = 1
    USE = 2
    WRITE = 3


class StatusLevel(enum.IntEnum):
    """R8 levels; the integer order is "better" to "worse"."""

    OK = 0
    WARNING = 1
    ERROR = 2
    EXPIRED = 3
    SUSPENDED = 4


class StatusReason(enum.Enum):
    EXPIRING = "EXPIRING"
    AT_RISK_OF_OVERUSE = "AT_RISK_OF_OVERUSE"
    NOT_REGISTERED = "NOT_REGISTERED"
    OBSOLETE = "OBSOLETE"
    OVERUSED = "OVERUSED"
    EXPIRED = "EXPIRED"
    SUSPENDED = "SUSPENDED"

    @property
    def level(self) -> StatusLevel:
        return _REASON_LEVEL[self]


_REASON_LEVEL = {
    StatusReason.EXPIRING: StatusLevel.WARNING,
    StatusReason.AT_RISK_OF_OVERUSE: StatusLevel.WARNING,
    StatusReason.NOT_REGISTERED: StatusLevel.ERROR,
    StatusReason.OBSOLETE: StatusLevel.ERROR,
    StatusReason.OVERUSED: StatusLevel.ERROR,
    StatusReason.EXPIRED: StatusLevel.EXPIRED,
    StatusReason.SUSPENDED: StatusLevel.SUSPENDED,
}


class OverusePolicy(enum.Enum):
    """R23: how far activations started here may go beyond a license's units."""

    NO_OVERUSE = "NO_OVERUSE"
    ALLOW_1_25X = "ALLOW_1_25X"
    ALLOW_1_5X = "ALLOW_1_5X"
    ALLOW_2X = "ALLOW_2X"
    ALWAYS_ALLOW = "ALWAYS_ALLOW"

    def ceiling(self, units: int) -> int | None:
        """The most seats activations may take, or None for no ceiling.

        Exact integer arithmetic: ⌊units × factor⌋ with a rational factor.
        """
        factor = _OVERUSE_FACTOR[self]
        if factor is None:
            return None
        return (units * factor.numerator) // factor.denominator


_OVERUSE_FACTOR: dict[OverusePolicy, Fraction | None] = {
    OverusePolicy.NO_OVERUSE: Fraction(1),
    OverusePolicy.ALLOW_1_25X: Fraction(5, 4),
    OverusePolicy.ALLOW_1_5X: Fraction(3, 2),
    OverusePolicy.ALLOW_2X: Fraction(2),
    OverusePolicy.ALWAYS_ALLOW: None,
}


class AccountKind(enum.Enum):
    EBA = "EBA"
    EMA2 = "EMA2"
    ELA = "ELA"


class CompanyAccess(enum.Enum):
    READ = "READ"
    WRITE = "WRITE"
    NO_ACCESS = "NO_ACCESS"


class Ema2AccountType(enum.Enum):
    MSP = "MSP"
    MANAGED_MSP = "MANAGED_MSP"
    MSP_MANAGER = "MSP_MANAGER"
    DISTRIBUTOR = "DISTRIBUTOR"


#: Products this console can manage (R15). Home products cannot be managed.
MANAGEABLE_PRODUCTS: frozenset[str] = frozenset(
    {
        "ESET Endpoint Antivirus",
        "ESET Endpoint Security",
        "ESET Server Security",
        "ESET File Security",
        "ESET Mail Security",
        "ESET Mail Security for Microsoft Exchange Server",
        "ESET Security for Microsoft SharePoint Server",
        "ESET Gateway Security",
        "ESET Full Disk Encryption",
        "ESET Inspect",
        "ESET Secure Authentication",
        "ESET Endpoint Antivirus for macOS",
        "ESET Endpoint Security for Android",
        "ESET Server Security for Linux",
        "ESET PROTECT Entry",
        "ESET PROTECT Advanced",
        "ESET PROTECT Complete",
    }
)


@functools.lru_cache(maxsize=64)
def _ratio(value: float) -> Fraction:
    """The ratio as the exact decimal it is written as (asked for every status)."""
    ratio = Fraction(str(value))
    if not 0 < ratio <= 1:
        raise InvalidInput(f"at_risk_ratio must be in (0, 1], got {value}")
    return ratio


@attrs.frozen
class Policy:
    """Thresholds of R8 and the overuse policy of R23.

    ``at_risk_ratio`` is compared exactly (as the decimal it is written as), so
    0.9 means "more than 9/10 of the units", with no floating-point drift.
    """

    expiring_days: int = attrs.field(default=30)
    at_risk_ratio: float = attrs.field(default=0.9)
    overuse: OverusePolicy = OverusePolicy.NO_OVERUSE
    manageable_products: frozenset[str] = MANAGEABLE_PRODUCTS

    @expiring_days.validator
    def _check_days(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(f"expiring_days must be a whole number ≥ 0, got {value!r}")

    @at_risk_ratio.validator
    def _check_ratio(self, _: attrs.Attribute[float], value: float) -> None:
        _ratio(value)

    @property
    def at_risk_fraction(self) -> Fraction:
        return _ratio(self.at_risk_ratio)


@attrs.frozen
class LicenseDetails:
    """What the vendor says about a license: the input of intake and sync.

    Adapters parse payloads into this; nothing else crosses the port.
    """

    public_id: PublicId = attrs.field(converter=PublicId)
    product: str
    units: int
    license_type: LicenseType = LicenseType.BUSINESS
    product_code: str = ""
    offline_units: int = 0
    subunits: int = 0
    expires: date | None = None
    subscription: bool = False
    owner: str = ""
    contact: str = ""
    license_user: str = ""
    registered: bool = True
    registration_url: str | None = None
    suspended: bool = False
    obsolete: bool = False
    used_units: int = 0


#: R33: the longest name accepted
MAX_NAME_LENGTH = 200

#: Unicode categories refused in a name (R33): control (escape sequences), format
#: (zero-width spaces, bidirectional overrides and marks), surrogates (no valid
#: text holds one alone), line and paragraph separators, and unassigned code points
#: (what they will mean is not known yet)
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})

#: Scripts whose letters are look-alikes of Latin ones (and of each other): a
#: name mixing two of them in one word is how ``Аdministrator`` (Cyrillic А)
#: passes for ``Administrator``. Other scripts may follow Latin (``Tokyo 東京``).
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def _script(char: str) -> str | None:
    """The script of a letter as its Unicode name starts (None for non-letters)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def mixed_script_word(name: str) -> str | None:
    """A word of ``name`` (a run of letters and marks) mixing letters of two
    look-alike scripts, if any: ``PC-Москва`` is two words, ``Аdmin`` one."""
    word: list[str] = []
    for char in (*name, " "):
        if unicodedata.category(char)[0] in "LM":
            word.append(char)
            continue
        if len({_script(c) for c in word} & _CONFUSABLE_SCRIPTS) > 1:
            return "".join(word)
        word = []
    return None


def refused_character(text: str) -> str | None:
    """The first character R33 refuses in a name, if any."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def describe_character(char: str) -> str:
    """A refused character as a person can read it (never the character itself)."""
    label = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} {label}".strip()


def name_key(value: object) -> str:
    """How a name given to find something is compared: NFC, trimmed, case-folded.

    Lenient on purpose: names stored by earlier versions (which R33 would now
    refuse) must still be found.
    """
    if not isinstance(value, str):
        raise InvalidInput("a name must be text")
    return normalise_name(value).casefold()


def lookup_name(kind: str, value: object) -> str:
    """A name given to find an existing object: text, normalised, not empty.

    Not checked against R33, so objects named by earlier versions stay reachable.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"a {kind} name must be text")
    name = normalise_name(value)
    if not name:
        raise InvalidInput(f"a {kind} name cannot be empty")
    return name


def normalise_name(value: str) -> str:
    """NFC, surrounding whitespace removed (R33); no check."""
    try:
        return unicodedata.normalize("NFC", value).strip()
    except UnicodeError:  # pragma: no cover - normalize accepts any str
        return value.strip()


def check_name(
    kind: str, value: object, max_length: int = MAX_NAME_LENGTH, *, lookalikes: bool = True
) -> str:
    """A new name of a group, user, tag, filter or computer, as R33 keeps it.

    Normalised (NFC, trimmed) and refused when empty, too long, or holding a
    control, format or bidirectional character: such names look like another
    name, hide text, or rewrite the terminal they are printed on. With
    ``lookalikes`` a word mixing Latin, Cyrillic or Greek letters is refused too
    (a name posing as another). The message never repeats the offending
    character, only its code point.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"a {kind} name must be text")
    name = normalise_name(value)
    if not name:
        raise InvalidInput(f"a {kind} name cannot be empty")
    bad = refused_character(name)
    if bad is not None:
        raise InvalidInput(
            f"a {kind} name cannot contain control, format or bidirectional characters "
            f"({describe_character(bad)})"
        )
    if len(name) > max_length:
        raise InvalidInput(
            f"a {kind} name can have at most {max_length} characters, this one has {len(name)}"
        )
    if lookalikes:
        word = mixed_script_word(name)
        if word is not None:
            scripts = sorted({s for c in word if (s := _script(c)) in _CONFUSABLE_SCRIPTS})
            raise InvalidInput(
                f"a {kind} name cannot mix {' and '.join(s.title() for s in scripts)} letters "
                "in one word: it would look like another name"
            )
    return name


#: what a terminal must never receive raw from outside (R33): control (escape
#: sequences), format (bidirectional overrides), separators, private and unassigned
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"})


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, format or bidirectional character written as
    its Python escape (``\\x1b``, ``\\u202e``), so that text from outside (names,
    vendor payloads, agent results) cannot rewrite a terminal it is printed on."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if (char == "\n" and keep_newlines) or (
            unicodedata.category(char) not in _ESCAPED_CATEGORIES
        ):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)
