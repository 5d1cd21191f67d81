-- Retention (ServiceKit/RetentionSweeper.swift): published outbox rows and idempotency records
-- are deleted after their retention by time. BRIN indexes: the rows arrive in time order, and a
-- BRIN index costs next to nothing per insert.
CREATE INDEX outbox_created ON command.outbox USING brin (created_at);
CREATE INDEX idempotency_keys_created ON command.idempotency_keys USING brin (created_at);
