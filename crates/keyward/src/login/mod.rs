//! `login`, `whoami`, `logout`: the CLI as an OAuth 2.0 device-flow client of a keyward
//! server (docs/device.md, "keyward login, whoami, logout").
//!
//! These three commands are HTTP clients: they never read the server configuration nor
//! open a database. What they keep between runs is one file, the credentials.
//!
//! Nothing secret — access token, refresh token, device code — is ever printed, on stdout
//! or stderr; the user code and the verification address are, since the person needs them.
//!
//! # Layout
//!
//! - [`commands`]: `login`, `whoami`, `logout`.
//! - [`oauth`]: the device-flow client on the `oauth2` crate — device authorization,
//!   polling, refresh, revocation — and what the server's refusals mean.
//! - [`transport`]: the HTTP client under it (no redirects, a timeout per request), the
//!   check of `--server`, and messages for network failures and answers that are not OAuth.
//! - [`refresh`]: when a stored access token must be refreshed, and the refresh itself,
//!   under the lock.
//! - [`credentials`]: the credentials file (mode `0600`) and its lock file.
//! - [`browser`]: opening the verification address.

mod browser;
mod commands;
mod credentials;
mod oauth;
mod refresh;
mod transport;

pub use commands::{login, logout, whoami};

/// The device-flow client id keyward's own CLI uses (a public client: no secret).
pub const CLIENT_ID: &str = "keyward-cli";
