"""dj-stripe's own URLs: the webhook endpoint is /stripe/webhook/<uuid>/."""

from django.urls import include, path

urlpatterns = [path("stripe/", include("djstripe.urls", namespace="djstripe"))]
