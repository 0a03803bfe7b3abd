"""Decoding Stripe's bracket-nested form parameters, as the SDK encodes them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

# The SDK's own encoder is the reference for what arrives on the wire.
from stripe._encode import _api_encode

from stripe_emulator.errors import StripeError
from stripe_emulator.forms import Params, apply_metadata, decode_pairs, decode_query


def test_nested_dicts_lists_and_appends() -> None:
    query = (
        "metadata[org]=acme&items[0][price]=price_a&items[0][quantity]=2"
        "&items[1][price]=price_b&expand[]=latest_invoice&expand[]=customer"
        "&subscription_details[items][0][id]=si_1&lookup_keys[]=a"
    )
    assert decode_query(query) == {
        "metadata": {"org": "acme"},
        "items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b"}],
        "expand": ["latest_invoice", "customer"],
        "subscription_details": {"items": [{"id": "si_1"}]},
        "lookup_keys": ["a"],
    }


def test_indexes_sort_numerically() -> None:
    pairs = [(f"lines[{i}][amount]", str(i)) for i in (10, 2, 1, 0)]
    assert [line["amount"] for line in decode_pairs(pairs)["lines"]] == ["0", "1", "2", "10"]


def test_empty_value_is_kept_to_unset_fields() -> None:
    assert decode_query("pause_collection=&metadata[k]=") == {
        "pause_collection": "",
        "metadata": {"k": ""},
    }


def test_params_coerce_integers_and_booleans() -> None:
    p = Params(decode_query("amount=1500&confirm=true&off_session=false&quantity=3"))
    assert p.integer("amount") == 1500
    assert p.flag("confirm") is True
    assert p.flag("off_session") is False
    assert p.integer("missing", 7) == 7


@pytest.mark.parametrize(
    ("query", "reader"),
    [
        ("amount=ten", lambda p: p.integer("amount")),
        ("confirm=maybe", lambda p: p.flag("confirm")),
        ("", lambda p: p.req_text("customer")),
    ],
)
def test_bad_params_are_400_naming_the_param(query: str, reader: Any) -> None:
    with pytest.raises(StripeError) as caught:
        reader(Params(decode_query(query)))
    assert caught.value.status == 400
    assert caught.value.param in ("amount", "confirm", "customer")


def test_nested_param_errors_name_the_full_path() -> None:
    p = Params(decode_query("items[0][quantity]=x"))
    with pytest.raises(StripeError) as caught:
        p.subs("items")[0].integer("quantity")
    assert caught.value.param == "items[0][quantity]"


def test_metadata_patch_semantics() -> None:
    current = {"a": "1", "b": "2"}
    apply_metadata(current, {"b": "", "c": "3"})
    assert current == {"a": "1", "c": "3"}
    apply_metadata(current, {})
    assert current == {}


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
# Characters that matter to form encoding: separators, brackets, escapes, non-ASCII.
_scalars = st.one_of(
    st.text(alphabet="ab &=[]%+/?é€", max_size=8),
    st.integers(min_value=-(10**9), max_value=10**9).map(str),
)


def _values(depth: int) -> st.SearchStrategy[Any]:
    """Stripe-shaped values: dicts nest freely, lists hold scalars or dicts (no lists)."""
    if depth == 0:
        return _scalars
    inner = _values(depth - 1)
    dicts = st.dictionaries(_keys, inner, min_size=1, max_size=3)
    return st.one_of(_scalars, dicts, st.lists(st.one_of(_scalars, dicts), min_size=1, max_size=3))


@given(st.dictionaries(_keys, _values(2), max_size=4))
def test_decoding_inverts_the_sdk_encoding(params: dict[str, Any]) -> None:
    encoded = urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")
    assert decode_query(encoded) == params
