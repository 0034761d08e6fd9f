//! A plain HTTP/1.1 client (or h2c with prior knowledge) for talking to vane in tests.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What came back: status, the `x-backend` that served (if any), headers and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The backend that answered, from its `x-backend` header; `None` for vane's own answers.
    pub backend: Option<String>,
    /// All response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A pooled client aimed at one address.
#[derive(Clone)]
pub struct Client {
    address: SocketAddr,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// An HTTP/1.1 keep-alive client for `address`.
    pub fn new(address: SocketAddr) -> Self {
        Client {
            address,
            inner: HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// An HTTP/2 client with prior knowledge (h2c) for `address`.
    pub fn h2c(address: SocketAddr) -> Self {
        Client {
            address,
            inner: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Sends one request with extra headers and a body, and reads the whole reply.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.inner.request(request.body(Full::new(body))?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let backend = headers
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            backend,
            headers,
            body,
        })
    }
}

/// A raw HTTP/2 connection (h2c, prior knowledge) to `address` with the h2 crate, for what the
/// clients above hide: trailers, flow control, a deadline no client enforces.
pub async fn raw_h2(address: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp)
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    client
}
