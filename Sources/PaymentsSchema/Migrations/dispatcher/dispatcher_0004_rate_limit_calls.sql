-- The global rate limiter counts calls, not slots (DispatcherService/RateLimiter.swift): per
-- provider, the calls that may still count against the limit, as parallel arrays (id, the time
-- until which the call counts before the window is added, in microseconds since 1970 on the
-- database clock, and whether its answer came back). At most `limit` of them are kept.
ALTER TABLE dispatcher.rate_limits
  DROP COLUMN recent_slots,
  ADD COLUMN call_ids      bigint[]  NOT NULL DEFAULT '{}',
  ADD COLUMN call_until    bigint[]  NOT NULL DEFAULT '{}',
  ADD COLUMN call_finished boolean[] NOT NULL DEFAULT '{}';
