-- API keys of client systems, shared by the command and query services; written only by
-- `payments keys`. A key is `pk_<key_id>_<secret>`; only its SHA-256 is stored.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.api_keys (
  key_id      text PRIMARY KEY,
  client_id   text NOT NULL,
  key_hash    bytea NOT NULL CHECK (length(key_hash) = 32),
  scopes      text[] NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

CREATE INDEX api_keys_client ON auth.api_keys (client_id);

-- Services cache verified keys; a change tells them to forget.
CREATE FUNCTION auth.notify_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('auth_api_keys_changed', '');
  RETURN NULL;
END $$;

CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON auth.api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION auth.notify_api_keys_changed();
