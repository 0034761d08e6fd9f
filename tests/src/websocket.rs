//! WebSocket for the tests (tokio-tungstenite): a backend that echoes every message and names
//! itself in the handshake's `x-backend` header (counting its open sessions), one that refuses
//! every upgrade with a plain 426, and a client that connects through vane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as ServerResponse};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config, client_async_with_config};

/// Messages up to this size pass (the tests send one of several MiB).
const MAX_MESSAGE: usize = 32 << 20;

/// A WebSocket client connection.
pub type WsClient = WebSocketStream<TcpStream>;

/// A running WebSocket backend; it stops when dropped.
pub struct WsBackend {
    /// Its name, sent in `x-backend`.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl WsBackend {
    /// An echo backend: every text or binary message comes back as it was; `close me` makes it
    /// close the session itself.
    pub async fn echo(name: &str) -> WsBackend {
        WsBackend::start(name, false).await
    }

    /// A backend that answers every request, upgrade or not, with `426 Upgrade Required`.
    pub async fn refusing(name: &str) -> WsBackend {
        WsBackend::start(name, true).await
    }

    async fn start(name: &str, refusing: bool) -> WsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("an address");
        let open = Arc::new(AtomicUsize::new(0));
        let (counted, own) = (open.clone(), name.to_owned());
        let task = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (open, name) = (counted.clone(), own.clone());
                sessions.spawn(async move {
                    if refusing {
                        refuse(stream, &name).await;
                    } else {
                        echo(stream, &name, &open).await;
                    }
                });
                while sessions.try_join_next().is_some() {}
            }
        });
        WsBackend {
            name: name.to_owned(),
            address,
            open,
            task,
        }
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The `[[backends]]` entry for it.
    pub fn toml(&self) -> String {
        format!(
            "[[backends]]\nname = \"{}\"\naddress = \"{}\"\n",
            self.name, self.address
        )
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// One echo session, counted open while it lasts.
async fn echo(stream: TcpStream, name: &str, open: &AtomicUsize) {
    // The callback's error type is tungstenite's, large by its design.
    #[allow(clippy::result_large_err)]
    let named = |_: &Request, mut response: ServerResponse| {
        let value = HeaderValue::from_str(name).expect("a header-safe name");
        response.headers_mut().insert("x-backend", value);
        Ok(response)
    };
    let Ok(mut session) = accept_hdr_async_with_config(stream, named, Some(config())).await else {
        return;
    };
    open.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(message)) = session.next().await {
        let echoed = match message {
            Message::Text(text) if text.as_str() == "close me" => {
                let _ = session.close(None).await;
                continue;
            }
            Message::Text(_) | Message::Binary(_) => session.send(message).await,
            // Read on: the answering close goes out, then the session ends.
            Message::Close(_) => Ok(()),
            _ => Ok(()),
        };
        if echoed.is_err() {
            break;
        }
    }
    open.fetch_sub(1, Ordering::SeqCst);
}

/// Reads a request head and answers 426 without upgrading.
async fn refuse(mut stream: TcpStream, name: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&byte[..read]),
        }
    }
    let answer = format!(
        "HTTP/1.1 426 Upgrade Required\r\nx-backend: {name}\r\ncontent-length: 14\r\n\r\nnot upgrading\n"
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

/// Opens a WebSocket session through vane at `address`: the session and the handshake's answer.
///
/// # Errors
/// If the handshake fails, such as a backend that does not upgrade (its answer is in the error).
pub async fn connect(address: SocketAddr, path: &str) -> Result<(WsClient, Response), Error> {
    let tcp = TcpStream::connect(address).await?;
    client_async_with_config(format!("ws://{address}{path}"), tcp, Some(config())).await
}
