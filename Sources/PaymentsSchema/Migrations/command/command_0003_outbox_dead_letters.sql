-- A row Kafka refuses for a reason retrying cannot fix (too large, invalid) is dead-lettered
-- instead of blocking the outbox: the relay skips it from then on (docs/services.md, Dead letters).
ALTER TABLE command.outbox
  ADD COLUMN dead_lettered_at   timestamptz,
  ADD COLUMN dead_letter_reason text;
DROP INDEX command.outbox_pending;
CREATE INDEX outbox_pending ON command.outbox (id) WHERE published_at IS NULL AND dead_lettered_at IS NULL;
