-- Refunds (docs/services.md "Refunds"): one row per refund, its execution state, and the work
-- queue of refund calls, fenced like dispatcher.payments. Every refund of a payment is created
-- and changed while that payment's row is locked FOR UPDATE, so the refundable amount check
-- (pending + succeeded + new <= amount) holds across concurrent requests and instances.
CREATE TABLE dispatcher.refunds (
  refund_id           text PRIMARY KEY,
  payment_id          text NOT NULL REFERENCES dispatcher.payments (payment_id),
  client_id           text NOT NULL,
  idempotency_key     text NOT NULL,
  -- SHA-256 of the request's fields without the key: a reused key with other fields is refused.
  fingerprint         bytea NOT NULL,
  amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
  currency            text NOT NULL,
  reason              text NOT NULL,
  provider            text NOT NULL,
  -- payments.v1.RefundStatus.
  status              integer NOT NULL,
  attempts            integer NOT NULL DEFAULT 0,
  -- Sent with every refund call and inquiry (the refund ID): the provider never refunds twice.
  provider_key        text NOT NULL,
  provider_reference  text NOT NULL DEFAULT '',
  failure_code        text NOT NULL DEFAULT '',
  failure_message     text NOT NULL DEFAULT '',
  -- The last call ended without an answer (or is in flight): ask before refunding again.
  outcome_unknown     boolean NOT NULL DEFAULT false,
  next_attempt_at     timestamptz NOT NULL DEFAULT now(),
  lease_owner         text,
  lease_token         bigint,
  lease_expires_at    timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (client_id, idempotency_key)
);

CREATE INDEX refunds_of_payment ON dispatcher.refunds (payment_id);
-- Due refund work: the claim query walks this index.
CREATE INDEX refunds_due ON dispatcher.refunds (next_attempt_at) WHERE status = 1;

CREATE TRIGGER refund_inserted AFTER INSERT ON dispatcher.refunds
  FOR EACH STATEMENT EXECUTE FUNCTION dispatcher.notify_work();
