//! The device-flow client (RFC 8628) and the token calls around it: device authorization,
//! polling the token endpoint until the person decides, refreshing (RFC 6749 §6) and
//! revoking (RFC 7009) — all as the public client `keyward-cli`, which has no secret and
//! names itself with `client_id` in the form.
//!
//! The first three run on the `oauth2` crate. Revocation is one form POST of its own:
//! `oauth2` refuses a revocation endpoint that is not `https` (RFC 7009 §2 asks for TLS),
//! while a keyward server on the same machine is plain `http://127.0.0.1:7070` by default,
//! and logging out of it must still end the sign-in (docs/decisions.md).
//!
//! Polling is `oauth2`'s loop: `authorization_pending` keeps the interval, `slow_down`
//! adds 5 s to it for good, and a network failure doubles it (at most 10 s). keyward adds
//! two bounds of its own: the wait between polls is never under a second, whatever the
//! server says, and after [`MAX_NETWORK_FAILURES`] failed requests in a row the login
//! stops instead of waiting out the code's lifetime in silence.

use std::time::Duration;

use anyhow::anyhow;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    ClientId, DeviceAuthorizationUrl, DeviceCodeErrorResponse, DeviceCodeErrorResponseType, EndpointNotSet,
    EndpointSet, RefreshToken, Scope, StandardDeviceAuthorizationResponse, TokenUrl,
};
use serde::Deserialize;

use super::transport::{network_reason, printable, unreachable, Transport};
use super::CLIENT_ID;

/// Polls that fail at the network level in a row before login gives up.
pub const MAX_NETWORK_FAILURES: u32 = 3;
/// The shortest wait between two polls.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// An `oauth2` client with the device authorization and token endpoints set.
type Client = BasicClient<EndpointNotSet, EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What the device authorization endpoint answered: the codes, the address, the timing.
pub type DeviceCodes = StandardDeviceAuthorizationResponse;

/// A keyward server, as the OAuth client talks to it.
pub struct Server {
    client: Client,
    revocation_url: String,
    transport: Transport,
}

/// Which token `revoke` is given.
#[derive(Clone, Copy)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl Server {
    /// The client for the server at `base` (already checked with `server_base`).
    pub fn new(base: &str, http: reqwest::Client) -> anyhow::Result<Self> {
        let bad = |_| anyhow!("{base:?} does not make valid endpoint URLs");
        let client = BasicClient::new(ClientId::new(CLIENT_ID.to_owned()))
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(format!("{base}/oauth/device_authorization")).map_err(bad)?,
            )
            .set_token_uri(TokenUrl::new(format!("{base}/oauth/token")).map_err(bad)?);
        Ok(Self { client, revocation_url: format!("{base}/oauth/revoke"), transport: Transport::new(http) })
    }

    /// The plain HTTP client, for the API (`/api/v1/me`).
    pub fn http(&self) -> &reqwest::Client {
        self.transport.http()
    }

    /// Asks for a device code and a user code (RFC 8628 §3.1); `scope` is space-separated.
    pub async fn authorize(&self, scope: Option<&str>) -> anyhow::Result<DeviceCodes> {
        let scopes = scope.unwrap_or_default().split_whitespace().map(|s| Scope::new(s.to_owned()));
        let url = self.client.device_authorization_url().as_str();
        self.client.exchange_device_code().add_scopes(scopes).request_async(&self.transport).await.map_err(|e| {
            self.transport.explain(url, e, |answer: BasicErrorResponse| {
                anyhow!(
                    "the server refused to start the sign-in: {}{}",
                    printable(answer.error().as_ref()),
                    answer.error_description().map(|d| format!(": {}", printable(d))).unwrap_or_default()
                )
            })
        })
    }

    /// Polls the token endpoint (RFC 8628 §3.4) until the person approves — the tokens —
    /// or denies, the code expires, or the network fails [`MAX_NETWORK_FAILURES`] times in
    /// a row.
    pub async fn wait_for_approval(&self, codes: &DeviceCodes) -> anyhow::Result<BasicTokenResponse> {
        let url = self.client.token_uri().as_str();
        let gave_up = tokio::sync::Notify::new();
        let transport = &self.transport;
        let sleep = |interval: Duration| {
            let failures = transport.failures_in_a_row();
            let gave_up = &gave_up;
            async move {
                if failures >= MAX_NETWORK_FAILURES {
                    // Ends the select below; this future is dropped with the loop.
                    gave_up.notify_one();
                    std::future::pending::<()>().await;
                }
                let interval = interval.max(MIN_INTERVAL);
                if failures > 0 {
                    eprintln!(
                        "warning: cannot reach {url} ({}); trying again in {} s",
                        transport.last_failure(),
                        interval.as_secs()
                    );
                }
                tokio::time::sleep(interval).await;
            }
        };
        let polling = self.client.exchange_device_access_token(codes).request_async(transport, sleep, None);
        tokio::select! {
            result = polling => result.map_err(|e| {
                transport.explain(url, e, |answer: DeviceCodeErrorResponse| {
                    anyhow!(refusal(answer.error(), answer.error_description().map(String::as_str)))
                })
            }),
            () = gave_up.notified() => Err(unreachable(url, &transport.last_failure())),
        }
    }

    /// Exchanges a refresh token for new tokens. `Ok(None)`: the server refused it
    /// (`invalid_grant`: expired, revoked, or used already) and the sign-in has ended.
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Option<BasicTokenResponse>> {
        let url = self.client.token_uri().as_str();
        let token = RefreshToken::new(refresh_token.to_owned());
        match self.client.exchange_refresh_token(&token).request_async(&self.transport).await {
            Ok(tokens) => Ok(Some(tokens)),
            Err(oauth2::RequestTokenError::ServerResponse(answer))
                if *answer.error() == oauth2::basic::BasicErrorResponseType::InvalidGrant =>
            {
                Ok(None)
            }
            Err(e) => Err(self.transport.explain(url, e, |answer: BasicErrorResponse| {
                anyhow!("cannot refresh the sign-in: the server answered {}", printable(answer.error().as_ref()))
            })),
        }
    }

    /// Revokes a token (RFC 7009); a refresh token takes its whole family with it. `Err`
    /// says why it could not be done, for a warning.
    pub async fn revoke(&self, token: &str, kind: TokenKind) -> Result<(), String> {
        let hint = match kind {
            TokenKind::Refresh => "refresh_token",
            TokenKind::Access => "access_token",
        };
        let form = [("token", token), ("token_type_hint", hint), ("client_id", CLIENT_ID)];
        let res = self.http().post(&self.revocation_url).form(&form).send().await.map_err(|e| network_reason(&e))?;
        if res.status().is_success() {
            return Ok(());
        }
        let status = res.status().as_u16();
        let code = res.json::<OAuthError>().await.ok().map(|e| format!(" {}", printable(&e.error))).unwrap_or_default();
        Err(format!("answered {status}{code}"))
    }
}

