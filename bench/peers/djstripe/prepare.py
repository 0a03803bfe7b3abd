"""Migrate the peer's database and register one webhook endpoint; prints its URL path.

Usage: python prepare.py <webhook secret>
"""

import os
import sys
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from djstripe.models import Account, APIKey, WebhookEndpoint  # noqa: E402

ENDPOINT = uuid.UUID("00000000-0000-4000-8000-00000000be9c")

call_command("migrate", verbosity=0, interactive=False)
# dj-stripe asks Stripe which account an API key belongs to (GET /v1/account, which the
# emulator does not serve) unless it already knows: tell it, as a synced install would.
account, _ = Account.objects.get_or_create(
    id="acct_bench",
    defaults={
        "livemode": False,
        "stripe_data": {
            "id": "acct_bench",
            "object": "account",
            "country": "US",
            "default_currency": "usd",
            "email": "bench@example.test",
            "type": "standard",
            "charges_enabled": True,
            "details_submitted": True,
            "settings": {"dashboard": {"display_name": "Bench"}},
        },
    },
)
key = settings.STRIPE_TEST_SECRET_KEY
APIKey.objects.filter(secret=key).delete()
APIKey.objects.create(secret=key, type="secret", livemode=False, djstripe_owner_account=account)
WebhookEndpoint.objects.filter(djstripe_uuid=ENDPOINT).delete()
WebhookEndpoint.objects.create(
    id="we_bench",
    livemode=False,
    api_version="2024-06-20",
    enabled_events=["*"],
    secret=sys.argv[1],
    status="enabled",
    url=f"http://127.0.0.1/stripe/webhook/{ENDPOINT}/",
    djstripe_uuid=ENDPOINT,
    djstripe_validation_method="verify_signature",
    djstripe_tolerance=300,
)
print(f"/stripe/webhook/{ENDPOINT}/")
