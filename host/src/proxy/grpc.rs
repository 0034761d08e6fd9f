//! What a gRPC call needs of a proxy beyond HTTP/2 and trailers, as Envoy does it:
//! - a call is a request whose content-type is `application/grpc` (or `application/grpc+…`);
//! - its `grpc-timeout` bounds the whole call, response body included: when it passes, vane
//!   cancels the backend's stream and ends the call with `DEADLINE_EXCEEDED`, whether or not the
//!   client enforces its own deadline;
//! - vane's own answers to a call are gRPC statuses in a trailers-only response (HTTP 200 with
//!   `grpc-status`), so a client sees `UNAVAILABLE` and a reason rather than an HTTP error;
//! - a backend whose connection breaks while it streams a response ends the call with
//!   `UNAVAILABLE` in the trailers, not with a reset stream (which clients read as `INTERNAL`).

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use tokio::time::Instant;

use super::error::BodyBrokeOff;
use super::{ProxyBody, ProxyError};

/// gRPC status codes vane answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// 4: the call's deadline passed.
    DeadlineExceeded = 4,
    /// 8: the request is larger than vane accepts.
    ResourceExhausted = 8,
    /// 13: the request could not be forwarded as it was.
    Internal = 13,
    /// 14: no backend could take or finish the call; the client may try again.
    Unavailable = 14,
}

/// One gRPC call, from its request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrpcCall {
    /// When its `grpc-timeout` passes, if it sent one.
    pub(crate) deadline: Option<Instant>,
}

impl GrpcCall {
    /// The call a request with `headers` is, if it is one; its deadline counts from now.
    pub(crate) fn of(headers: &HeaderMap) -> Option<GrpcCall> {
        let content_type = headers.get(header::CONTENT_TYPE)?.as_bytes();
        let grpc = content_type
            .strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';');
        if !grpc {
            return None;
        }
        let deadline = headers
            .get("grpc-timeout")
            .and_then(|value| parse_timeout(value.as_bytes()))
            .and_then(|timeout| Instant::now().checked_add(timeout));
        Some(GrpcCall { deadline })
    }

    /// Whether its deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// vane's answer to the call when `error` kept it from a backend: a trailers-only response.
    pub(crate) fn error_response(&self, error: ProxyError) -> Response<ProxyBody> {
        let code = match error {
            ProxyError::Timeout | ProxyError::ClientBodyTimeout if self.expired() => {
                Code::DeadlineExceeded
            }
            ProxyError::NoBackend
            | ProxyError::Connect
            | ProxyError::Upstream
            | ProxyError::Timeout => Code::Unavailable,
            ProxyError::BodyTooLarge => Code::ResourceExhausted,
            ProxyError::BadHost | ProxyError::ClientBody | ProxyError::ClientBodyTimeout => {
                Code::Internal
            }
        };
        let message = error.body().trim_end();
        let mut response = Response::new(ProxyBody::Message(None));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.extend(status(code, message));
        if error == ProxyError::ClientBody {
            response.extensions_mut().insert(BodyBrokeOff);
        }
        response
    }
}

/// `grpc-status` and `grpc-message` (percent-encoded as the spec asks) for trailers.
pub(crate) fn status(code: Code, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(2);
    trailers.insert(
        "grpc-status",
        HeaderValue::from_str(&(code as u32).to_string()).expect("digits are a header value"),
    );
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message)) {
        trailers.insert("grpc-message", message);
    }
    trailers
}

/// `text` with every byte outside printable ASCII, and `%`, written as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_as_the_spec_writes_them() {
        assert_eq!(parse_timeout(b"500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [&b""[..], b"m", b"5", b"5s", b"123456789m", b"-1S", b"1.5S"] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_call_is_known_by_its_content_type() {
        let mut headers = HeaderMap::new();
        assert!(GrpcCall::of(&headers).is_none());
        for (content_type, call) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            assert_eq!(GrpcCall::of(&headers).is_some(), call, "{content_type}");
        }
    }

    #[test]
    fn vane_answers_a_call_with_a_grpc_status() {
        let call = GrpcCall { deadline: None };
        let response = call.error_response(ProxyError::Connect);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(
            response.headers()["grpc-message"],
            "502 Bad Gateway: could not connect to the backend"
        );
        let past = GrpcCall {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
        };
        let response = past.error_response(ProxyError::Timeout);
        assert_eq!(response.headers()["grpc-status"], "4");
        assert_eq!(percent_encode("ok 100% é"), "ok 100%25 %C3%A9");
    }
}
