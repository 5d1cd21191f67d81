-- Retention of published outbox rows (as command_0004).
CREATE INDEX outbox_created ON dispatcher.outbox USING brin (created_at);
