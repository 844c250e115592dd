//! keyward's server: configuration, authentication, the management API and
//! `/auth/check`, and the rules for keys shared with the admin commands.
//!
//! # Layout
//!
//! - [`config`]: TOML + `KEYWARD_*` into checked [`config::Settings`].
//! - [`startup`]: build (connect, migrate, bind) and run with graceful shutdown.
//! - [`auth`]: credential in, identity out; the grant cache and the change follower.
//! - [`usage`]: last-used times and counts, written in coalesced batches.
//! - [`keys`]: the rules for making, importing and rolling keys (API and CLI).
//! - [`members`]: the rules for roles and memberships — who gives or takes which role,
//!   the last owner, removal (API, web pages and CLI).
//! - [`service_accounts`]: the rules for making service accounts and rotating their
//!   secrets (API and CLI).
//! - [`gateway`]: the optional second listener that authenticates and forwards to an
//!   upstream API.
//! - [`http`]: routes, extractors, the error type and its status mapping.
//! - [`metrics`]: counters for `/metrics`.
//! - [`purge`]: the background task that deletes ended tokens, device codes, used JWT
//!   ids and browser sessions in bounded batches.
//! - [`ratelimit`]: failure counters that slow sign-in and user-code guessing.
//! - [`state`]: what handlers share.

pub mod auth;
pub mod config;
pub mod deployment;
pub mod gateway;
pub mod http;
pub mod keys;
pub mod members;
pub mod metrics;
pub mod purge;
pub mod ratelimit;
pub mod service_accounts;
pub mod startup;
pub mod state;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod usage;

pub use config::Settings;
pub use startup::Server;
