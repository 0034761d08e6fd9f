//! The request head at the proxy boundary: checked (exactly one Host), then rewritten for the
//! backends (HTTP/1.1 in origin form, hop-by-hop headers out in both directions per RFC 9110
//! §7.6.1), and made into each attempt's request with `X-Forwarded-For`/`-Proto`/`-Host`
//! (`Forwarding`).

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};

use super::ProxyError;
use crate::backend::Backend;

/// Headers that describe one connection, never forwarded: RFC 9110 §7.6.1 and the ones RFC 2616
/// §13.5.1 listed, plus the non-standard `Proxy-Connection` that old clients still send.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers, including every header named in `Connection`.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names, comparing without hashing, finds the few present (most messages
    // carry none, or only `Connection: keep-alive`); only those are looked up to be removed.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(index) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present[index] = true;
        }
    }
    // HOP_BY_HOP[0] is `Connection`.
    if present[0] {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| named_in_connection(value.as_bytes()))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// Whether `name` is hop-by-hop by itself (besides those a `Connection` field names).
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether the field name `name` (in any case) is hop-by-hop by itself.
pub(super) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    // Only names of these lengths can be one: most fields are ruled out without a comparison.
    matches!(name.len(), 2 | 7 | 10 | 16 | 17 | 18 | 19)
        && HOP_BY_HOP
            .iter()
            .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// The headers a `Connection` field's value names, to be removed with it.
pub(super) fn named_in_connection(value: &[u8]) -> impl Iterator<Item = HeaderName> + '_ {
    value
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !is_connection_option(token))
        .filter_map(|name| HeaderName::from_bytes(name).ok())
}

/// Whether a `Connection` token is `close`, names a header removed anyway, such as
/// `keep-alive`, or names `Host`, which a client may not strip this way (the backend would see
/// another host than the one asked for): no header to remove for it.
fn is_connection_option(token: &[u8]) -> bool {
    // `keep-alive` and `close` first: nearly every `Connection` field says one of them.
    token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"close")
        || token.is_empty()
        || token.eq_ignore_ascii_case(b"host")
        || HOP_BY_HOP
            .iter()
            .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(token))
}

/// A client connection's address, with its `X-Forwarded-For` entry written once for all the
/// requests the connection carries.
#[derive(Debug, Clone)]
pub(super) struct ClientAddress {
    /// Where the connection comes from.
    pub(super) socket: SocketAddr,
    forwarded_for: HeaderValue,
    /// Whether the connection is TLS (`X-Forwarded-Proto: https`).
    tls: bool,
}

impl ClientAddress {
    /// The address of a client connected from `socket`.
    pub(super) fn new(socket: SocketAddr) -> Self {
        let text = socket.ip().to_string();
        ClientAddress {
            socket,
            forwarded_for: HeaderValue::from_maybe_shared(Bytes::from(text))
                .expect("an IP address is a valid header value"),
            tls: false,
        }
    }

    /// The same client, connected over TLS.
    pub(super) fn over_tls(self) -> Self {
        ClientAddress { tls: true, ..self }
    }
}

/// What vane says of a request's way in `X-Forwarded-*`, gathered from the prepared head's
/// fields: the client's address after the hops the client's own `X-Forwarded-For` fields list,
/// `https` or `http` (whether the client's connection is TLS), and the Host the client asked
/// for. Whatever the client sent in `X-Forwarded-Proto` and `-Host` is replaced: vane is where
/// the client's connection ends. The HTTP/1.1 encoder writes these as it writes the head; an
/// HTTP/2 backend's request gets them in its map ([`add_forwarded`]).
#[derive(Debug, Default)]
pub(super) struct Forwarding<'a> {
    earlier: Vec<&'a [u8]>,
    host: Option<&'a HeaderValue>,
}

impl<'a> Forwarding<'a> {
    /// Notes the field `name: value`: whether vane replaces it, so it is not forwarded as it came.
    pub(super) fn note(&mut self, name: &HeaderName, value: &'a HeaderValue) -> bool {
        if name == header::HOST {
            self.host = Some(value);
            false
        } else if name == X_FORWARDED_FOR {
            let earlier = value.as_bytes().trim_ascii();
            if !earlier.is_empty() {
                self.earlier.push(earlier);
            }
            true
        } else {
            name == X_FORWARDED_PROTO || name == X_FORWARDED_HOST
        }
    }

