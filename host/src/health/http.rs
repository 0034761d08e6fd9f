//! The real probe: one `GET` of the health path on a fresh connection (no pooling, so it tests
//! that the backend accepts), reached as requests reach the backend (TLS, HTTP/2 if it speaks
//! it), a 2xx within the timeout being a success.

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::Probe;
use crate::backend::Backend;
use crate::config::HealthConfig;
use crate::dial;

/// Probes backends over HTTP as `[health]` says.
pub(super) struct HttpProbe {
    config: HealthConfig,
    max_header_list_size: u32,
}

impl HttpProbe {
    /// A probe sending `config.path` with `config.timeout` for the connection and the answer,
    /// accepting response heads up to `max_header_size`.
    pub(super) fn new(config: &HealthConfig, max_header_size: usize) -> Self {
        HttpProbe {
            config: config.clone(),
            max_header_list_size: u32::try_from(max_header_size).unwrap_or(u32::MAX),
        }
    }

    /// The probe's request to `backend`, in its protocol.
    fn request(&self, backend: &Backend) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        let headers = request.headers_mut();
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static("vane-health-check"),
        );
        if backend.protocol.is_http2() {
            let scheme = if backend.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            };
            *request.version_mut() = Version::HTTP_2;
            *request.uri_mut() = absolute(scheme, &backend.authority, &self.config.path);
        } else {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            let host = HeaderValue::try_from(backend.authority.as_str())
                .expect("an address is a valid header value");
            headers.insert(header::HOST, host);
            *request.uri_mut() = Uri::from(self.config.path.clone());
        }
        request
    }

    /// Opens a connection to `backend` and sends the probe's request on it.
    async fn exchange(&self, backend: &Backend) -> Result<Response<Incoming>, String> {
        let request = self.request(backend);
        let timeout = self.config.timeout;
        if backend.protocol.is_http2() {
            let stop = CancellationToken::new();
            // The connection's task ends with the probe.
            let _end = stop.clone().drop_guard();
            let dialed =
                dial::http2(backend, timeout, self.max_header_list_size, None, &stop).await;
            let mut sender = dialed.map_err(|err| err.to_string())?.sender;
            return sender
                .send_request(request)
                .await
                .map_err(|err| err.to_string());
        }
        let (mut sender, connection) = dial::http1(backend, timeout)
            .await
            .map_err(|err| err.to_string())?;
        let mut connection = std::pin::pin!(connection);
        let mut answer = std::pin::pin!(sender.send_request(request));
        tokio::select! {
            biased;
            answered = &mut answer => answered.map_err(|err| err.to_string()),
            // The connection may end (`Connection: close`) as soon as it has handed the
            // answer over: the request is settled either way.
            _ = &mut connection => answer.await.map_err(|err| err.to_string()),
        }
    }
}

impl Probe for HttpProbe {
    async fn probe(&self, backend: &Backend) -> Result<(), String> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.exchange(backend)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("answered {}", response.status())),
            Ok(Err(failure)) => Err(failure),
            Err(_elapsed) => Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )),
        }
    }
}

/// `scheme://authority/path`.
fn absolute(scheme: Scheme, authority: &Authority, path: &http::uri::PathAndQuery) -> Uri {
    Uri::builder()
        .scheme(scheme)
        .authority(authority.clone())
        .path_and_query(path.clone())
        .build()
        .expect("a scheme, an authority and a path make a URI")
}
