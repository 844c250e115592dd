-- keyward schema v7 (postgres): a client secret belongs to its client, and server-wide
-- secrets kept once for every instance.
--
-- service_account_secrets was keyed by the secret's hash alone, so two clients whose
-- secrets are equal (two imported clients with the same plain secret) could not both hold
-- it once upgraded from bcrypt, and a lookup by hash found one of them for either. The
-- hash is now unique per account, and secrets are looked up by client and hash.
ALTER TABLE service_account_secrets DROP CONSTRAINT service_account_secrets_pkey;
ALTER TABLE service_account_secrets ADD PRIMARY KEY (account_id, hash);
-- The primary key now leads with account_id.
DROP INDEX service_account_secrets_account;

-- Secrets of the deployment itself, made by the first instance that needs one and read by
-- every other: the key CSRF tokens are derived with (name 'csrf'), so that a form made by
-- one instance behind a load balancer is accepted by another.
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
