//! The gateway's response body: the upstream's, passed through frame by frame with no
//! box and no copy, or one keyward made itself (an error, a metadata document).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};

pub(super) enum GatewayBody {
    Upstream(Incoming),
    Local(Body),
}

impl hyper::body::Body for GatewayBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // Both variants are `Unpin`, so no pin projection is needed.
        match self.get_mut() {
            GatewayBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            GatewayBody::Local(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Upstream(body) => body.is_end_stream(),
            GatewayBody::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Upstream(body) => body.size_hint(),
            GatewayBody::Local(body) => body.size_hint(),
        }
    }
}
