"""Print how many webhook triggers dj-stripe stored, validated and processed."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from djstripe.models import WebhookEventTrigger  # noqa: E402

triggers = WebhookEventTrigger.objects
print(
    triggers.count(), triggers.filter(valid=True).count(), triggers.filter(processed=True).count()
)
