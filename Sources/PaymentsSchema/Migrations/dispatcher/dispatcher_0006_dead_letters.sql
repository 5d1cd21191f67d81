-- The dispatcher's outbox dead-letters like the command service's (command_0003).
ALTER TABLE dispatcher.outbox
  ADD COLUMN dead_lettered_at   timestamptz,
  ADD COLUMN dead_letter_reason text;
DROP INDEX dispatcher.outbox_pending;
CREATE INDEX outbox_pending ON dispatcher.outbox (id) WHERE published_at IS NULL AND dead_lettered_at IS NULL;

-- Intake records that are not payment orders: kept, with where they came from, instead of
-- being dropped (or holding their partition forever).
CREATE TABLE dispatcher.dead_letters (
  id          bigserial PRIMARY KEY,
  topic       text NOT NULL,
  partition   integer NOT NULL,
  "offset"    bigint NOT NULL,
  key         bytea,
  value       bytea NOT NULL,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (topic, partition, "offset")
);
