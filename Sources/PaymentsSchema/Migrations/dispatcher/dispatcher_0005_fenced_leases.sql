-- Fenced execution (docs/services.md, "Leases and fencing"): every claim of a payment gets its
-- own random token; the provider call and every later write of that payment are conditional on
-- it, so a worker whose claim was taken over can neither call nor write.
ALTER TABLE dispatcher.payments ADD COLUMN lease_token bigint;

-- Workers claim per provider (an instance claims only payments of providers it serves).
CREATE INDEX payments_due_by_provider ON dispatcher.payments (provider, next_attempt_at)
  WHERE status IN (1, 2, 3);

-- The rate limit of a group lives in its row: one source of truth for every instance. NULL
-- until the first instance that uses the group writes its configured values.
ALTER TABLE dispatcher.rate_limits
  ADD COLUMN call_limit integer CHECK (call_limit >= 1),
  ADD COLUMN window_us  bigint  CHECK (window_us >= 1);
