-- The dispatcher service owns this schema; no other service writes to it.
CREATE SCHEMA IF NOT EXISTS dispatcher;
