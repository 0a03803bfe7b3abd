"""schemathesis hooks for this API's contract where JSON Schema is looser than it.

JSON Schema counts ``43.0`` as an ``integer``; this API does not (API.md: integers are
integers, money is never a float) and refuses it with 400. So a *positive* case, one meant to
be valid, gets its integral floats written as integers; negative cases are left as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    if mode == GenerationMode.POSITIVE and isinstance(case.body, dict | list):
        case.body = _integers(case.body)
    return case
