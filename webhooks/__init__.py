"""Outbound webhooks: events recorded with the change they announce, signed to helpdesks."""
