//! keyward's domain, free of any runtime, web framework or database.
//!
//! Everything that crosses a trust boundary enters the program through one of the
//! `parse` constructors here, so the rest of the code base handles values that are
//! already known to be well formed ("parse, don't validate").
//!
//! # Layout
//!
//! - [`secret`]: the typed, checksummed secret format (`kw_…`, `kwat_…`, …), its
//!   generation from the OS CSPRNG, the stored hash and the display prefix.
//! - [`legacy`]: hashes of keys imported from a previous system (SHA-256 hex, bcrypt).
//! - [`device`]: user codes of the device authorization grant.
//! - [`credential`]: how a request presents a credential (Bearer, Basic, `X-API-Key`).
//! - [`permission`]: permissions, permission sets and their algebra; roles.
//! - [`domain`]: small value types: slugs, e-mail addresses, plans, key names.
//! - [`ids`]: prefixed, time-ordered identifiers.
//! - [`password`]: argon2id password hashing for people.
//! - [`assertion`]: registered public keys (PEM, JWK, JWKS) and verification of JWT
//!   client assertions and JWT-bearer grants (RFC 7523).

pub mod assertion;
pub mod credential;
pub mod device;
pub mod domain;
pub mod ids;
pub mod legacy;
pub mod password;
pub mod permission;
pub mod secret;
