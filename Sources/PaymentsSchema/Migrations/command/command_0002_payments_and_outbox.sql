-- Idempotency records (ARCHITECTURE.md §6): the primary key is the scope, so two concurrent
-- submissions with one key cannot both win; the loser finds the winner's record.
CREATE TABLE command.idempotency_keys (
  client_id        text NOT NULL,
  idempotency_key  text NOT NULL,
  -- SHA-256 over the request's order fields; a reuse with another request differs here.
  fingerprint      bytea NOT NULL,
  payment_id       text NOT NULL UNIQUE,
  created_at       timestamptz NOT NULL,
  PRIMARY KEY (client_id, idempotency_key)
);

-- Accepted payment orders, the command side's write model. Each row is written in the same
-- statement as its idempotency record (no foreign key: it would only re-check that statement).
CREATE TABLE command.payments (
  payment_id       text PRIMARY KEY,
  client_id        text NOT NULL,
  idempotency_key  text NOT NULL,
  currency         text NOT NULL,
  amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
  payer_account_id text NOT NULL,
  payee_account_id text NOT NULL,
  provider         text NOT NULL,
  -- The full order as published (payments.v1.PaymentOrderRecord, protobuf).
  order_record     bytea NOT NULL,
  created_at       timestamptz NOT NULL
);

-- The transactional outbox: rows commit with the state they announce; the relay publishes
-- them in id order and sets published_at after Kafka acknowledged them.
CREATE TABLE command.outbox (
  id            bigserial PRIMARY KEY,
  topic         text NOT NULL,
  message_key   text NOT NULL,
  payload       bytea NOT NULL,
  event_type    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz
);

CREATE INDEX outbox_pending ON command.outbox (id) WHERE published_at IS NULL;

-- Wakes the relays (LISTEN command_outbox) when new rows commit.
CREATE FUNCTION command.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('command_outbox', '');
  RETURN NULL;
END $$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON command.outbox
  FOR EACH STATEMENT EXECUTE FUNCTION command.notify_outbox();
