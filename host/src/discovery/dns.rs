//! Looking a group up in DNS: every A and AAAA address of a host name, or the targets of a
//! name's SRV records, with the shortest TTL among the records that gave them.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::Record;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

use super::{Answer, Member};
use crate::config::DiscoveryConfig;

/// How long one lookup may take, all attempts together, before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A DNS resolver for discovery: the servers of `[discovery] dns_servers`, else those of
/// `/etc/resolv.conf`.
pub(super) struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver as `config` says. Its cache keeps an answer no longer than `max_refresh`
    /// (so a long TTL does not outlast the bound) and a missing name no longer than
    /// `min_refresh`.
    pub(super) fn new(config: &DiscoveryConfig) -> Result<Self, String> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if config.dns_servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|err| format!("cannot read the system's DNS settings: {err}"))?
        } else {
            let mut servers = NameServerConfigGroup::new();
            for &server in &config.dns_servers {
                for protocol in [Protocol::Udp, Protocol::Tcp] {
                    servers.push(NameServerConfig::new(server, protocol));
                }
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                provider,
            )
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = LOOKUP_TIMEOUT / 2;
        options.attempts = 1;
        options.positive_max_ttl = Some(config.max_refresh);
        options.negative_max_ttl = Some(config.min_refresh);
        Ok(Dns {
            resolver: builder.build(),
        })
    }

    /// Every address of `host`, each a member at `port`.
    pub(super) async fn addresses(&self, host: &str, port: u16) -> Result<Answer, String> {
        let lookup = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|err| failure(host, &err))?;
        let members = lookup
            .iter()
            .map(|ip| Member::found(SocketAddr::new(ip, port), None, host.trim_end_matches('.')))
            .collect();
        Ok(Answer {
            members,
            ttl: shortest_ttl(lookup.as_lookup().records()),
        })
    }

    /// The targets of `name`'s SRV records of the lowest priority (the others are fallbacks
    /// RFC 2782 uses only when those fail; vane's health checks do that), each address at its
    /// record's port, with its record's weight (0 counts as 1). The targets are looked up all
    /// at once; one that does not resolve is left out (and named if none does).
    pub(super) async fn service(&self, name: &str) -> Result<Answer, String> {
        let lookup = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|err| failure(name, &err))?;
        let lowest = lookup.iter().map(|srv| srv.priority()).min();
        let mut targets = tokio::task::JoinSet::new();
        for srv in lookup.iter().filter(|srv| Some(srv.priority()) == lowest) {
            let (resolver, target) = (self.resolver.clone(), srv.target().clone());
            let (port, weight) = (srv.port(), u32::from(srv.weight().max(1)));
            targets.spawn(async move {
                let host = target.to_utf8().trim_end_matches('.').to_owned();
                let found = resolver.lookup_ip(target).await;
                (host, port, weight, found)
            });
        }
        let mut ttl = shortest_ttl(lookup.as_lookup().records());
        let (mut members, mut failures) = (Vec::new(), Vec::new());
        while let Some(done) = targets.join_next().await {
            let Ok((host, port, weight, found)) = done else {
                continue;
            };
            match found {
                Ok(found) => {
                    let targets = shortest_ttl(found.as_lookup().records());
                    ttl = ttl.into_iter().chain(targets).min();
                    members.extend(
                        found.iter().map(|ip| {
                            Member::found(SocketAddr::new(ip, port), Some(weight), &host)
                        }),
                    );
                }
                Err(err) => failures.push(failure(&host, &err)),
            }
        }
        if members.is_empty() && !failures.is_empty() {
            return Err(failures.join("; "));
        }
        // Two records may lead to one address and port: one member.
        members.sort();
        members.dedup_by(|a, b| a.label == b.label);
        Ok(Answer { members, ttl })
    }
}

/// What a failed lookup of `name` says.
fn failure(name: &str, err: &ResolveError) -> String {
    if err.is_nx_domain() {
        format!("{name}: no such name")
    } else if err.is_no_records_found() {
        format!("{name}: no records")
    } else {
        format!("{name}: {err}")
    }
}

/// The shortest TTL of `records`; `None` if there are none.
fn shortest_ttl(records: &[Record]) -> Option<Duration> {
    records
        .iter()
        .map(|record| Duration::from_secs(u64::from(record.ttl())))
        .min()
}
