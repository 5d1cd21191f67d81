-- The dispatcher's work table: one row per payment order (dedup by payment ID), the current
-- state of its execution. Workers claim due rows with FOR UPDATE SKIP LOCKED and a lease; a
-- crashed instance's lease expires and another instance takes the row over.
CREATE TABLE dispatcher.payments (
  payment_id          text PRIMARY KEY,
  client_id           text NOT NULL,
  -- The order as consumed (payments.v1.PaymentOrderRecord, protobuf).
  order_record        bytea NOT NULL,
  provider            text NOT NULL,
  -- payments.v1.PaymentStatus and the version of the last event (1: accepted).
  status              integer NOT NULL,
  version             bigint NOT NULL,
  attempts            integer NOT NULL DEFAULT 0,
  -- Sent with every charge call and inquiry: stable, so the provider never charges twice.
  provider_key        text NOT NULL,
  provider_reference  text NOT NULL DEFAULT '',
  failure_code        text NOT NULL DEFAULT '',
  failure_message     text NOT NULL DEFAULT '',
  -- The last call ended without an answer: ask the provider before charging again.
  outcome_unknown     boolean NOT NULL DEFAULT false,
  next_attempt_at     timestamptz NOT NULL,
  lease_owner         text,
  lease_expires_at    timestamptz,
  expires_at          timestamptz,
  created_at          timestamptz NOT NULL,
  updated_at          timestamptz NOT NULL
);

-- Due work: the claim query walks this index.
CREATE INDEX payments_due ON dispatcher.payments (next_attempt_at) WHERE status IN (1, 2, 3);

-- Every provider call, written before the call is made.
CREATE TABLE dispatcher.attempts (
  payment_id    text NOT NULL,
  attempt       integer NOT NULL,
  kind          text NOT NULL,          -- 'charge' or 'inquiry'
  provider      text NOT NULL,
  provider_key  text NOT NULL,
  started_at    timestamptz NOT NULL,
  finished_at   timestamptz,
  outcome       text,
  detail        text,
  PRIMARY KEY (payment_id, attempt, kind)
);

-- The transactional outbox of payments.events.v1 (same shape as command.outbox).
CREATE TABLE dispatcher.outbox (
  id            bigserial PRIMARY KEY,
  topic         text NOT NULL,
  message_key   text NOT NULL,
  payload       bytea NOT NULL,
  event_type    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz
);

CREATE INDEX outbox_pending ON dispatcher.outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION dispatcher.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('dispatcher_outbox', '');
  RETURN NULL;
END $$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON dispatcher.outbox
  FOR EACH STATEMENT EXECUTE FUNCTION dispatcher.notify_outbox();

-- Wakes idle workers when new work arrives.
CREATE FUNCTION dispatcher.notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('dispatcher_work', '');
  RETURN NULL;
END $$;

CREATE TRIGGER work_inserted AFTER INSERT ON dispatcher.payments
  FOR EACH STATEMENT EXECUTE FUNCTION dispatcher.notify_work();
