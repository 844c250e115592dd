//! The gateway and forward-auth, black box: a real upstream on loopback, keyward in
//! front of it (both listeners on port 0), and clients speaking plain HTTP, SSE,
//! chunked uploads, WebSocket and MCP's streamable HTTP through it. Every case runs on
//! SQLite and on PostgreSQL. The forward-auth cases run Debian's nginx (`auth_request`)
//! and Caddy (`forward_auth`) pointed at `/auth/check` (skipped with a reason when the
//! proxy is missing, except under `CI=true`, where it fails).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use keyward_core::permission::Roles;
use keyward_server::testing::{self, Running};
use keyward_store::testing::TestDb;
use keyward_store::{Org, Principal, Store, User};
use serde_json::Value;

// ---------------------------------------------------------------------------------
// The upstream: a small axum app that reports what it received.

/// Answers every request with what it saw: method, path, headers (lower-case names,
/// repeated values joined by ", ") and the body's length.
async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value)
            })
            .or_insert(value);
    }
    // Counted frame by frame: the upstream never holds a large upload either.
    let mut stream = body.into_data_stream();
    let mut bytes = 0usize;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes += chunk.len(),
            // The gateway aborted the request (an oversized upload): nobody reads this.
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    axum::Json(serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
        "body_bytes": bytes,
    }))
    .into_response()
}

/// Server-sent events: the first at once, the second `SSE_PAUSE` later.
const SSE_PAUSE: Duration = Duration::from_millis(1200);

fn event_stream(events: Vec<(Duration, String)>) -> Response {
    let stream = futures_util::stream::unfold(events.into_iter(), |mut rest| async move {
        let (wait, data) = rest.next()?;
        tokio::time::sleep(wait).await;
        Some((Ok::<_, Infallible>(Bytes::from(data)), rest))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn sse() -> Response {
    event_stream(vec![(Duration::ZERO, "data: one\n\n".into()), (SSE_PAUSE, "data: two\n\n".into())])
}

/// MCP streamable HTTP, as a server that answers a POSTed JSON-RPC request with an SSE
/// stream, offers a GET stream, and ends sessions on DELETE.
async fn mcp_post(body: String) -> Response {
    let request: Value = serde_json::from_str(&body).expect("JSON-RPC");
    assert_eq!(request["method"], "initialize");
    let answer = serde_json::json!({
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "upstream-mcp", "version": "1"},
        },
    });
    let mut response = event_stream(vec![(Duration::ZERO, format!("event: message\ndata: {answer}\n\n"))]);
    response.headers_mut().insert("mcp-session-id", "s-1".parse().unwrap());
    response
}

async fn mcp_get() -> Response {
    event_stream(vec![(Duration::ZERO, ": keep-alive\n\n".into())])
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late"
}

async fn spawn_upstream() -> SocketAddr {
    let app = Router::new()
        .route("/sse", get(sse))
        .route("/mcp", post(mcp_post).get(mcp_get).delete(|| async { StatusCode::NO_CONTENT }))
        .route("/slow", get(slow))
        .fallback(any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A WebSocket echo server (tungstenite, no HTTP framework): what the gateway must
/// tunnel after the `101`.
async fn spawn_ws_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An address nothing listens on.
async fn dead_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------
// keyward in front, and the people and keys it knows.

struct App {
    /// The main server, e.g. `http://127.0.0.1:1234`.
    base: String,
    /// The gateway.
    gateway: String,
    store: Store,
    org: Org,
    user: User,
    http: reqwest::Client,
    _running: Running,
}

/// keyward with `[gateway]` in front of `upstream`; `top` is more TOML before the
/// table, `gateway_extra` inside it.
async fn spawn_keyward(db: &TestDb, upstream: SocketAddr, top: &str, gateway_extra: &str) -> Running {
    let toml =
        format!("{top}\n[gateway]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\n{gateway_extra}\n");
    testing::serve(db, &toml).await
}

/// keyward (see [`spawn_keyward`]) and an organization `acme` with a `member` user.
async fn spawn_app(db: &TestDb, upstream: SocketAddr, top: &str, gateway_extra: &str) -> App {
    let running = spawn_keyward(db, upstream, top, gateway_extra).await;
    let store = db.store().await;
    let org = testing::org(&store, "acme").await;
    let user = testing::member(&store, &org, "ada@example.com", "member").await;
    let base = running.base.clone();
    let gateway = running.gateway.clone().expect("the gateway is configured");
    App { base, gateway, store, org, user, http: reqwest::Client::new(), _running: running }
}

impl App {
    /// A key of the user's (role `member`) limited to `permissions`; returns (id, secret).
    async fn key(&self, permissions: &[&str]) -> (String, String) {
        let req = testing::key_request("gateway test", Some(permissions));
        let user = Principal::user(&self.user.id);
        let (key, secret) = testing::key(&self.store, &Roles::default(), &self.org, &user, "member", &req).await;
        (key.id.to_string(), secret.expose().to_owned())
    }

    fn gw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.gateway))
    }
}

