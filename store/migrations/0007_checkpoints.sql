-- Trail schema v7: signed checkpoints of each tenant's chain
-- (docs/INTEGRITY.md, "Checkpoints").
--
-- traild's checkpointer signs, for each tenant whose head moved, a C2SP
-- signed note naming the tenant's last sequence and the link of its chain
-- there; it publishes the note on audit.checkpoints.<tenant> (a JetStream
-- stream of its own, the copy outside this database) and, once the broker
-- has it, adds the row here. The note is the record: sequence and head_hash
-- are copies of what it says, for lookups, and a verifier trusts the note's
-- signed text, not them. Append-only, like the events.
CREATE TABLE audit.checkpoints (
    tenant_id  text        NOT NULL,
    sequence   bigint      NOT NULL,
    head_hash  bytea       NOT NULL CHECK (octet_length(head_hash) = 32),
    signed_at  timestamptz NOT NULL,
    note       text        NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);

-- The refusal names the table it protects (a partition of audit.events names
-- the partition).
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON audit.checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON audit.checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

GRANT SELECT, INSERT ON audit.checkpoints TO trail_ingest;
GRANT SELECT ON audit.checkpoints TO trail_reader;
ALTER TABLE audit.checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_one_tenant ON audit.checkpoints FOR SELECT TO trail_reader
  USING (tenant_id = current_setting('trail.tenant', true));
