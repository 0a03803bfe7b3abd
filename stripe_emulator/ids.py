"""Random Stripe-looking identifiers (`cus_…`, `sub_…`, `req_…`)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

# Lengths of the random part as Stripe prints them; everything else uses 24.
_LENGTHS = {"cus": 14, "prod": 14, "si": 14, "req": 14, "cs_test": 58, "whsec": 32}


def random_text(length: int, alphabet: str = _ALPHABET) -> str:
    # The modulo bias is irrelevant for ids; one call to the CSPRNG keeps this fast.
    return "".join(alphabet[b % len(alphabet)] for b in secrets.token_bytes(length))


def new_id(prefix: str) -> str:
    return f"{prefix}_{random_text(_LENGTHS.get(prefix, 24))}"


def invoice_prefix() -> str:
    """Customer invoice prefix such as `7FE1103A` (numbers look like `7FE1103A-0001`)."""
    return random_text(8, string.ascii_uppercase + string.digits)
