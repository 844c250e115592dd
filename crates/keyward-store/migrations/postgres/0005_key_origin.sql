-- keyward schema v5: where a key came from, so no key outlives the credential that made it.
-- Same SQL on both backends.
--
-- created_by: the credential that made the key, `kind:id` as audit events show it
-- (`api_key:key_…`, `access_token:tok_…`, `client_secret:sa_…`, `session:usr_…`); null
-- for keys made by an admin command or imported, and for keys made before this version.
-- origin_token_id / origin_family_id: the OAuth access token (and its family) at the
-- root of the key's line: set when an access token made the key, and inherited by a
-- key made by such a key. Revoking that token, or its family, revokes these keys.
ALTER TABLE api_keys ADD COLUMN created_by TEXT;
ALTER TABLE api_keys ADD COLUMN origin_token_id TEXT;
ALTER TABLE api_keys ADD COLUMN origin_family_id TEXT;
CREATE INDEX api_keys_origin_token ON api_keys (origin_token_id) WHERE origin_token_id IS NOT NULL;
CREATE INDEX api_keys_origin_family ON api_keys (origin_family_id) WHERE origin_family_id IS NOT NULL;

-- Counting an organization's owners (the last owner cannot be removed or demoted).
CREATE INDEX memberships_role ON memberships (org_id, role);
