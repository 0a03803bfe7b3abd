"""The finance mirror, issue 14: one-off payments, links from credits to incidents, ordering keys."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T13:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "payment mirror; credit note / refund links and ordering keys"


class RawTable(Table):
    pass


_FORWARDS = (
    """
    CREATE TABLE IF NOT EXISTS payment (
        id varchar(40) PRIMARY KEY,
        stripe_payment_intent_id varchar(100) NOT NULL UNIQUE,
        stripe_charge_id varchar(100) NULL,
        customer_id varchar(40) NULL,
        fast_track_purchase_id varchar(40) NULL,
        amount bigint NOT NULL DEFAULT 0,
        amount_received bigint NOT NULL DEFAULT 0,
        amount_refunded bigint NOT NULL DEFAULT 0,
        currency varchar(3) NOT NULL,
        status varchar(40) NOT NULL,
        description text NULL,
        created timestamptz NOT NULL,
        paid_at timestamptz NULL,
        stripe_object jsonb NOT NULL DEFAULT jsonb_build_object(),
        stripe_event_key varchar(160) NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX IF NOT EXISTS payment_customer_id ON payment (customer_id)",
    "CREATE INDEX IF NOT EXISTS payment_status ON payment (status)",
    "CREATE INDEX IF NOT EXISTS payment_created ON payment (created)",
    "CREATE INDEX IF NOT EXISTS payment_fast_track_purchase_id ON payment (fast_track_purchase_id)",
    "ALTER TABLE credit_note ADD COLUMN IF NOT EXISTS incident_id varchar(40) NULL",
    "ALTER TABLE credit_note ADD COLUMN IF NOT EXISTS service_credit_id varchar(40) NULL",
    "ALTER TABLE credit_note ADD COLUMN IF NOT EXISTS"
    " stripe_event_key varchar(160) NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS credit_note_incident_id ON credit_note (incident_id)",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS stripe_charge_id varchar(100) NULL",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS fast_track_purchase_id varchar(40) NULL",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS incident_id varchar(40) NULL",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS service_credit_id varchar(40) NULL",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS stripe_object jsonb NOT NULL DEFAULT jsonb_build_object()",
    "ALTER TABLE refund ADD COLUMN IF NOT EXISTS stripe_event_key varchar(160) NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS refund_incident_id ON refund (incident_id)",
)

_BACKWARDS = (
    "DROP TABLE IF EXISTS payment",
    "ALTER TABLE credit_note DROP COLUMN IF EXISTS incident_id",
    "ALTER TABLE credit_note DROP COLUMN IF EXISTS service_credit_id",
    "ALTER TABLE credit_note DROP COLUMN IF EXISTS stripe_event_key",
    "ALTER TABLE refund DROP COLUMN IF EXISTS stripe_charge_id",
    "ALTER TABLE refund DROP COLUMN IF EXISTS fast_track_purchase_id",
    "ALTER TABLE refund DROP COLUMN IF EXISTS incident_id",
    "ALTER TABLE refund DROP COLUMN IF EXISTS service_credit_id",
    "ALTER TABLE refund DROP COLUMN IF EXISTS stripe_object",
    "ALTER TABLE refund DROP COLUMN IF EXISTS stripe_event_key",
)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def create() -> None:
        for statement in _FORWARDS:
            await RawTable.raw(statement)

    async def drop() -> None:
        for statement in _BACKWARDS:
            await RawTable.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
