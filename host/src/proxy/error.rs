//! What can go wrong with one request, where it came from, and the response the client gets.
//! Whether a failed attempt may be retried is decided in one place, `attempts::may_retry`.

use http::{HeaderValue, Response, StatusCode, header};

use super::ProxyBody;
use super::request_body::BodyFault;

/// A request that could not be served by a backend; small and `Copy`, made on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No backend may receive traffic (internal: the set is empty or all are out).
    #[error("no backend is available")]
    NoBackend,
    /// The backend could not be connected to within the connect timeout (upstream).
    #[error("could not connect to the backend")]
    Connect,
    /// The backend accepted the request but broke off before its response headers (upstream).
    #[error("the backend closed the connection before responding")]
    Upstream,
    /// The backend did not send response headers within the request timeout (upstream).
    #[error("the backend did not respond in time")]
    Timeout,
    /// An HTTP/1.1 request without a Host header, or with more than one (client; RFC 9112 §3.2).
    #[error("the request needs exactly one Host header")]
    BadHost,
    /// The client's request body broke off while it was being forwarded, or its framing
    /// broke (client).
    #[error("the request body broke off")]
    ClientBody,
    /// The client's request body sent nothing for `body_read_timeout` (client).
    #[error("the request body sent nothing for too long")]
    ClientBodyTimeout,
    /// The client's request body is larger than `max_body_size` (client).
    #[error("the request body is too large")]
    BodyTooLarge,
}

/// Marks vane's answer to a request whose body broke off: over HTTP/2, the client reset the
/// stream before its response, which the rapid reset defence counts.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyBrokeOff;

impl From<BodyFault> for ProxyError {
    fn from(fault: BodyFault) -> Self {
        match fault {
            BodyFault::Malformed => ProxyError::ClientBody,
            BodyFault::TimedOut => ProxyError::ClientBodyTimeout,
            BodyFault::TooLarge => ProxyError::BodyTooLarge,
        }
    }
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect | ProxyError::Upstream => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadHost | ProxyError::ClientBody => StatusCode::BAD_REQUEST,
            ProxyError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The short body sent with the status.
    pub fn body(self) -> &'static str {
        match self {
            ProxyError::NoBackend => "503 Service Unavailable: no backend is available\n",
            ProxyError::Connect => "502 Bad Gateway: could not connect to the backend\n",
            ProxyError::Upstream => "502 Bad Gateway: the backend closed the connection\n",
            ProxyError::Timeout => "504 Gateway Timeout: the backend did not respond in time\n",
            ProxyError::BadHost => "400 Bad Request: the request needs exactly one Host header\n",
            ProxyError::ClientBody => "400 Bad Request: the request body broke off\n",
            ProxyError::ClientBodyTimeout => {
                "408 Request Timeout: the request body sent nothing for too long\n"
            }
            ProxyError::BodyTooLarge => "413 Content Too Large: the request body is too large\n",
        }
    }

    /// Whether the backend is to blame, so that the error counts as one of its failures.
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            ProxyError::Connect | ProxyError::Upstream | ProxyError::Timeout
        )
    }

    /// The response the client gets: the status, with the short body as plain text. A
    /// response to a body that broke off is marked with a `BodyBrokeOff` extension.
    pub fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::message(self.body()));
        *response.status_mut() = self.status();
        if self == ProxyError::ClientBody {
            response.extensions_mut().insert(BodyBrokeOff);
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}
