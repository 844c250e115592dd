-- keyward schema v4 (postgres): indexes for the purge task, which deletes ended rows in
-- bounded batches by their end time. Same SQL on both backends.
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);
CREATE INDEX oauth_tokens_revoked ON oauth_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
CREATE INDEX assertion_jtis_expires ON assertion_jtis (expires_at);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
