-- Trail schema v5: the roles traild's services connect as, and row-level
-- security that keeps every query of the read side inside one tenant.
--
-- Roles (cluster-wide, created here when missing, with LOGIN and no password:
-- an operator sets one, or maps them in pg_hba.conf / their cloud's IAM):
--   trail_reader  the query API (api.pg_dsn): SELECT on the events and their
--                 identities, and only rows of the tenant the request set with
--                 SET LOCAL trail.tenant = '<tenant>' (no setting, no rows);
--   trail_ingest  the writers, the outbox keeper and the dead-letter store
--                 (pg.dsn): INSERT and SELECT on the ledger, the tenant heads,
--                 the outbox and the dead letters; daily partitions through
--                 audit.ensure_partitions only. It needs BYPASSRLS: PostgreSQL
--                 refuses COPY FROM into a table whose row-level security
--                 applies to the copying role, and ingest sees every tenant
--                 by design. Only a superuser can grant it: this migration
--                 does when it runs as one, and warns otherwise (traild then
--                 refuses to start on a pg.dsn role that lacks it).
-- Neither role may UPDATE, DELETE or TRUNCATE events (no grant, and the
-- append-only triggers besides). Migrations run as the schema's owner, which
-- is neither of them.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trail_reader') THEN
    CREATE ROLE trail_reader LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trail_ingest') THEN
    CREATE ROLE trail_ingest LOGIN;
  END IF;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE trail_ingest BYPASSRLS;
    ALTER ROLE trail_reader NOBYPASSRLS;
  ELSIF NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'trail_ingest') THEN
    RAISE WARNING 'trail_ingest lacks BYPASSRLS, which COPY into audit.events needs; as a superuser run: ALTER ROLE trail_ingest BYPASSRLS';
  END IF;
END $$;

GRANT USAGE ON SCHEMA audit TO trail_reader, trail_ingest;

-- The read side.
GRANT SELECT ON audit.events, audit.event_ids TO trail_reader;

-- The write side.
GRANT SELECT, INSERT ON audit.events, audit.event_ids TO trail_ingest;
GRANT SELECT, INSERT, UPDATE ON audit.tenant_heads TO trail_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON audit.outbox TO trail_ingest;  -- UPDATE: the keeper's row locks
GRANT SELECT, INSERT ON audit.dead_letters TO trail_ingest;
GRANT USAGE ON SEQUENCE audit.outbox_id_seq, audit.dead_letters_id_seq TO trail_ingest;
GRANT SELECT ON audit.installation, audit.schema_migrations TO trail_ingest, trail_reader;

-- Partitions are DDL on the owner's table: the function runs with the owner's
-- rights, for trail_ingest alone.
ALTER FUNCTION audit.ensure_partitions(date, date) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION audit.ensure_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(date, date) TO trail_ingest;

-- Row-level security for the read side. A policy of the partitioned table
-- applies to every query through it; the roles have no rights on the
-- partitions themselves. trail_ingest bypasses it (see above).
ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.event_ids ENABLE ROW LEVEL SECURITY;

CREATE POLICY reader_one_tenant ON audit.events FOR SELECT TO trail_reader
  USING (tenant_id = current_setting('trail.tenant', true));
CREATE POLICY reader_one_tenant ON audit.event_ids FOR SELECT TO trail_reader
  USING (tenant_id = current_setting('trail.tenant', true));
