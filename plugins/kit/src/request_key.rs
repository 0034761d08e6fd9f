//! A request's key for affinity (which backend) or stickiness (which group): the client's
//! address, a header, a cookie, or the path, named in a plugin's config as `ip`,
//! `header:NAME`, `cookie:NAME`, `path` (without the query) or `uri` (with it).

use crate::guest::{Needs, Request};
use crate::hash::hash64;

/// Where a request's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// The address of the client connected to vane.
    ClientIp,
    /// The first value of this request header (lower case).
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The path, without the query.
    Path,
    /// The path and the query.
    Uri,
}

impl RequestKey {
    /// Reads `value` of the config key `setting` (named in the error): `ip`, `header:NAME`,
    /// `cookie:NAME`, `path` or `uri`.
    pub fn parse(setting: &str, value: &str) -> Result<RequestKey, String> {
        let named = |prefix: &str| {
            value
                .strip_prefix(prefix)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        };
        match value {
            "ip" => Ok(RequestKey::ClientIp),
            "path" => Ok(RequestKey::Path),
            "uri" => Ok(RequestKey::Uri),
            _ => {
                if let Some(name) = named("header:") {
                    Ok(RequestKey::Header(name.to_ascii_lowercase()))
                } else if let Some(name) = named("cookie:") {
                    Ok(RequestKey::Cookie(name))
                } else {
                    Err(format!(
                        "{setting}={value:?}: expected ip, header:NAME, cookie:NAME, path or uri"
                    ))
                }
            }
        }
    }

    /// Adds what `pick` must be given to read the key: its header, the cookies, or the target.
    pub fn add_needs(&self, needs: &mut Needs) {
        match self {
            RequestKey::Header(name) => needs.headers.push(name.clone()),
            RequestKey::Cookie(_) => needs.headers.push("cookie".to_owned()),
            RequestKey::Path | RequestKey::Uri => needs.target = true,
            RequestKey::ClientIp => {}
        }
    }

    /// The key's hash for `request` (stable across runs and builds, see [`hash64`]), or `None`
    /// if the request does not carry it.
    pub fn hash(&self, request: &Request) -> Option<u64> {
        match self {
            // An IPv4 client reached over an IPv6 listener is seen as ::ffff:a.b.c.d: the same
            // key as over an IPv4 listener.
            RequestKey::ClientIp => Some(match crate::guest::client_ip(request).to_canonical() {
                std::net::IpAddr::V4(ip) => hash64(&ip.octets()),
                std::net::IpAddr::V6(ip) => hash64(&ip.octets()),
            }),
            RequestKey::Header(name) => crate::guest::header_values(request, name)
                .next()
                .map(|value| hash64(value.as_bytes())),
            RequestKey::Cookie(name) => crate::guest::header_values(request, "cookie")
                .flat_map(|header| header.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(cookie, _)| cookie == name)
                .map(|(_, value)| hash64(value.as_bytes())),
            RequestKey::Path | RequestKey::Uri => {
                let path = request.target.as_ref()?.path.as_str();
                let path = match self {
                    RequestKey::Path => path.split('?').next().unwrap_or(path),
                    _ => path,
                };
                Some(hash64(path.as_bytes()))
            }
        }
    }
}
