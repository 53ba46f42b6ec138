-- Trail schema v2: an event's identity without its time, a second guard on
-- sequences, and a home for dead letters too large for the broker.

-- One row per stored event, keyed by its identity (tenant, source, id) alone.
-- audit.events cannot have that unique key: a unique index on a partitioned
-- table must contain the partition key (occurred_at), so an event re-sent
-- with another (or no) `time` would otherwise be stored twice. The writer
-- COPYs into this table in the same transaction as into audit.events.
-- UNIQUE (tenant_id, sequence) makes a repeated sequence impossible even if a
-- tenant's head row were lost; it is also the index by which a stored event
-- is found from its sequence.
CREATE TABLE audit.event_ids (
    tenant_id    text        NOT NULL,
    ce_source    text        NOT NULL,
    ce_id        text        NOT NULL,
    sequence     bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    CONSTRAINT event_ids_identity PRIMARY KEY (tenant_id, ce_source, ce_id),
    CONSTRAINT event_ids_sequence UNIQUE (tenant_id, sequence)
);

-- Events stored before this migration keep their identity. Should the same
-- identity already be stored twice (the weakness this table removes), the
-- lowest sequence is the one the identity refers to.
INSERT INTO audit.event_ids (tenant_id, ce_source, ce_id, sequence, occurred_at)
SELECT DISTINCT ON (tenant_id, ce_source, ce_id) tenant_id, ce_source, ce_id, sequence, occurred_at
FROM audit.events
ORDER BY tenant_id, ce_source, ce_id, sequence;

CREATE TRIGGER event_ids_append_only BEFORE UPDATE OR DELETE ON audit.event_ids
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- With the identity kept above, audit.events needs no wide unique key of its
-- own: (tenant_id, occurred_at, sequence) serves the tenant + time queries
-- (sequence is the tie-breaker of a keyset page) at a fraction of the cost
-- per row of (tenant_id, occurred_at, ce_source, ce_id).
ALTER TABLE audit.events DROP CONSTRAINT events_identity;
CREATE INDEX events_tenant_time_idx ON audit.events (tenant_id, occurred_at, sequence);

-- Dead letters whose copy cannot travel through the broker (header + body
-- larger than the server's max_payload). The original bytes are kept here,
-- and a reference to the row (Trail-Dlq-Stored: audit.dead_letters/<id>) is
-- published on the dead-letter subject in their place.
CREATE TABLE audit.dead_letters (
    id               bigserial   PRIMARY KEY,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    stream           text        NOT NULL,
    stream_sequence  bigint      NOT NULL,
    delivered        bigint      NOT NULL,
    subject          text        NOT NULL,
    reason           text        NOT NULL,
    message          text        NOT NULL,
    headers          bytea       NOT NULL,  -- the original headers, NATS wire format (NATS/1.0 …)
    body             bytea       NOT NULL   -- the original body, byte for byte
);
CREATE INDEX dead_letters_position ON audit.dead_letters (stream, stream_sequence);

-- A secret of this installation, shared by every traild replica: it keys the
-- Nats-Msg-Id of each dead letter (an HMAC of the stream position), so that
-- the id is stable across restarts (a re-dead-lettered message is stored
-- once) yet cannot be predicted, and pre-empted, by anyone publishing to the
-- broker.
CREATE TABLE audit.installation (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    dead_letter_key  text    NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
);
INSERT INTO audit.installation DEFAULT VALUES;