    /// The `X-Forwarded-For` value: the earlier hops, then `client`.
    pub(super) fn forwarded_for<'c>(&self, client: &'c ClientAddress) -> Cow<'c, [u8]> {
        if self.earlier.is_empty() {
            return Cow::Borrowed(client.forwarded_for.as_bytes());
        }
        let mut value = self.earlier.join(&b", "[..]);
        value.extend_from_slice(b", ");
        value.extend_from_slice(client.forwarded_for.as_bytes());
        Cow::Owned(value)
    }

    /// The `X-Forwarded-Host` value: the Host the client asked for, if it named one.
    pub(super) fn host(&self) -> Option<&'a HeaderValue> {
        self.host
    }
}

impl ClientAddress {
    /// The `X-Forwarded-Proto` value for this client's connection.
    pub(super) fn proto(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// Adds the `X-Forwarded-*` fields to the prepared head's `headers` (see [`Forwarding`]).
pub(super) fn add_forwarded(headers: &mut HeaderMap, client: &ClientAddress) {
    let mut forwarding = Forwarding::default();
    for (name, value) in headers.iter() {
        forwarding.note(name, value);
    }
    let forwarded_for = HeaderValue::from_bytes(&forwarding.forwarded_for(client)).ok();
    let host = forwarding.host().cloned();
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(client.proto()),
    );
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

/// The protocol an HTTP/1.1 client asks to switch to (`Upgrade`, named in `Connection` as RFC
/// 9110 §7.8 requires), if it asks. An upgrade to h2c is not carried (Envoy strips it too): it
/// would turn the connection into one vane no longer balances, and RFC 9113 deprecates it.
pub(super) fn requested_upgrade<B>(request: &Request<B>) -> Option<HeaderValue> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let headers = request.headers();
    let named = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    if !named {
        return None;
    }
    let protocol = headers.get(header::UPGRADE)?;
    let h2c = protocol
        .as_bytes()
        .split(|&byte| byte == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"h2c"));
    (!h2c).then(|| protocol.clone())
}

/// Marks a gRPC call's request as gRPC requires (`TE: trailers`, removed with the hop-by-hop
/// headers): its backend is an HTTP/2 one, where that is the one TE value allowed.
pub(super) fn keep_grpc_te(head: &mut Parts) {
    head.headers
        .insert(header::TE, HeaderValue::from_static("trailers"));
}

/// Puts the upgrade the client asked for back into the prepared head (hop-by-hop headers were
/// removed): `Connection: upgrade` and its `Upgrade`.
pub(super) fn keep_upgrade(head: &mut Parts, protocol: HeaderValue) {
    head.headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    head.headers.insert(header::UPGRADE, protocol);
}

/// Joins the `cookie` fields an HTTP/2 client may split into one, separated by `; ` as an
/// HTTP/1.1 backend expects (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Refuses a request without exactly one valid Host (RFC 9112 §3.2); HTTP/1.0 may omit it,
/// and HTTP/2 names the host in `:authority`. vane's HTTP/1 server refuses such a head before
/// it gets here (and closes the connection); this catches HTTP/2 requests.
pub(super) fn check_host<B>(request: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadHost),
        (None, _) if request.version() == Version::HTTP_11 => Err(ProxyError::BadHost),
        (Some(host), None) if !super::http1::is_valid_host(host.as_bytes()) => {
            Err(ProxyError::BadHost)
        }
        _ => Ok(()),
    }
}

/// Rewrites the request head for any backend: HTTP/1.1, an origin-form URI, the Host the client
/// asked for (from an absolute-form URI or `:authority` when it has one, RFC 9112 §3.2.2), split
/// cookies joined, hop-by-hop headers out. The forwarding headers go in as each attempt's request
/// is made ([`Forwarding`]).
pub(super) fn prepare(head: &mut Parts) {
    let asked_authority = head
        .uri
        .authority()
        .and_then(|authority| HeaderValue::try_from(authority.as_str()).ok());
    let from_http2 = head.version == Version::HTTP_2;
    head.version = Version::HTTP_11;
    head.uri = origin_form(&head.uri);
    let headers = &mut head.headers;
    remove_hop_by_hop(headers);
    if from_http2 {
        join_cookies(headers);
    }
    if let Some(authority) = asked_authority {
        headers.insert(header::HOST, authority);
    }
}

