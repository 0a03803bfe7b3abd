"""Products and prices, with Stripe's unique price lookup keys."""

from __future__ import annotations

from stripe_emulator.errors import invalid, missing
from stripe_emulator.forms import Params, apply_metadata
from stripe_emulator.ids import new_id
from stripe_emulator.objects import Obj, build, deleted, public
from stripe_emulator.routing import route
from stripe_emulator.state import State, newest_first, paginate, snapshot

INTERVALS = ("day", "week", "month", "year")


def plan_of(price: Obj) -> Obj:
    """The legacy `plan` view of a recurring price that subscription items still carry."""
    recurring = price["recurring"] or {}
    return build(
        "plan",
        id=price["id"],
        active=price["active"],
        amount=price["unit_amount"],
        amount_decimal=price["unit_amount_decimal"],
        billing_scheme=price["billing_scheme"],
        created=price["created"],
        currency=price["currency"],
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count"),
        metadata=dict(price["metadata"]),
        nickname=price["nickname"],
        product=price["product"],
        usage_type=recurring.get("usage_type", "licensed"),
    )


def _refresh_subscription_items(state: State, price: Obj) -> None:
    # Subscription items embed their price; keep those copies current like Stripe does.
    for sub in state.scan("subscription"):
        for item in sub["items"]["data"]:
            if item["price"]["id"] == price["id"]:
                state.touch(sub)
                item["price"] = public(price)
                item["plan"] = plan_of(price)


# -- products ---------------------------------------------------------------------------


def new_product(state: State, p: Params, product_id: str | None = None) -> Obj:
    if product_id and state.find(product_id):
        raise invalid(
            f"Product already exists: {product_id}", param="id", code="resource_already_exists"
        )
    now = state.now()
    product = build(
        "product",
        id=product_id or new_id("prod"),
        active=p.flag("active", True),
        created=now,
        description=p.text("description"),
        images=[],
        marketing_features=[],
        metadata={},
        name=p.req_text("name"),
        statement_descriptor=p.text("statement_descriptor"),
        tax_code=p.text("tax_code"),
        unit_label=p.text("unit_label"),
        updated=now,
        url=p.text("url"),
    )
    apply_metadata(product["metadata"], p.metadata())
    state.add(product)
    state.emit("product.created", product)
    return product


@route("POST", "/v1/products")
def create_product(state: State, p: Params) -> Obj:
    product = new_product(state, p, p.text("id"))
    if p.has("default_price_data"):
        data = p.sub("default_price_data")
        price = new_price(state, data, product=product)
        product["default_price"] = price["id"]
    return product


@route("GET", "/v1/products/{product_id}")
def retrieve_product(state: State, p: Params, product_id: str) -> Obj:
    return state.get("product", product_id)


@route("POST", "/v1/products/{product_id}")
def update_product(state: State, p: Params, product_id: str) -> Obj:
    product = state.get("product", product_id)
    before = snapshot(product)
    for field in ("name", "description", "statement_descriptor", "unit_label", "url"):
        if p.has(field):
            product[field] = p.text(field)
    if p.has("active"):
        product["active"] = p.flag("active")
    if p.has("default_price"):
        price_id = p.text("default_price")
        if price_id is not None:
            price = state.get("price", price_id, "default_price")
            if price["product"] != product["id"]:
                raise invalid(
                    "The default price must belong to this product.", param="default_price"
                )
        product["default_price"] = price_id
    apply_metadata(product["metadata"], p.metadata())
    product["updated"] = state.now()
    state.emit_update("product.updated", product, before)
    return product


@route("GET", "/v1/products")
def list_products(state: State, p: Params) -> Obj:
    items = state.scan("product")
    if p.has("active"):
        items = [o for o in items if o["active"] == p.flag("active")]
    ids = p.texts("ids")
    if ids:
        items = [o for o in items if o["id"] in ids]
    return paginate(newest_first(items), p, "/v1/products")


@route("DELETE", "/v1/products/{product_id}")
def delete_product(state: State, p: Params, product_id: str) -> Obj:
    product = state.get("product", product_id)
    if any(price["product"] == product_id for price in state.scan("price")):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    state.remove(product)
    state.emit("product.deleted", product)
    return deleted("product", product_id)


