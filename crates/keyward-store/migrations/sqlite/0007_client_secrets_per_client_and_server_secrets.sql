-- keyward schema v7 (sqlite): a client secret belongs to its client, and server-wide
-- secrets kept once for every instance.
--
-- service_account_secrets was keyed by the secret's hash alone, so two clients whose
-- secrets are equal (two imported clients with the same plain secret) could not both hold
-- it once upgraded from bcrypt, and a lookup by hash found one of them for either. The
-- hash is now unique per account, and secrets are looked up by client and hash.
CREATE TABLE service_account_secrets_v7 (
    hash        TEXT NOT NULL,
    hash_kind   TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES service_accounts(id),
    prefix      TEXT NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, hash)
);
INSERT INTO service_account_secrets_v7 (hash, hash_kind, account_id, prefix, expires_at, created_at)
    SELECT hash, hash_kind, account_id, prefix, expires_at, created_at FROM service_account_secrets;
DROP TABLE service_account_secrets;
ALTER TABLE service_account_secrets_v7 RENAME TO service_account_secrets;

-- Secrets of the deployment itself, made by the first instance that needs one and read by
-- every other: the key CSRF tokens are derived with (name 'csrf'), so that a form made by
-- one instance behind a load balancer is accepted by another.
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
