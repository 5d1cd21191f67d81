-- The event feed (ListEvents, WatchEvents; docs/api.md "Event feed"): per client, every payment
-- state the read model took in, numbered 1, 2, 3, … in commit order.
--
-- Why a counter row per client and not a sequence: a sequence hands out numbers at insert time,
-- and a transaction that got 7 may commit after one that got 8; a reader at 8 would then never
-- see 7. The counter row is locked by the projection's statement until it commits, so the next
-- numbers are handed out only after the earlier ones are visible: a cursor never skips an event.
CREATE TABLE query.feed_heads (
  client_id      text PRIMARY KEY,
  last_sequence  bigint NOT NULL
);

CREATE TABLE query.events (
  client_id    text NOT NULL,
  sequence     bigint NOT NULL,
  payment_id   text NOT NULL,
  version      bigint NOT NULL,
  -- payments.v1.Payment as after the change (protobuf).
  payment      bytea NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, sequence),
  -- A redelivered state is in the feed once.
  UNIQUE (payment_id, version)
);

-- Retention deletes by age.
CREATE INDEX events_recorded ON query.events USING brin (recorded_at);
