-- The read model: one row per payment, the latest state seen on payments.orders.v1 and
-- payments.events.v1. Writes are upserts guarded by version, so a redelivered or late event
-- never moves a payment backwards.
CREATE TABLE query.payments (
  payment_id       text PRIMARY KEY,
  client_id        text NOT NULL,
  idempotency_key  text NOT NULL,
  status           integer NOT NULL,
  version          bigint NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  -- The payment as served (payments.v1.Payment, protobuf).
  payment          bytea NOT NULL
);

CREATE INDEX payments_client_key ON query.payments (client_id, idempotency_key);
CREATE INDEX payments_client_created ON query.payments (client_id, created_at DESC, payment_id DESC);

-- Every version of every payment seen, so that WatchPayment can stream each change, not just
-- the latest state.
CREATE TABLE query.payment_history (
  payment_id  text NOT NULL,
  version     bigint NOT NULL,
  payment     bytea NOT NULL,
  PRIMARY KEY (payment_id, version)
);
