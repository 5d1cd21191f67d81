-- The key that signs ListPayments page tokens (HMAC-SHA256), shared by every query instance so
-- that a token issued by one is accepted by all. Made by the first instance that needs it.
CREATE TABLE query.page_token_keys (
  id   integer PRIMARY KEY CHECK (id = 1),
  key  bytea NOT NULL CHECK (length(key) >= 32)
);
