-- keyward schema v2 (postgres): service accounts, their secrets and public keys, OAuth
-- tokens, and the JWT ids already used (replay protection). Same SQL on both backends.
CREATE TABLE service_accounts (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    client_id   TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX service_accounts_org ON service_accounts (org_id);

-- Like api_key_secrets: only hashes; hash_kind is sha256 (generated, or upgraded) or
-- bcrypt (imported, until its first use); expires_at is set during a rotation's grace.
CREATE TABLE service_account_secrets (
    hash        TEXT PRIMARY KEY,
    hash_kind   TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES service_accounts(id),
    prefix      TEXT NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX service_account_secrets_account ON service_account_secrets (account_id);

-- Registered public keys, stored as canonical public JWK text.
CREATE TABLE service_account_keys (
    account_id  TEXT NOT NULL REFERENCES service_accounts(id),
    kid         TEXT NOT NULL,
    alg         TEXT NOT NULL,
    jwk         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, kid)
);

-- Access and refresh tokens. kind is access or refresh; family_id groups the tokens of
-- one grant (refresh rotation); scopes is a JSON list, or NULL for everything the
-- principal holds; used_at marks a refresh token already exchanged.
CREATE TABLE oauth_tokens (
    hash            TEXT PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    family_id       TEXT NOT NULL,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    principal_kind  TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    scopes          TEXT,
    prefix          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family_id);
CREATE INDEX oauth_tokens_principal ON oauth_tokens (org_id, principal_id);

-- JWT ids seen in assertions, until the assertion's exp: a second use is a replay.
CREATE TABLE assertion_jtis (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
