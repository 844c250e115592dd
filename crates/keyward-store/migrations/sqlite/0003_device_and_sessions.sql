-- keyward schema v3 (sqlite): device authorizations (RFC 8628) and browser sessions.
-- Same SQL on both backends.

-- One row per code a device-flow client asked for. status: pending, approved, denied,
-- redeemed. The device code is only hashed; the user code is the canonical 8 letters.
-- interval_ms grows by 5 s on each slow_down. family_id: the tokens issued on redemption.
CREATE TABLE device_authorizations (
    id              TEXT PRIMARY KEY,
    code_hash       TEXT NOT NULL UNIQUE,
    user_code       TEXT NOT NULL UNIQUE,
    client_id       TEXT NOT NULL,
    scopes          TEXT,
    status          TEXT NOT NULL,
    interval_ms     BIGINT NOT NULL,
    last_polled_at  BIGINT,
    user_id         TEXT,
    org_id          TEXT,
    family_id       TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    decided_at      BIGINT
);
CREATE INDEX device_authorizations_user ON device_authorizations (user_id, org_id);

-- Signed-in browsers: the SHA-256 of the session cookie.
CREATE TABLE web_sessions (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
