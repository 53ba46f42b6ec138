-- Trail schema v4: the committed-event outbox.
--
-- A writer adds one row per transaction, inside that transaction: for each
-- tenant it stored events of, the range of sequences it assigned. The row is
-- deleted once the broker has confirmed the republish of every event in it
-- (traild's outbox keeper, in batches). A row still here long after its
-- transaction committed names events whose republish was never confirmed —
-- traild died between the ack and the broker's PubAck, or the broker refused
-- the publish for longer than Trail retries — and the keeper of any replica
-- republishes them from audit.events (the committed stream drops what it
-- already holds by Nats-Msg-Id "<tenant>:<sequence>"), then deletes the row.
-- One row per transaction, not per event: a few hundred bytes of WAL for a
-- transaction of hundreds or thousands of events.
CREATE TABLE audit.outbox (
    id          bigserial   PRIMARY KEY,
    tenants     text[]      NOT NULL,
    first_seqs  bigint[]    NOT NULL,  -- first_seqs[i] .. last_seqs[i] of tenants[i]
    last_seqs   bigint[]    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_created_idx ON audit.outbox (created_at);
