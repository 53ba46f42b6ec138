-- Trail schema v8: retention with verifiable archives, legal holds, the
-- maintenance role, and the break-glass procedure (docs/COMPLIANCE.md).
--
-- trail_maintenance is the role of retention (retention.pg_dsn): it reads
-- the ledger to archive it, records archives, and detaches and drops daily
-- partitions through audit.drop_archived_partition(), which runs with the
-- owner's rights and refuses a partition without a recorded archive or under
-- a legal hold. It never UPDATEs or DELETEs an event.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trail_maintenance') THEN
    CREATE ROLE trail_maintenance LOGIN;
  END IF;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE trail_maintenance BYPASSRLS;  -- archives every tenant's rows
  ELSIF NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'trail_maintenance') THEN
    RAISE WARNING 'trail_maintenance lacks BYPASSRLS, which archiving every tenant needs; as a superuser run: ALTER ROLE trail_maintenance BYPASSRLS';
  END IF;
END $$;

-- One row per archived partition: its signed manifest (a C2SP signed note
-- whose text is "trail.archive.v1" and the manifest's JSON, one line each;
-- docs/INTEGRITY.md, "Archives"), and where the file went.
CREATE TABLE audit.archives (
    id            bigserial   PRIMARY KEY,
    partition     text        NOT NULL UNIQUE,
    file_name     text        NOT NULL,
    file_sha256   text        NOT NULL,
    rows          bigint      NOT NULL,
    manifest      text        NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    dropped_at    timestamptz                       -- set once, when the partition is dropped
);
-- The runs of consecutive sequences each archive took from each tenant's
-- chain, each with its own signed note (one tenant's business alone, so the
-- read side sees them under row-level security): a verifier crosses an
-- archived run from prev_hash to last_hash on the note's word, the note
-- being signed by the installation's key.
CREATE TABLE audit.archived_runs (
    tenant_id       text   NOT NULL,
    first_sequence  bigint NOT NULL,
    last_sequence   bigint NOT NULL,
    rows            bigint NOT NULL,
    archive_id      bigint NOT NULL REFERENCES audit.archives (id),
    note            text   NOT NULL,
    PRIMARY KEY (tenant_id, first_sequence)
);

-- Legal holds: a row with tenant_id '*' holds every tenant. A partition that
-- holds rows of a tenant under hold is never dropped.
CREATE TABLE audit.legal_holds (
    tenant_id  text        PRIMARY KEY,
    reason     text        NOT NULL,
    placed_by  text        NOT NULL DEFAULT session_user,
    placed_at  timestamptz NOT NULL DEFAULT now()
);

-- Break-glass: UPDATE, DELETE and TRUNCATE of the ledger stay refused to
-- everyone, owners included, unless the transaction first declares why:
--   SET LOCAL trail.break_glass = '<ticket and reason>';
-- Each row so changed is then logged here (who, when, what, the reason) and
-- traild records the entry as an audit event in the tenant's own trail
-- (action trail.break_glass). The chain is not rewritten: verification will
-- name every changed or removed event, and the log says why.
CREATE TABLE audit.break_glass_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    by_role     text        NOT NULL DEFAULT session_user,
    operation   text        NOT NULL,
    table_name  text        NOT NULL,
    tenant_id   text,
    sequence    bigint,
    reason      text        NOT NULL
);
-- The log entries traild has recorded as audit events.
CREATE TABLE audit.break_glass_recorded (
    log_id      bigint      PRIMARY KEY REFERENCES audit.break_glass_log (id),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  why text := nullif(current_setting('trail.break_glass', true), '');
  r record;
BEGIN
  IF why IS NULL THEN
    RAISE EXCEPTION '%.% is append-only: % is not allowed (break-glass: docs/COMPLIANCE.md)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_LEVEL = 'STATEMENT' THEN
    INSERT INTO audit.break_glass_log (operation, table_name, reason) VALUES (TG_OP, TG_TABLE_NAME, why);
    RETURN NULL;
  END IF;
  r := OLD;
  INSERT INTO audit.break_glass_log (operation, table_name, tenant_id, sequence, reason)
    VALUES (TG_OP, TG_TABLE_NAME, to_jsonb(r) ->> 'tenant_id', (to_jsonb(r) ->> 'sequence')::bigint, why);
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER break_glass_log_append_only BEFORE UPDATE OR DELETE ON audit.break_glass_log
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER archives_append_only BEFORE DELETE ON audit.archives
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER archived_runs_append_only BEFORE UPDATE OR DELETE ON audit.archived_runs
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- Detaches and drops one daily partition of audit.events, with the owner's
-- rights, only when its archive is recorded and no legal hold covers a
-- tenant it holds. The caller has written, fsynced, re-read and verified the
-- archive before recording it.
CREATE FUNCTION audit.drop_archived_partition(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  held text;
BEGIN
  IF part !~ '^events_[0-9]{8}$' OR to_regclass('audit.' || part) IS NULL THEN
    RAISE EXCEPTION 'not a daily partition of audit.events: %', part;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM audit.archives WHERE partition = part AND dropped_at IS NULL) THEN
    RAISE EXCEPTION 'partition % has no recorded archive', part;
  END IF;
  EXECUTE format('SELECT min(h.tenant_id) FROM audit.legal_holds h WHERE h.tenant_id = ''*'' OR EXISTS '
                 '(SELECT 1 FROM audit.%I e WHERE e.tenant_id = h.tenant_id)', part) INTO held;
  IF held IS NOT NULL THEN
    RAISE EXCEPTION 'partition % is under legal hold (%)', part, held;
  END IF;
  EXECUTE format('ALTER TABLE audit.events DETACH PARTITION audit.%I', part);
  EXECUTE format('DROP TABLE audit.%I', part);
  UPDATE audit.archives SET dropped_at = now() WHERE partition = part;
END $$;
REVOKE EXECUTE ON FUNCTION audit.drop_archived_partition(text) FROM PUBLIC;

GRANT USAGE ON SCHEMA audit TO trail_maintenance;
GRANT SELECT ON audit.events, audit.event_ids, audit.tenant_heads, audit.checkpoints TO trail_maintenance;
GRANT SELECT, INSERT ON audit.archives, audit.archived_runs TO trail_maintenance;
GRANT USAGE ON SEQUENCE audit.archives_id_seq TO trail_maintenance;
GRANT SELECT, INSERT, UPDATE, DELETE ON audit.legal_holds TO trail_maintenance;
GRANT EXECUTE ON FUNCTION audit.drop_archived_partition(text) TO trail_maintenance;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(date, date) TO trail_maintenance;
GRANT SELECT ON audit.installation, audit.schema_migrations TO trail_maintenance;
-- The read side verifies across archived sequences; the ingest side records
-- break-glass entries as audit events.
GRANT SELECT ON audit.archived_runs TO trail_reader;
ALTER TABLE audit.archived_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_one_tenant ON audit.archived_runs FOR SELECT TO trail_reader
  USING (tenant_id = current_setting('trail.tenant', true));
GRANT SELECT ON audit.break_glass_log TO trail_ingest;
GRANT SELECT, INSERT ON audit.break_glass_recorded TO trail_ingest;
