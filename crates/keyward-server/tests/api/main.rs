//! Black-box HTTP tests of keyward-server: the server is built and bound to port 0 in
//! the test process, fixtures are written straight through the store (as the admin
//! commands do), and every case talks to the server over HTTP only.
//!
//! Every case runs on SQLite and on PostgreSQL (`both_backends!`). PostgreSQL is the
//! one named by `KEYWARD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets its own schema. Without a reachable PostgreSQL its half is skipped with
//! a message, except under `CI=true`, where it fails.
//!
//! # Layout
//!
//! - [`helpers`]: `spawn_app`, fixtures, presentations, replies, polling.
//! - [`abuse`]: sign-in attempts counted before hashing, limits per (e-mail, address),
//!   e-mail and address, `Retry-After`, trusted proxies, `/device` links.
//! - [`presentation`]: every way of presenting a key; 401 challenges; `/api/v1/me`.
//! - [`auth_check`]: `/auth/check` headers, body, 403.
//! - [`api_keys`]: create, list, revoke, roll, and the rules for keys.
//! - [`revocation`]: revocation, role changes and removals, here and from another
//!   process; expiry.
//! - [`usage`]: last-used times, from memory and in the database.
//! - [`legacy`]: imported plain, SHA-256 and bcrypt keys.
//! - [`lineage`]: no key outlives the key or access token that made it; revoking the
//!   token (or its family) revokes those keys.
//! - [`verify`]: `POST /api/v1/keys/verify`.
//! - [`audit`]: `GET /api/v1/audit-events`.
//! - [`org`]: `GET /api/v1/members`.
//! - [`cross_org`]: another organization's credential against every route.
//! - [`bad_input`]: malformed requests on every route get a 4xx JSON error.
//! - [`csrf`]: CSRF tokens bound to the pre-session cookie or the session; forged, empty
//!   and borrowed ones refused; shared by the instances on one database.
//! - [`session_api`]: the web UI's session cookie on the management API.
//! - [`secrets_at_rest`]: no plain key in the database or the log after a lifecycle.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, `/api/v1/openapi.json`.
//! - [`conformance`]: answers the OpenAPI document promises, where Schemathesis found
//!   the server giving others.
//! - [`service_accounts`]: `/api/v1/service-accounts`: create, list, delete, secret
//!   rotation, public keys, plan and permission rules; a client secret as a credential.
//! - [`oauth_token`]: `POST /oauth/token`: client_credentials (Basic, post,
//!   private_key_jwt), the jwt-bearer grant, refresh rotation and reuse, scopes, errors.
//! - [`oauth_clients`]: what real OAuth client libraries send: imported clients with
//!   equal or keyward-looking secrets, raw Basic pairs, one-hour and `Ed25519`
//!   assertions, an assertion for the called endpoint, metadata, every scope asked, `405`,
//!   one status for a client id that may not act alone.
//! - [`oauth_introspect`]: `/oauth/introspect`, `/oauth/revoke` and
//!   `/.well-known/oauth-authorization-server`.
//! - [`device`]: the device flow (RFC 8628) end to end: start, pending, slow_down,
//!   approval on `/device` (one org or a choice), denial, expiry, redemption once,
//!   another client's code, scopes, refresh, `/api/v1/sessions`.
//! - [`real_clients`]: authlib (Python) getting tokens every way, with its defaults.
//! - [`web_admin`]: the admin pages: who may reach them, members' roles and removal,
//!   service accounts (secret shown once, uploaded key, rotate, delete), the audit log,
//!   CSRF on every form, another organization's ids.
//! - [`membership`]: removal is final; only an owner gives or takes `owner`; the last
//!   owner stays, also when two owners remove each other at once.
//! - [`names`]: no control or format character in a name (API and web forms); a list
//!   with `*` keeps its explicit entries.
//! - [`login`]: `/login`, `/logout` and the `/device` page: one failure message, the
//!   session cookie, local `next` only, CSRF, rate limits, plain pages, bad forms.
//! - [`shared_limits`]: per-credential counters per instance, or shared through Redis;
//!   an unreachable Redis fails open.
//! - [`purge`]: the background purge of ended rows, and its metrics.
//! - [`races`]: concurrent state changes (rolls, rotations, refresh-token reuse,
//!   deletions while issuing) from many tasks at once: one winner, never a 500.
//! - [`web_pages`]: the web UI's pages: CSRF on every form, nothing of another
//!   organization or person, no secret in a URL, own assets and labelled fields.

#[macro_use]
mod helpers;

mod abuse;
mod api_keys;
mod audit;
mod auth_check;
mod bad_input;
mod conformance;
mod cross_org;
mod csrf;
mod device;
mod legacy;
mod lineage;
mod login;
mod membership;
mod names;
mod oauth_clients;
mod oauth_introspect;
mod oauth_token;
mod ops;
mod org;
mod presentation;
mod purge;
mod races;
mod real_clients;
mod revocation;
mod secrets_at_rest;
mod service_accounts;
mod session_api;
mod shared_limits;
mod usage;
mod verify;
mod web_admin;
mod web_pages;