async fn status(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.expect("an answer").status()
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

fn challenges(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(header::WWW_AUTHENTICATE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn bearer_challenge(headers: &HeaderMap) -> String {
    challenges(headers).into_iter().find(|c| c.starts_with("Bearer")).expect("a Bearer challenge")
}

/// The URL a challenge's `resource_metadata` names.
fn resource_metadata(challenge: &str) -> Option<String> {
    let start = challenge.find("resource_metadata=\"")? + "resource_metadata=\"".len();
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

// ---------------------------------------------------------------------------------
// The cases, each a function of the database; `both!` runs them on both backends.

async fn no_credential_gets_401_naming_the_resource_metadata(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "").await;
    let response = app.gw(Method::GET, "/projects").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let headers = response.headers().clone();
    let body = json(response).await;
    assert_eq!(body["error"], "unauthorized");
    let bearer = bearer_challenge(&headers);
    let url = resource_metadata(&bearer).expect("resource_metadata in the Bearer challenge");
    assert_eq!(url, format!("{}/.well-known/oauth-protected-resource", app.gateway));
    assert!(challenges(&headers).iter().any(|c| c.starts_with("Basic realm=\"keyward\"")));

    // The document it names (RFC 9728), served by the gateway for the upstream.
    let doc = app.http.get(&url).send().await.unwrap();
    assert_eq!(doc.status(), 200);
    let doc = json(doc).await;
    assert_eq!(doc["resource"], app.gateway);
    assert_eq!(doc["authorization_servers"], serde_json::json!(["http://127.0.0.1:7070"]));
    assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
    assert!(doc["scopes_supported"].as_array().unwrap().iter().any(|s| s == "projects:read"));

    // A wrong key: invalid_token, and the same pointer.
    let response = app.gw(Method::GET, "/projects").bearer_auth("kw_wrong").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let bearer = bearer_challenge(response.headers());
    assert!(bearer.contains("error=\"invalid_token\""), "{bearer}");
    assert!(resource_metadata(&bearer).is_some(), "{bearer}");
    assert_eq!(json(response).await["error"], "invalid_token");

    // /auth/check on the main server names the main server's document.
    let response = app.http.get(format!("{}/auth/check", app.base)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        resource_metadata(&bearer_challenge(response.headers())).as_deref(),
        Some("http://127.0.0.1:7070/.well-known/oauth-protected-resource")
    );
    let doc =
        json(app.http.get(format!("{}/.well-known/oauth-protected-resource", app.base)).send().await.unwrap()).await;
    assert_eq!(doc["resource"], "http://127.0.0.1:7070");
}

async fn metadata_off_means_no_pointer_and_no_document(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "[oauth]\nmetadata = false", "").await;
    let response = app.gw(Method::POST, "/mcp").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let bearer = bearer_challenge(response.headers());
    assert_eq!(bearer, "Bearer realm=\"keyward\"");
    let response = app.http.get(format!("{}/auth/check", app.base)).send().await.unwrap();
    assert_eq!(bearer_challenge(response.headers()), "Bearer realm=\"keyward\"");
    for url in [&app.gateway, &app.base] {
        let response = app.http.get(format!("{url}/.well-known/oauth-protected-resource")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{url}");
        assert_eq!(json(response).await["error"], "not_found");
    }
}

async fn the_upstream_sees_the_identity_and_never_a_spoofed_one_or_the_credential(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "").await;
    let (key_id, secret) = app.key(&["projects:read"]).await;
    let check = app.http.get(format!("{}/auth/check", app.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(check.status(), 200);
    let expected: Vec<(String, String)> =
        ["x-keyward-principal", "x-keyward-org", "x-keyward-permissions", "x-keyward-credential"]
            .iter()
            .map(|h| (h.to_string(), check.headers()[*h].to_str().unwrap().to_owned()))
            .collect();
    assert_eq!(expected[1].1, "acme");
    assert_eq!(expected[2].1, "projects:read");
    assert_eq!(expected[3].1, format!("api_key:{key_id}"));

    let gateway_host = app.gateway.trim_start_matches("http://").to_owned();
    let basic = format!("{secret}:");
    for (presentation, header_name, value) in [
        ("bearer", "authorization", format!("Bearer {secret}")),
        ("basic", "authorization", format!("Basic {}", base64_encode(basic.as_bytes()))),
        ("x-api-key", "x-api-key", secret.clone()),
    ] {
        let response = app
            .gw(Method::POST, "/projects/1?x=y")
            .header(header_name, &value)
            .header("X-Keyward-Principal", "someone-else")
            .header("x-keyward-org", "other-org")
            .header("X-Keyward-Permissions", "*")
            .header("X-Keyward-Extra", "spoof")
            .header("X-Forwarded-For", "6.6.6.6")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{presentation}");
        let seen = json(response).await;
        let headers = &seen["headers"];
        for (name, value) in &expected {
            assert_eq!(headers[name], *value, "{presentation}: {name}");
        }
        assert!(headers.get("x-keyward-extra").is_none(), "{presentation}: a spoofed header reached the upstream");
        assert!(headers.get("authorization").is_none(), "{presentation}: the credential reached the upstream");
        assert!(headers.get("x-api-key").is_none(), "{presentation}: the credential reached the upstream");
        assert!(!seen.to_string().contains(&secret), "{presentation}: the secret reached the upstream");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{presentation}");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], gateway_host);
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["path"], "/projects/1?x=y");
        assert_eq!(seen["body_bytes"], 5);
    }
}

async fn pass_authorization_forwards_the_credential(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "pass_authorization = true").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    let seen = json(app.gw(Method::GET, "/x").bearer_auth(&secret).send().await.unwrap()).await;
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {secret}"));
    assert_eq!(seen["headers"]["x-keyward-org"], "acme");
}

async fn public_paths_pass_without_a_credential(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "public_paths = [\"/health\", \"/docs/**\"]").await;
    for path in ["/health", "/docs/a/b.html"] {
        let response = app.gw(Method::GET, path).header("x-keyward-principal", "spoof").send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let seen = json(response).await;
        assert!(seen["headers"].get("x-keyward-principal").is_none(), "{path}: spoofed identity forwarded");
    }
    assert_eq!(status(app.gw(Method::GET, "/healthz")).await, 401);
    assert_eq!(status(app.gw(Method::GET, "/docs")).await, 401);
}

async fn a_rule_refuses_a_key_lacking_its_permission(db: TestDb) {
    let rules = "[[gateway.rules]]\nmethod = \"DELETE,POST\"\npath = \"/projects/**\"\npermission = \"projects:write\"";
    let app = spawn_app(&db, spawn_upstream().await, "", rules).await;
    let (_, reader) = app.key(&["projects:read"]).await;
    let (_, writer) = app.key(&["projects:read", "projects:write"]).await;
    let response = app.gw(Method::DELETE, "/projects/7").bearer_auth(&reader).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(bearer_challenge(response.headers()).contains("error=\"insufficient_scope\""));
    let body = json(response).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert!(body["error_description"].as_str().unwrap().contains("projects:write"));
    // Methods and paths outside the rule are not affected; the writer passes.
    for (method, path, key) in [
        (Method::GET, "/projects/7", &reader),
        (Method::DELETE, "/other/7", &reader),
        (Method::DELETE, "/projects/7", &writer),
    ] {
        let response = app.gw(method.clone(), path).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
    }
}

/// The gateway counts a credential's plan limit (headers on the upstream's answer, `429`
/// past it) and throttles an address that keeps presenting wrong keys.
async fn the_gateway_applies_rate_limits(db: TestDb) {
    let top = "[rate_limits]\nfailed_authentications = \"3/1m\"\n[rate_limits.plans]\npro = \"3/1m\"";
    let app = spawn_app(&db, spawn_upstream().await, top, "").await;
    let (_, key) = app.key(&["projects:read"]).await;
    for left in (0..3).rev() {
        let response = app.gw(Method::GET, "/projects").bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-policy"], "\"per-credential\";q=3;w=60");
        let state = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(state.starts_with(&format!("\"per-credential\";r={left};")), "{state}");
    }
    let response = app.gw(Method::GET, "/projects").bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(json(response).await["error"], "rate_limited");
    let format = keyward_core::secret::SecretFormat::new("kw").unwrap();
    let wrong = || format.generate(keyward_core::secret::SecretKind::ApiKey).expose().to_owned();
    for _ in 0..3 {
        assert_eq!(status(app.gw(Method::GET, "/projects").bearer_auth(wrong())).await, 401);
    }
    let response = app.gw(Method::GET, "/projects").bearer_auth(wrong()).send().await.unwrap();
    assert_eq!(response.status(), 429, "the address is throttled after 3 wrong keys");
    assert!(response.headers().contains_key("retry-after"));
}

