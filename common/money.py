"""Money as integer minor units with a lowercase ISO 4217 currency."""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec

# The ISO 4217 currencies of money (not metals, funds or test codes), lowercase as on the
# wire. A closed list rather than a pattern: "xyz" is three letters but no currency.
Currency = Literal[
    "aed",
    "afn",
    "all",
    "amd",
    "ang",
    "aoa",
    "ars",
    "aud",
    "awg",
    "azn",
    "bam",
    "bbd",
    "bdt",
    "bgn",
    "bhd",
    "bif",
    "bmd",
    "bnd",
    "bob",
    "brl",
    "bsd",
    "btn",
    "bwp",
    "byn",
    "bzd",
    "cad",
    "cdf",
    "chf",
    "clp",
    "cny",
    "cop",
    "crc",
    "cuc",
    "cup",
    "cve",
    "czk",
    "djf",
    "dkk",
    "dop",
    "dzd",
    "egp",
    "ern",
    "etb",
    "eur",
    "fjd",
    "fkp",
    "gbp",
    "gel",
    "ghs",
    "gip",
    "gmd",
    "gnf",
    "gtq",
    "gyd",
    "hkd",
    "hnl",
    "htg",
    "huf",
    "idr",
    "ils",
    "inr",
    "iqd",
    "irr",
    "isk",
    "jmd",
    "jod",
    "jpy",
    "kes",
    "kgs",
    "khr",
    "kmf",
    "kpw",
    "krw",
    "kwd",
    "kyd",
    "kzt",
    "lak",
    "lbp",
    "lkr",
    "lrd",
    "lsl",
    "lyd",
    "mad",
    "mdl",
    "mga",
    "mkd",
    "mmk",
    "mnt",
    "mop",
    "mru",
    "mur",
    "mvr",
    "mwk",
    "mxn",
    "myr",
    "mzn",
    "nad",
    "ngn",
    "nio",
    "nok",
    "npr",
    "nzd",
    "omr",
    "pab",
    "pen",
    "pgk",
    "php",
    "pkr",
    "pln",
    "pyg",
    "qar",
    "ron",
    "rsd",
    "rub",
    "rwf",
    "sar",
    "sbd",
    "scr",
    "sdg",
    "sek",
    "sgd",
    "shp",
    "sle",
    "sll",
    "sos",
    "srd",
    "ssp",
    "stn",
    "svc",
    "syp",
    "szl",
    "thb",
    "tjs",
    "tmt",
    "tnd",
    "top",
    "try",
    "ttd",
    "twd",
    "tzs",
    "uah",
    "ugx",
    "usd",
    "uyu",
    "uzs",
    "ved",
    "ves",
    "vnd",
    "vuv",
    "wst",
    "xaf",
    "xcd",
    "xof",
    "xpf",
    "yer",
    "zar",
    "zmw",
    "zwg",
    "zwl",
]
CURRENCIES: Final[frozenset[str]] = frozenset(get_args(Currency))
MinorUnits = Annotated[int, msgspec.Meta(ge=0, le=100_000_000_00)]


class Money(msgspec.Struct, frozen=True):
    """An amount in minor units (cents) of ``currency``."""

    amount: int
    currency: str


def percent_of(amount: int, percent: int | float) -> int:
    """``percent`` % of ``amount`` minor units, rounded half up, never negative."""
    # Work in integer hundredths of a percent so 12.5 % is exact.
    basis_points = round(percent * 100)
    return max(0, (amount * basis_points + 5_000) // 10_000)


# Minor units per major unit where it is not 100 (ISO 4217 exponents, as Stripe uses them).
ZERO_DECIMAL: Final[frozenset[str]] = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)
THREE_DECIMAL: Final[frozenset[str]] = frozenset({"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"})


def exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency`` (2 for most, 0 for ``jpy``)."""
    c = currency.lower()
    return 0 if c in ZERO_DECIMAL else 3 if c in THREE_DECIMAL else 2


def to_decimal(amount: int, currency: str) -> str:
    """``amount`` minor units as a decimal string in major units: 12345 usd → ``"123.45"``."""
    digits = exponent(currency)
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}"
