//! The three commands: `keyward login --server URL`, `keyward whoami`, `keyward logout`.

use anyhow::{anyhow, bail, Context as _};
use chrono::Utc;
use serde::Deserialize;

use super::browser::open_browser;
use super::credentials::{default_credentials_path, read_credentials, write_credentials, Credentials};
use super::oauth::{Server, TokenKind};
use super::refresh::{credentials_from, needs_refresh, refresh};
use super::transport::{http_client, network_reason, printable, server_base, unreachable};
use crate::context::print_json;

/// `keyward login --server URL [--scope S] [--no-browser]`.
pub async fn login(server: &str, scope: Option<&str>, no_browser: bool) -> anyhow::Result<()> {
    let base = server_base(server)?;
    let path = default_credentials_path()?;
    let server = Server::new(&base, http_client()?)?;

    let codes = server.authorize(scope).await?;
    eprintln!(
        "Open {} and enter {}",
        printable(codes.verification_uri().as_str()),
        printable(codes.user_code().secret())
    );
    if let Some(complete) = codes.verification_uri_complete() {
        eprintln!("(or open {} to have the code filled in)", printable(complete.secret()));
    }
    if !no_browser {
        let address = codes.verification_uri_complete().map_or(codes.verification_uri().as_str(), |c| c.secret());
        open_browser(address);
    }
    eprintln!("waiting for the approval (the code is valid for {} s)…", codes.expires_in().as_secs());

    let token = server.wait_for_approval(&codes).await?;
    let creds = credentials_from(&base, &token, None);
    write_credentials(&path, &creds)?;
    match me(server.http(), &creds).await {
        Ok(Some(me)) => eprintln!("signed in as {}", describe(&me)),
        Ok(None) => eprintln!("warning: signed in to {base}, but {base}/api/v1/me refuses the new token"),
        Err(e) => eprintln!("warning: signed in to {base}, but cannot tell as whom: {e:#}"),
    }
    eprintln!("the tokens are in {}", path.display());
    Ok(())
}

/// `keyward whoami [--json]`.
pub async fn whoami(json: bool) -> anyhow::Result<()> {
    let path = default_credentials_path()?;
    let mut creds = read_credentials(&path)?;
    let http = http_client()?;
    let mut refreshed = false;
    if needs_refresh(creds.expires_at, Utc::now()) {
        creds = refresh(&path, &creds.access_token).await?;
        refreshed = true;
    }
    let me = match me(&http, &creds).await? {
        Some(me) => me,
        None if !refreshed => {
            // Revoked or expired early (a clock off, a server restarted with another TTL): once.
            creds = refresh(&path, &creds.access_token).await?;
            me(&http, &creds).await?.ok_or_else(|| refused(&creds))?
        }
        None => return Err(refused(&creds)),
    };
    if json {
        print_json(&me);
    } else {
        crate::out!("{}", describe(&me));
    }
    Ok(())
}

fn refused(creds: &Credentials) -> anyhow::Error {
    anyhow!("{} refuses the stored sign-in; run keyward login --server {} again", creds.server, creds.server)
}

/// `keyward logout`: revokes the refresh token (and so its whole family: every access
/// token of this sign-in) and deletes the file. Network trouble only warns: the local
/// sign-in ends regardless. Not signed in is not an error (nothing to do).
pub async fn logout() -> anyhow::Result<()> {
    let path = default_credentials_path()?;
    let creds = match read_credentials(&path) {
        Ok(creds) => Some(creds),
        Err(_) if !path.exists() => {
            eprintln!("not signed in; nothing to do");
            return Ok(());
        }
        // A damaged file is deleted all the same.
        Err(e) => {
            eprintln!("warning: {e:#}");
            None
        }
    };
    if let Some(creds) = &creds {
        let (token, kind) = match &creds.refresh_token {
            Some(refresh) => (refresh.as_str(), TokenKind::Refresh),
            None => (creds.access_token.as_str(), TokenKind::Access),
        };
        let server = Server::new(&creds.server, http_client()?)?;
        if let Err(why) = server.revoke(token, kind).await {
            eprintln!(
                "warning: could not revoke the sign-in at {}/oauth/revoke ({why}); it stays valid until it expires",
                creds.server
            );
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
    eprintln!("signed out");
    Ok(())
}

/// An error body of the API: only its code is shown.
#[derive(Deserialize)]
struct ApiError {
    error: String,
}

/// `GET /api/v1/me` with the access token: `Ok(None)` on `401`.
async fn me(http: &reqwest::Client, creds: &Credentials) -> anyhow::Result<Option<serde_json::Value>> {
    let url = format!("{}/api/v1/me", creds.server);
    let res = http
        .get(&url)
        .bearer_auth(&creds.access_token)
        .send()
        .await
        .map_err(|e| unreachable(&url, &network_reason(&e)))?;
    match res.status().as_u16() {
        200 => Ok(Some(res.json().await.map_err(|_| anyhow!("{url} did not answer JSON"))?)),
        401 => Ok(None),
        status => {
            let detail =
                res.json::<ApiError>().await.ok().map(|e| format!(" ({})", printable(&e.error))).unwrap_or_default();
            bail!("{url} answered {status}{detail}")
        }
    }
}

/// "ada@example.com in acme": the e-mail of a person, the name of a service account.
fn describe(me: &serde_json::Value) -> String {
    let p = &me["principal"];
    let who = p["email"].as_str().or_else(|| p["name"].as_str()).or_else(|| p["id"].as_str()).unwrap_or("?");
    let org = me["org"]["slug"].as_str().unwrap_or("?");
    format!("{} in {}", printable(who), printable(org))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_shows_its_name() {
        let person =
            serde_json::json!({"principal": {"kind": "user", "email": "ada@example.com"}, "org": {"slug": "acme"}});
        assert_eq!(describe(&person), "ada@example.com in acme");
        let machine =
            serde_json::json!({"principal": {"kind": "service_account", "name": "ci"}, "org": {"slug": "acme"}});
        assert_eq!(describe(&machine), "ci in acme");
    }
}