async fn the_first_event_arrives_before_the_upstream_finishes(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    let started = Instant::now();
    let mut response = app
        .gw(Method::GET, "/sse")
        .bearer_auth(&secret)
        .header(header::ACCEPT, "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let first = response.chunk().await.unwrap().expect("a first event");
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: one\n\n");
    assert!(first_at < SSE_PAUSE / 2, "the first event took {first_at:?}: the gateway buffered the stream");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"data: two\n\n");
    assert!(started.elapsed() >= SSE_PAUSE, "the upstream's pause happened");
}

async fn a_large_chunked_upload_streams_through(db: TestDb) {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let app = spawn_app(&db, spawn_upstream().await, "", "max_body_size = \"30MB\"").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 320; // 20 MiB, sent without a Content-Length (chunked)
    let frames = futures_util::stream::iter(0..CHUNKS)
        .map(|i| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![i as u8; CHUNK]))));
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let request = hyper::Request::post(format!("{}/upload", app.gateway))
        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
        .body(StreamBody::new(frames))
        .unwrap();
    let response = client.request(request).await.expect("the upload is answered");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["body_bytes"], CHUNK * CHUNKS);
    assert_eq!(seen["headers"]["transfer-encoding"], "chunked");

    // A chunked body that grows past the limit: the upstream's request is aborted and
    // the client told 413. The client then pauses (as a slow uploader would), so the
    // answer is read before the gateway closes a connection with unread bytes in it.
    const OVER: usize = 30_000_000 / CHUNK + 2;
    let frames = Box::pin(futures_util::stream::unfold(0usize, |i| async move {
        if i == OVER {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        (i <= OVER).then(|| (Ok::<_, Infallible>(Frame::data(Bytes::from(vec![1u8; CHUNK]))), i + 1))
    }));
    let request = hyper::Request::post(format!("{}/upload", app.gateway))
        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
        .body(StreamBody::new(frames))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let response = client.request(request).await.expect("the oversized upload is answered");
    assert_eq!(response.status(), 413);

    // `Expect: 100-continue` (curl sends it for bodies over 1 MiB): the client is told
    // to go on, and the body reaches the upstream.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.gateway.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {secret}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut interim)).await.expect("100 Continue").unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(b"hello").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await.expect("an answer").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_bytes\":5"), "{answer}");
    assert!(!answer.contains("\"expect\""), "Expect was forwarded: {answer}");

    // A declared length over the limit: refused with 413 JSON before any byte of the
    // body is read (raw HTTP/1.1, so the client is not cut off mid-send).
    let mut tcp = tokio::net::TcpStream::connect(app.gateway.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {secret}\r\nContent-Length: 31000000\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await.expect("an answer").unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"payload_too_large\""), "{answer}");
}

