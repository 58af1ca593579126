CREATE TABLE flowbus_outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publish order
    id TEXT NOT NULL UNIQUE,          -- the event id (ce_id)
    aggregatetype TEXT NOT NULL,      -- the topic, prefix included
    aggregateid TEXT,                 -- the Kafka key
    type TEXT NOT NULL,               -- the event type (ce_type)
    payload BYTEA NOT NULL,           -- schemaless Avro body (no framing header)
    headers TEXT NOT NULL,            -- CloudEvents headers, JSON [[name, value], ...]
    schema_fingerprint TEXT NOT NULL, -- hex CRC-64-AVRO of the body's writer schema
    bucket INTEGER NOT NULL,          -- crc32(key) % 64 (keyless: of the id), for leases
    created_at BIGINT NOT NULL,       -- unix ms, database clock
    sent_at BIGINT,                   -- unix ms when acknowledged; NULL while pending
    attempts INTEGER NOT NULL DEFAULT 0,
    rejected_at BIGINT,               -- unix ms when rejected for good; NULL otherwise (v2)
    rejected_code TEXT,               -- the broker's error code name (v2)
    rejected_reason TEXT              -- the broker's error message (v2)
);
CREATE INDEX flowbus_outbox_pending ON flowbus_outbox (bucket, seq)
    WHERE sent_at IS NULL AND rejected_at IS NULL;
CREATE INDEX flowbus_outbox_rejected ON flowbus_outbox (seq) WHERE rejected_at IS NOT NULL;
CREATE INDEX flowbus_outbox_sent ON flowbus_outbox (sent_at) WHERE sent_at IS NOT NULL;
-- plus flowbus_outbox_leases (bucket, owner, expires_at), flowbus_outbox_relays (name,
-- heartbeat_at), and on PostgreSQL the trigger flowbus_outbox_notify (NOTIFY flowbus_outbox)
