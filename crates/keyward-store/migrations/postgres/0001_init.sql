-- keyward schema v1 (PostgreSQL). Timestamps are Unix milliseconds (BIGINT) so the SQL is
-- the same on both backends; ids are prefixed UUIDv7 strings made by the application.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    principal_id   TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (org_id, principal_id)
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    principal_kind TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    permissions    TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    expires_at     BIGINT,
    revoked_at     BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (org_id, principal_id);

CREATE TABLE api_key_secrets (
    hash        TEXT PRIMARY KEY,
    hash_kind   TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES api_keys(id),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_key_secrets_key ON api_key_secrets (key_id);
CREATE INDEX api_key_secrets_bcrypt ON api_key_secrets (hash_kind) WHERE hash_kind = 'bcrypt';

CREATE TABLE key_usage (
    key_id    TEXT NOT NULL,
    day       BIGINT NOT NULL,
    requests  BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    org_id       TEXT,
    at           BIGINT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    credential   TEXT,
    action       TEXT NOT NULL,
    target_kind  TEXT,
    target_id    TEXT,
    detail       TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);

CREATE TABLE changes (
    seq      BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL
);