async fn a_websocket_echo_works_through_the_gateway(db: TestDb) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app(&db, spawn_ws_upstream().await, "", "").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    let url = format!("{}/socket", app.gateway.replace("http://", "ws://"));
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.expect("the upgrade passes");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the gateway"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an echo").unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();

    // Without a credential the upgrade is refused before reaching the upstream.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await.expect_err("no upgrade");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected an HTTP 401, got {other}"),
    }
}

async fn upstream_failures_are_502_and_504_json(db: TestDb) {
    let app = spawn_app(&db, dead_address().await, "", "").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    let response = app.gw(Method::GET, "/anything").bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(json(response).await["error"], "bad_gateway");
    // Authentication comes first: no credential, no upstream attempt.
    assert_eq!(status(app.gw(Method::GET, "/anything")).await, 401);

    // Another keyward on the same database, whose upstream answers too late.
    let slow = spawn_keyward(&db, spawn_upstream().await, "", "response_timeout = \"300ms\"").await;
    let gateway = slow.gateway.clone().expect("the gateway is configured");
    let response = app.http.get(format!("{gateway}/slow")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(json(response).await["error"], "gateway_timeout");
}

async fn an_mcp_client_connects_over_streamable_http(db: TestDb) {
    let app = spawn_app(&db, spawn_upstream().await, "", "").await;
    let (_, secret) = app.key(&["projects:read"]).await;
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
    });
    let post = |auth: Option<&str>| {
        let mut request = app
            .gw(Method::POST, "/mcp")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .body(initialize.to_string());
        if let Some(secret) = auth {
            request = request.bearer_auth(secret);
        }
        request.send()
    };

    // Without a key: the discovery challenge.
    let response = post(None).await.unwrap();
    assert_eq!(response.status(), 401);
    let metadata = resource_metadata(&bearer_challenge(response.headers())).expect("resource_metadata");
    let doc = json(app.http.get(&metadata).send().await.unwrap()).await;
    assert_eq!(doc["resource"], app.gateway);

    // With the configured static header: the session starts, answered as SSE.
    let response = post(Some(&secret)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(response.headers()["mcp-session-id"], "s-1");
    let text = response.text().await.unwrap();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect("an SSE data line");
    let answer: Value = serde_json::from_str(data).unwrap();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "upstream-mcp");

    // The other methods a streamable-HTTP client uses are never 401/405 with a key.
    for method in [Method::GET, Method::DELETE] {
        let response = app
            .gw(method.clone(), "/mcp")
            .bearer_auth(&secret)
            .header(header::ACCEPT, "text/event-stream")
            .header("mcp-session-id", "s-1")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{method}: {}", response.status());
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(keyward_store::testing::TestDb::sqlite()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(db) = keyward_store::testing::TestDb::postgres().await {
                    super::$case(db).await
                }
            })*
        }
    };
}

