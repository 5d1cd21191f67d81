-- The global rate limiter (ARCHITECTURE.md §7): one row per provider, locked for each
-- reservation, so every dispatcher instance shares it; the database clock is the one clock.
CREATE TABLE dispatcher.rate_limits (
  provider      text PRIMARY KEY,
  -- Start times of the most recently reserved call slots (microseconds since 1970, oldest
  -- first), at most as many as the provider's calls per window.
  recent_slots  bigint[] NOT NULL DEFAULT '{}'
);