/// The request for one attempt on the HTTP/2 `backend`: the prepared head, with the forwarding
/// headers for `client` and the host as `:authority` in an absolute URI (the client's Host, or the
/// backend's address if the client named none). The last possible attempt takes the headers;
/// earlier ones copy them, for the retry. (An HTTP/1.1 backend's request is written straight from
/// the head.)
pub(super) fn for_http2<B>(
    head: &mut Parts,
    client: &ClientAddress,
    backend: &Backend,
    body: B,
    last: bool,
) -> Request<B> {
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    let headers = request.headers_mut();
    *headers = if last {
        std::mem::take(&mut head.headers)
    } else {
        head.headers.clone()
    };
    add_forwarded(headers, client);
    // HTTP/2 has no Upgrade (an upgrade asked for goes as a plain request).
    headers.remove(header::CONNECTION);
    headers.remove(header::UPGRADE);
    let authority = headers
        .remove(header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .unwrap_or_else(|| backend.authority.clone());
    let scheme = if backend.tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let mut parts = head.uri.clone().into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = Version::HTTP_2;
    request
}

/// `uri` in origin form (`/path?query`), as a request to a backend carries it (RFC 9112 §3.2.1).
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn an_upgrade_is_one_named_in_connection_and_never_to_h2c() {
        let request = |pairs: &[(&str, &str)], version| {
            let mut request = Request::new(());
            *request.headers_mut() = map(pairs);
            *request.version_mut() = version;
            request
        };
        let websocket = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            requested_upgrade(&request(&websocket, Version::HTTP_11)).unwrap(),
            "websocket"
        );
        assert!(requested_upgrade(&request(&websocket, Version::HTTP_10)).is_none());
        let unnamed = [("connection", "keep-alive"), ("upgrade", "websocket")];
        assert!(requested_upgrade(&request(&unnamed, Version::HTTP_11)).is_none());
        let h2c = [
            ("connection", "upgrade, http2-settings"),
            ("upgrade", "h2c"),
        ];
        assert!(requested_upgrade(&request(&h2c, Version::HTTP_11)).is_none());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "close, X-Secret"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "1"),
            ("host", "example.com"),
        ]);
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-kept", "host"]);
    }

    fn client(socket: &str) -> ClientAddress {
        ClientAddress::new(socket.parse().unwrap())
    }

    #[test]
    fn forwarded_for_appends_and_proto_host_are_set() {
        let mut headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "elsewhere"),
            ("host", "example.com"),
        ]);
        add_forwarded(&mut headers, &client("127.0.0.2:1"));
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.2");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "example.com");
        let mut over_tls = map(&[("host", "example.com")]);
        add_forwarded(&mut over_tls, &client("127.0.0.2:1").over_tls());
        assert_eq!(over_tls["x-forwarded-proto"], "https");

        let mut two_lines = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
        ]);
        add_forwarded(&mut two_lines, &client("127.0.0.1:1"));
        assert_eq!(
            two_lines["x-forwarded-for"],
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"
        );
        assert_eq!(two_lines.get_all("x-forwarded-for").iter().count(), 1);

        let mut fresh = HeaderMap::new();
        add_forwarded(&mut fresh, &client("[::1]:1"));
        assert_eq!(fresh["x-forwarded-for"], "::1");
        assert!(!fresh.contains_key("x-forwarded-host"));
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        join_cookies(&mut headers);
        assert_eq!(
            headers.get_all("cookie").iter().collect::<Vec<_>>(),
            vec!["a=1; b=2"]
        );
        let mut single = map(&[("cookie", "a=1")]);
        join_cookies(&mut single);
        assert_eq!(single["cookie"], "a=1");
    }
}

/// Rewriting checks shared by the property tests and the fuzz target.
#[cfg(any(test, fuzzing))]
pub(super) mod checks {
    use http::header::{self, HeaderValue};
    use http::request::Parts;
    use http::{Request, Version};

    use super::{
        ClientAddress, HOP_BY_HOP, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
        add_forwarded, prepare,
    };