# -- prices -----------------------------------------------------------------------------


def _claim_lookup_key(state: State, price: Obj, key: str | None, transfer: bool) -> None:
    if key == price["lookup_key"]:
        return
    if key is not None:
        holder_id = state.lookup_keys.get(key)
        if holder_id is not None and holder_id != price["id"]:
            if not transfer:
                raise invalid(
                    f"A price (`{holder_id}`) already uses that lookup key.",
                    param="lookup_key",
                )
            holder = state.get("price", holder_id)
            before = snapshot(holder)
            holder["lookup_key"] = None
            _refresh_subscription_items(state, holder)
            state.emit_update("price.updated", holder, before)
        state.lookup_keys[key] = price["id"]
    if price["lookup_key"] is not None:
        state.lookup_keys.pop(price["lookup_key"], None)
    price["lookup_key"] = key


def new_price(state: State, p: Params, *, product: Obj | None = None) -> Obj:
    """A price from create params (`product` or `product_data`, amount, `recurring`)."""
    if product is None:
        if p.has("product"):
            product = state.get("product", p.req_text("product"), p.name("product"))
        elif p.has("product_data"):
            product = new_product(state, p.sub("product_data"))
        else:
            raise missing(p.name("product"))
    unit_amount = p.integer("unit_amount")
    if unit_amount is None:
        decimal = p.text("unit_amount_decimal")
        if decimal is None:
            raise missing(p.name("unit_amount"))
        unit_amount = int(float(decimal))
    if unit_amount < 0:
        raise invalid("unit_amount must be at least 0", param=p.name("unit_amount"))
    recurring = None
    if p.has("recurring"):
        r = p.sub("recurring")
        recurring = {
            "interval": r.choice("interval", INTERVALS) or "",
            "interval_count": r.integer("interval_count", 1),
            "meter": None,
            "trial_period_days": r.integer("trial_period_days"),
            "usage_type": r.choice("usage_type", ("licensed",), "licensed"),
        }
        if not recurring["interval"]:
            raise missing(r.name("interval"))
    price = build(
        "price",
        id=new_id("price"),
        active=p.flag("active", True),
        created=state.now(),
        currency=p.req_text("currency").lower(),
        lookup_key=None,
        metadata={},
        nickname=p.text("nickname"),
        product=product["id"],
        recurring=recurring,
        tax_behavior=p.text("tax_behavior", "unspecified"),
        type="recurring" if recurring else "one_time",
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
    )
    apply_metadata(price["metadata"], p.metadata())
    _claim_lookup_key(state, price, p.text("lookup_key"), p.flag("transfer_lookup_key"))
    state.add(price)
    state.emit("price.created", price)
    return price


@route("POST", "/v1/prices")
def create_price(state: State, p: Params) -> Obj:
    return new_price(state, p)


@route("GET", "/v1/prices/{price_id}")
def retrieve_price(state: State, p: Params, price_id: str) -> Obj:
    return state.get("price", price_id)


@route("POST", "/v1/prices/{price_id}")
def update_price(state: State, p: Params, price_id: str) -> Obj:
    price = state.get("price", price_id)
    before = snapshot(price)
    if p.has("active"):
        price["active"] = p.flag("active")
    if p.has("nickname"):
        price["nickname"] = p.text("nickname")
    if p.has("lookup_key"):
        _claim_lookup_key(state, price, p.text("lookup_key"), p.flag("transfer_lookup_key"))
    apply_metadata(price["metadata"], p.metadata())
    _refresh_subscription_items(state, price)
    state.emit_update("price.updated", price, before)
    return price


@route("GET", "/v1/prices")
def list_prices(state: State, p: Params) -> Obj:
    items = state.scan("price")
    if p.has("active"):
        items = [o for o in items if o["active"] == p.flag("active")]
    for field in ("product", "currency", "type"):
        value = p.text(field)
        if value is not None:
            items = [o for o in items if o[field] == value]
    keys = p.texts("lookup_keys")
    if keys:
        items = [o for o in items if o["lookup_key"] in keys]
    interval = p.sub("recurring").text("interval")
    if interval:
        items = [o for o in items if (o["recurring"] or {}).get("interval") == interval]
    return paginate(newest_first(items), p, "/v1/prices")
