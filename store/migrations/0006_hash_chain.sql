-- Trail schema v6: a hash chain per tenant (docs/INTEGRITY.md).
--
-- Every event carries the link of its tenant's chain that ends with it:
--   hash = SHA-256(prev_hash || canonical bytes of the row)
-- where prev_hash is the hash of the tenant's previous sequence (32 zero bytes
-- before the first). The writers compute the links in the COPY transaction,
-- after locking the tenants' heads, which now hold the chain's last link with
-- the last sequence: writers and replicas serialize per tenant, and a chain
-- cannot fork. A rolled-back transaction leaves the head where it was.
--
-- Events stored before this version get their links from `traild migrate`
-- itself, in this migration's transaction (store/migrate.cc, backfill_chain:
-- canonical bytes need code SQL does not have), after which the columns
-- become NOT NULL. The append-only trigger is disabled for that backfill
-- only, inside the transaction; nothing else can change a row meanwhile (the
-- migration holds the table's lock).
ALTER TABLE audit.events
  ADD COLUMN prev_hash bytea CONSTRAINT events_prev_hash_length CHECK (octet_length(prev_hash) = 32),
  ADD COLUMN hash      bytea CONSTRAINT events_hash_length CHECK (octet_length(hash) = 32);

ALTER TABLE audit.tenant_heads
  ADD COLUMN head_hash bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
    CONSTRAINT tenant_heads_hash_length CHECK (octet_length(head_hash) = 32);
