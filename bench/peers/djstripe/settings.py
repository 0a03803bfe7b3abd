"""The smallest Django project that serves dj-stripe's webhook endpoint (benchmark peer only)."""

import os
from urllib.parse import urlsplit

import stripe

_db = urlsplit(os.environ["DJSTRIPE_DATABASE_URL"])

SECRET_KEY = "bench-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "djstripe"]
# What every `startproject` has and a webhook endpoint uses: CommonMiddleware (it also sets
# Content-Length, as our API does, so neither side answers chunked).
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username or "postgres",
        "PASSWORD": _db.password or "",
        "HOST": _db.hostname or "127.0.0.1",
        "PORT": _db.port or 5432,
        "CONN_MAX_AGE": 600,  # one connection per thread, kept (as a deployment would)
    }
}
LOGGING = {"version": 1, "root": {"level": "ERROR"}}

# dj-stripe: test mode, signature verification (as the service does), and every API
# call it makes (it re-fetches each object it is told about) to the project's emulator.
STRIPE_LIVE_MODE = False
STRIPE_TEST_SECRET_KEY = "sk_test_benchDjStripePeer0000000000"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
stripe.api_base = os.environ["STRIPE_API_BASE"]