/// An OAuth error body (RFC 6749 §5.2): only its code is shown.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

/// Why the token endpoint ended a device-code poll, for the person (RFC 8628 §3.5).
/// `authorization_pending` and `slow_down` never end it; they are here for completeness.
pub fn refusal(error: &DeviceCodeErrorResponseType, description: Option<&str>) -> String {
    match error {
        DeviceCodeErrorResponseType::AccessDenied => {
            "the sign-in was denied on the approval page (access_denied)".into()
        }
        DeviceCodeErrorResponseType::ExpiredToken => {
            "the code expired before it was approved (expired_token); run keyward login again".into()
        }
        other => match description {
            Some(d) if !d.is_empty() => {
                format!("the server refused the sign-in: {}: {}", printable(other.as_ref()), printable(d))
            }
            _ => format!("the server refused the sign-in: {}", printable(other.as_ref())),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use oauth2::basic::BasicErrorResponseType;

    use super::*;

    #[test]
    fn denied_expired_and_anything_else_are_explained() {
        use DeviceCodeErrorResponseType as E;
        assert!(refusal(&E::AccessDenied, None).contains("denied"));
        assert!(refusal(&E::ExpiredToken, None).contains("expired"));
        let used = refusal(&E::Basic(BasicErrorResponseType::InvalidGrant), Some("the code was used"));
        assert!(used.contains("invalid_grant: the code was used"), "{used}");
        assert!(refusal(&E::Basic(BasicErrorResponseType::InvalidClient), None).contains("invalid_client"));
        let hostile = refusal(&E::Basic(BasicErrorResponseType::Extension("x\u{1b}[31m".into())), Some("\u{7}bell"));
        assert!(!hostile.contains(|c: char| c.is_control()), "no escape sequences: {hostile:?}");
    }

    /// The codes as a server would answer them, with `interval` seconds between polls.
    fn codes(interval: u64) -> DeviceCodes {
        serde_json::from_value(serde_json::json!({
            "device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": "http://127.0.0.1/device",
            "expires_in": 600, "interval": interval
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn polling_stops_after_three_network_failures_and_never_polls_hot() {
        // Nobody listens on the port: every poll fails at once. The server's interval of 0
        // must not make a hot loop: the wait is at least a second.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server =
            Server::new(&format!("http://127.0.0.1:{port}"), super::super::transport::http_client().unwrap()).unwrap();
        let start = Instant::now();
        let e = server.wait_for_approval(&codes(0)).await.unwrap_err().to_string();
        let took = start.elapsed();
        assert!(e.starts_with(&format!("cannot reach http://127.0.0.1:{port}/oauth/token:")), "{e}");
        assert_eq!(server.transport.failures_in_a_row(), MAX_NETWORK_FAILURES);
        assert!(took >= Duration::from_secs(2), "two waits of at least a second: {took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