    /// Headers vane sets itself, whatever the client's `Connection` says of them.
    const SET_BY_VANE: [&str; 5] = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "host",
        "cookie",
    ];

    /// Rewrites `request` (whose Host was checked) from client 192.0.2.7 and checks what every
    /// rewrite must hold: HTTP/1.1, no hop-by-hop header and none `Connection` names, every
    /// other header kept, `X-Forwarded-For` ending with the client, one Host at most and
    /// `X-Forwarded-Host` equal to it. Answers the rewritten head.
    pub(crate) fn rewritten(request: Request<()>) -> Result<Parts, String> {
        let named: Vec<String> = request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|token| token.trim().to_ascii_lowercase())
            .collect();
        let sent = request.headers().clone();
        let (mut head, ()) = request.into_parts();
        prepare(&mut head);
        add_forwarded(
            &mut head.headers,
            &ClientAddress::new("192.0.2.7:5000".parse().expect("an address")),
        );
        let headers = &head.headers;
        let mut problems = Vec::new();
        if head.version != Version::HTTP_11 {
            problems.push(format!("version {:?}", head.version));
        }
        for hop in &HOP_BY_HOP {
            if headers.contains_key(hop) {
                problems.push(format!("{hop} forwarded"));
            }
        }
        for name in named
            .iter()
            .filter(|name| !SET_BY_VANE.contains(&name.as_str()))
        {
            if headers.contains_key(name.as_str()) {
                problems.push(format!("{name}, named in Connection, forwarded"));
            }
        }
        for (name, value) in &sent {
            let kept = !HOP_BY_HOP.contains(name)
                && !named.iter().any(|named| named == name.as_str())
                && !SET_BY_VANE.contains(&name.as_str());
            if kept
                && !headers
                    .get_all(name)
                    .iter()
                    .any(|forwarded| forwarded == value)
            {
                problems.push(format!("{name}: {value:?} lost"));
            }
        }
        let forwarded_for = headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes);
        if !forwarded_for.is_some_and(|value| value.ends_with(b"192.0.2.7")) {
            problems.push(format!("x-forwarded-for {forwarded_for:?}"));
        }
        if headers
            .get(&X_FORWARDED_PROTO)
            .is_none_or(|proto| proto != "http")
        {
            problems.push("x-forwarded-proto is not http".to_owned());
        }
        if headers.get_all(header::HOST).iter().count() > 1
            || headers.get(&X_FORWARDED_HOST) != headers.get(header::HOST)
        {
            problems.push("Host and X-Forwarded-Host disagree".to_owned());
        }
        if problems.is_empty() {
            Ok(head)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The fuzz target: header lines `name: value` from the bytes, on a GET; every head whose
    /// Host passes the check is rewritten as [`rewritten`] requires.
    #[cfg(fuzzing)]
    pub(crate) fn fuzz(data: &[u8]) {
        let mut request = Request::new(());
        if data.first().is_some_and(|first| first % 2 == 1) {
            *request.version_mut() = Version::HTTP_2;
        }
        for line in data.split(|&byte| byte == b'\n') {
            let Some(colon) = line.iter().position(|&byte| byte == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name),
                HeaderValue::from_bytes(value),
            ) {
                request.headers_mut().append(name, value);
            }
        }
        if super::check_host(&request).is_ok() {
            rewritten(request).unwrap();
        }
    }
}

/// Properties of head rewriting over generated heads: whatever the client sends, no hop-by-hop
/// header and no header its `Connection` names reaches a backend, every other header does, and
/// the forwarding headers end with this hop.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::checks::rewritten;
    use super::*;

    /// A header name: one of the hop-by-hop ones (in any case), a forwarding one, or another.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(&HOP_BY_HOP[..]).prop_map(|name| name.as_str().to_owned()),
            Just("x-forwarded-for".to_owned()),
            Just("x-forwarded-host".to_owned()),
            Just("host".to_owned()),
            Just("cookie".to_owned()),
            "x-[a-z]{1,3}",
        ]
    }

    /// A value: a list of names (as `Connection` carries), or any visible text.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(prop_oneof![name(), Just("close".to_owned())], 0..4)
                .prop_map(|names| names.join(", ")),
            "[ -~]{0,12}",
        ]
    }

    fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((name(), value()), 0..12)
    }

    proptest! {
        #[test]
        fn no_hop_by_hop_header_is_forwarded_and_every_other_one_is(
            fields in headers(),
            host in proptest::option::weighted(0.9, prop_oneof![Just("a.example"), Just("b:8080")]),
            absolute in any::<bool>(),
            http2 in any::<bool>(),
        ) {
            let mut request = Request::new(());
            *request.uri_mut() = if absolute {
                Uri::from_static("http://asked.example/p?q")
            } else {
                Uri::from_static("/p?q")
            };
            *request.version_mut() = if http2 { Version::HTTP_2 } else { Version::HTTP_11 };
            if let Some(host) = host {
                request.headers_mut().insert(header::HOST, HeaderValue::from_static(host));
            }
            for (name, value) in &fields {
                request.headers_mut().append(
                    HeaderName::try_from(name.as_str()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            // The service refuses a head without exactly one valid Host before rewriting it.
            prop_assume!(check_host(&request).is_ok());
            let head = match rewritten(request) {
                Ok(head) => head,
                Err(problem) => return Err(TestCaseError::fail(problem)),
            };
            prop_assert_eq!(head.uri.to_string(), "/p?q");
            if absolute {
                prop_assert_eq!(&head.headers[header::HOST], "asked.example");
            } else if let Some(host) = host {
                prop_assert_eq!(&head.headers[header::HOST], host, "Host is kept");
            }
        }
    }
}
