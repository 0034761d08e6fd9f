//! The real probe: one `GET` of the health path on a fresh connection (no pooling, so it tests
//! that the backend accepts), a 2xx within the timeout being a success.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Probe;
use crate::backend::Backend;
use crate::config::HealthConfig;

/// Probes backends over HTTP/1.1 as `[health]` says.
pub(super) struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    config: HealthConfig,
}

impl HttpProbe {
    /// A probe sending `config.path` with `config.timeout` for the connection and the answer.
    pub(super) fn new(config: &HealthConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .timer(TokioTimer::new())
            .build(connector);
        HttpProbe {
            client,
            config: config.clone(),
        }
    }
}

impl Probe for HttpProbe {
    fn probe(&self, backend: &Backend) -> impl Future<Output = bool> + Send {
        let uri = Uri::builder()
            .scheme("http")
            .authority(backend.authority.clone())
            .path_and_query(self.config.path.clone())
            .build();
        async move {
            let Ok(uri) = uri else { return false };
            let mut request = Request::new(Empty::new());
            *request.uri_mut() = uri;
            let headers = request.headers_mut();
            headers.insert(
                header::USER_AGENT,
                HeaderValue::from_static("vane-health-check"),
            );
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            match tokio::time::timeout(self.config.timeout, self.client.request(request)).await {
                Ok(Ok(response)) => response.status().is_success(),
                Ok(Err(_)) | Err(_) => false,
            }
        }
    }
}