both!(
    no_credential_gets_401_naming_the_resource_metadata,
    metadata_off_means_no_pointer_and_no_document,
    the_upstream_sees_the_identity_and_never_a_spoofed_one_or_the_credential,
    pass_authorization_forwards_the_credential,
    public_paths_pass_without_a_credential,
    a_rule_refuses_a_key_lacking_its_permission,
    the_gateway_applies_rate_limits,
    the_first_event_arrives_before_the_upstream_finishes,
    a_large_chunked_upload_streams_through,
    a_websocket_echo_works_through_the_gateway,
    upstream_failures_are_502_and_504_json,
    an_mcp_client_connects_over_streamable_http,
    nginx_auth_request_in_front_of_an_upstream,
    caddy_forward_auth_in_front_of_an_upstream,
);

// ---------------------------------------------------------------------------------
// Forward auth, end to end: real nginx (`auth_request`) and real Caddy
// (`forward_auth`) asking `/auth/check` in front of an upstream.

/// A proxy started by a test, in its own temporary directory; killed by its PID when
/// dropped.
struct ProxyProcess {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first of `paths` that exists; `None` skips the test with a reason, except under
/// `CI=true`, where a missing proxy fails it (`.ci/run` installs both).
fn installed(name: &str, paths: &[&str]) -> Option<std::path::PathBuf> {
    let found = paths.iter().map(std::path::PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is required in CI (.ci/run installs it) and is not installed");
        }
        eprintln!("SKIPPED: {name} is not installed (apt-get install {name})");
    }
    found
}

async fn free_port() -> u16 {
    dead_address().await.port()
}

/// Starts `binary` with `args` (where `{dir}` stands for the temporary directory, which
/// `config` is written into as `file`), and waits until `front` answers.
async fn start_proxy(
    binary: std::path::PathBuf,
    file: &str,
    config: impl FnOnce(&std::path::Path) -> String,
    args: &[&str],
    front: &str,
) -> ProxyProcess {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), config(dir.path())).unwrap();
    let d = dir.path().display().to_string();
    let child = std::process::Command::new(binary)
        .args(args.iter().map(|a| a.replace("{dir}", &d)))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("the proxy starts");
    let mut proxy = ProxyProcess { child, dir };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(front).send().await.is_ok() {
            return proxy;
        }
        if proxy.child.try_wait().unwrap().is_some() {
            break; // it exited: a configuration error, reported below
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(proxy.dir.path().join("stderr.log")).unwrap_or_default();
    let errors = std::fs::read_to_string(proxy.dir.path().join("error.log")).unwrap_or_default();
    panic!("the proxy did not start: {log}{errors}");
}

