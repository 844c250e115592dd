//! A switched-protocol connection (WebSocket, or any `Upgrade`) tunnelled between the
//! client and the upstream: once both sides have answered `101`, bytes are copied
//! both ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Copies between the two upgraded connections; runs as its own task, so the `101`
/// can be sent to the client (which completes the client side's upgrade) first.
pub(super) async fn run(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "an upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        // A peer going away mid-stream is the normal end of many tunnels.
        tracing::debug!(error = %e, "a tunnel closed with an error");
    }
}
