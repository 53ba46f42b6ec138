-- Trail schema v1: the append-only audit ledger.
CREATE SCHEMA IF NOT EXISTS audit;

-- One row per audit event. Partitioned by day on occurred_at; a DEFAULT
-- partition catches any day without its own partition, so no event ever
-- fails for lack of one.
CREATE TABLE audit.events (
    tenant_id           text        NOT NULL,
    sequence            bigint      NOT NULL,  -- per tenant, gap-free, assigned at commit
    occurred_at         timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    ce_source           text        NOT NULL,  -- CloudEvents source
    ce_id               text        NOT NULL,  -- CloudEvents id
    ce_type             text        NOT NULL,
    ce_subject          text,
    ingest_mode         text        NOT NULL,  -- structured | binary | batch | bare
    action              text        NOT NULL,
    category            text        NOT NULL,
    severity            text        NOT NULL,
    actor_type          text        NOT NULL,
    actor_id            text        NOT NULL,
    actor_display_name  text,
    actor_ip            inet,
    actor_user_agent    text,
    actor_session_id    text,
    resource_type       text        NOT NULL,
    resource_id         text        NOT NULL,
    related_resources   jsonb,
    changes             jsonb,                 -- {old_value, new_value, changed_fields}
    outcome_status      text,                  -- SUCCESS | FAILURE
    outcome_error_code  text,
    description         text,
    metadata            jsonb,
    correlation_id      text,
    request_id          text,
    source_service      text        NOT NULL,
    trace_id            text,
    extra               jsonb,                 -- CloudEvents extensions, dataschema, unknown payload fields
    -- The event's identity, (tenant, source, id), plus occurred_at because a
    -- unique key on a partitioned table must contain the partition key. It
    -- makes a redelivered event impossible to store twice, and it is also the
    -- tenant + time index of the query API.
    CONSTRAINT events_identity UNIQUE (tenant_id, occurred_at, ce_source, ce_id)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT;

-- The query patterns: what did this actor do, what happened to this resource,
-- where did this action happen; each newest-first within a tenant.
CREATE INDEX events_actor_idx    ON audit.events (tenant_id, actor_id, occurred_at);
CREATE INDEX events_resource_idx ON audit.events (tenant_id, resource_type, resource_id, occurred_at);
CREATE INDEX events_action_idx   ON audit.events (tenant_id, action, occurred_at);

-- The last sequence number given to each tenant. Writers lock these rows (in
-- tenant order) for the length of a COPY transaction.
CREATE TABLE audit.tenant_heads (
    tenant_id      text        PRIMARY KEY,
    last_sequence  bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz
);

-- Immutability: rows are never updated or deleted (retention drops whole
-- partitions, which is DDL, not DELETE).
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit.events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Creates the daily partitions of [from_day, to_day] that do not exist yet.
-- A day whose rows already sit in the DEFAULT partition keeps them there
-- (attaching the new partition would fail). Safe to run concurrently.
CREATE FUNCTION audit.ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  created integer := 0;
  part text;
  lo timestamptz;
  hi timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('trail.ensure_partitions'));
  FOR d IN SELECT generate_series(from_day, to_day, interval '1 day')::date LOOP
    part := 'events_' || to_char(d, 'YYYYMMDD');
    CONTINUE WHEN to_regclass('audit.' || part) IS NOT NULL;
    lo := d::timestamp AT TIME ZONE 'UTC';
    hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
    CONTINUE WHEN EXISTS (SELECT 1 FROM audit.events_default WHERE occurred_at >= lo AND occurred_at < hi);
    EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.events FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    created := created + 1;
  END LOOP;
  RETURN created;
END $$;