/// Allow, deny and the forwarded identity through a forward-auth proxy at `front`.
async fn check_forward_auth(app: &App, front: &str, key_id: &str, secret: &str) {
    // Deny: no key, or a wrong one; keyward's challenge reaches the client.
    let denied = app.http.get(format!("{front}/projects")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert!(resource_metadata(&bearer_challenge(denied.headers())).is_some());
    assert_eq!(status(app.http.get(format!("{front}/projects")).bearer_auth("kw_wrong")).await, 401);

    // Allow: the upstream sees the identity keyward answered with, not the client's,
    // and not the credential.
    let response = app
        .http
        .get(format!("{front}/projects?page=2"))
        .bearer_auth(secret)
        .header("X-Keyward-Principal", "spoofed")
        .header("X-Keyward-Org", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = json(response).await;
    let headers = &seen["headers"];
    assert_eq!(seen["path"], "/projects?page=2");
    assert_eq!(headers["x-keyward-principal"], app.user.id.to_string());
    assert_eq!(headers["x-keyward-org"], "acme");
    assert_eq!(headers["x-keyward-permissions"], "projects:read");
    assert_eq!(headers["x-keyward-credential"], format!("api_key:{key_id}"));
    assert!(headers.get("authorization").is_none(), "the credential reached the upstream");
}

/// The nginx configuration docs/forward-auth.md shows, with this test's addresses.
fn nginx_conf(dir: &std::path::Path, port: u16, keyward: &str, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_keyward_check;
            auth_request_set $kw_principal $upstream_http_x_keyward_principal;
            auth_request_set $kw_org $upstream_http_x_keyward_org;
            auth_request_set $kw_permissions $upstream_http_x_keyward_permissions;
            auth_request_set $kw_credential $upstream_http_x_keyward_credential;
            proxy_set_header X-Keyward-Principal $kw_principal;
            proxy_set_header X-Keyward-Org $kw_org;
            proxy_set_header X-Keyward-Permissions $kw_permissions;
            proxy_set_header X-Keyward-Credential $kw_credential;
            proxy_set_header Authorization "";
            proxy_pass http://{upstream};
        }}
        location = /_keyward_check {{
            internal;
            proxy_pass {keyward}/auth/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"#
    )
}

/// keyward in front of an upstream, a key, and a free port for the proxy under test.
struct Case {
    app: App,
    upstream: SocketAddr,
    key_id: String,
    secret: String,
    port: u16,
    front: String,
}

async fn case(db: &TestDb) -> Case {
    let upstream = spawn_upstream().await;
    let app = spawn_app(db, upstream, "", "").await;
    let (key_id, secret) = app.key(&["projects:read"]).await;
    let port = free_port().await;
    Case { app, upstream, key_id, secret, port, front: format!("http://127.0.0.1:{port}") }
}

async fn nginx_auth_request_in_front_of_an_upstream(db: TestDb) {
    let Some(binary) = installed("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx"]) else {
        return;
    };
    let c = case(&db).await;
    let conf = |dir: &std::path::Path| nginx_conf(dir, c.port, &c.app.base, c.upstream);
    let nginx = start_proxy(binary, "nginx.conf", conf, &["-p", "{dir}", "-c", "{dir}/nginx.conf"], &c.front).await;
    check_forward_auth(&c.app, &c.front, &c.key_id, &c.secret).await;
    drop(nginx);
}

/// The Caddyfile docs/forward-auth.md shows, with this test's addresses (and no admin
/// endpoint, no automatic HTTPS).
fn caddyfile(port: u16, keyward: &str, upstream: SocketAddr) -> String {
    let keyward = keyward.trim_start_matches("http://");
    format!(
        r#"{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    bind 127.0.0.1
    route {{
        forward_auth {keyward} {{
            uri /auth/check
            copy_headers X-Keyward-Principal X-Keyward-Org X-Keyward-Permissions X-Keyward-Credential
        }}
        request_header -Authorization
        request_header -X-API-Key
        reverse_proxy {upstream}
    }}
}}
"#
    )
}

async fn caddy_forward_auth_in_front_of_an_upstream(db: TestDb) {
    let Some(binary) = installed("caddy", &["/usr/bin/caddy", "/usr/local/bin/caddy"]) else {
        return;
    };
    let c = case(&db).await;
    let conf = |_: &std::path::Path| caddyfile(c.port, &c.app.base, c.upstream);
    let args = ["run", "--config", "{dir}/Caddyfile", "--adapter", "caddyfile"];
    let caddy = start_proxy(binary, "Caddyfile", conf, &args, &c.front).await;
    check_forward_auth(&c.app, &c.front, &c.key_id, &c.secret).await;
    // Caddy passes keyward's own 401 through: the JSON body too.
    let denied = c.app.http.get(format!("{}/x", c.front)).send().await.unwrap();
    assert_eq!(json(denied).await["error"], "unauthorized");
    drop(caddy);
}
