-- API key listing pages by (created_at, id); revocation is recorded, never deleted.
CREATE INDEX api_keys_created_idx ON api_keys (created_at, id);
