//! Groups of backends found at run time rather than listed: a host name's addresses, a name's
//! SRV records, or a file any tool can write. Each group is looked up again on its records'
//! TTL, within `[discovery]`'s bounds, or when its file changes. A lookup that fails keeps the
//! last good members, and says so in the log and `GET /discovery`, instead of emptying the
//! group. Whenever a group's members change, [`Discovery`] wakes the reloader, which admits the
//! new set as a reload does (the plugin's `configure` must accept it).

mod dns;
mod file;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{BackendConfig, Config, DiscoveryConfig, GroupConfig, GroupSource};
use crate::reload::{FileChanges, FileWatch, Watched};
use dns::Dns;

/// How long a lookup may take before it counts as failed (the resolver gives up sooner).
const LOOKUP_DEADLINE: Duration = Duration::from_secs(5);

/// One member of a group as its source gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Member {
    /// Its name within the group: its address, or the name a file gives it.
    label: String,
    address: SocketAddr,
    /// Its own weight (an SRV record's, a file entry's), else the group's.
    weight: Option<u32>,
    /// Its own tags (a file entry's), added to the group's.
    tags: Vec<String>,
    /// The host name it was found under, which TLS checks unless the group names another.
    host: Option<String>,
}

impl Member {
    /// A member found in DNS at `address`, under `host`.
    fn found(address: SocketAddr, weight: Option<u32>, host: &str) -> Self {
        Member {
            label: address.to_string(),
            address,
            weight,
            tags: Vec::new(),
            host: Some(host.to_owned()),
        }
    }

    /// The backend this member of `group` is.
    fn backend(&self, group: &GroupConfig) -> BackendConfig {
        let mut tls = group.tls.clone();
        if let Some(tls) = tls.as_mut()
            && tls.server_name.is_none()
        {
            tls.server_name.clone_from(&self.host);
        }
        BackendConfig {
            name: format!("{}/{}", group.name, self.label),
            address: self.address,
            weight: self.weight.unwrap_or(group.weight),
            tags: group.tags.iter().chain(&self.tags).cloned().collect(),
            protocol: group.protocol,
            tls,
        }
    }
}

/// What one lookup found.
pub(crate) struct Answer {
    members: Vec<Member>,
    /// The shortest TTL of the records that gave them; `None` for a file.
    ttl: Option<Duration>,
}

/// What discovery knows of one group.
#[derive(Debug)]
struct Known {
    /// The source the members were found in: a group whose source a reload changes starts
    /// with none.
    source: GroupSource,
    /// The last good answer, sorted so that DNS's rotation changes nothing.
    members: Vec<Member>,
    /// Whether any lookup has answered yet.
    answered: bool,
    lookups: u64,
    failures: u64,
    /// Failures since the last good answer.
    failing: u32,
    last_lookup: Option<SystemTime>,
    last_answer: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    ttl: Option<Duration>,
    next_lookup: Option<SystemTime>,
}

impl Known {
    fn new(source: GroupSource) -> Self {
        Known {
            source,
            members: Vec::new(),
            answered: false,
            lookups: 0,
            failures: 0,
            failing: 0,
            last_lookup: None,
            last_answer: None,
            last_error: None,
            ttl: None,
            next_lookup: None,
        }
    }
}

/// The groups being followed: the tasks that look them up, and what they found.
pub struct Discovery {
    known: Mutex<BTreeMap<String, Known>>,
    following: Mutex<Following>,
    /// Woken when a group's members change; [`follow_members`] hands the change to the reloader.
    changed: Notify,
    /// The last time the reloader refused a change of members, and why.
    refused: Mutex<Option<(SystemTime, String)>>,
}

/// The tasks following the groups, and the settings they were started with.
#[derive(Default)]
struct Following {
    settings: DiscoveryConfig,
    dns: Option<Arc<Dns>>,
    /// Each group's config as its task follows it, and the token that stops the task.
    groups: BTreeMap<String, (GroupConfig, CancellationToken)>,
}

impl Discovery {
    /// Discovery with nothing followed yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Discovery {
            known: Mutex::default(),
            following: Mutex::default(),
            changed: Notify::new(),
            refused: Mutex::default(),
        })
    }

    /// Looks every group of `config` up once, all at once, then follows each in a task of its
    /// own until `stop`; for vane's start, so that it starts with the members (a group whose
    /// lookup fails starts empty, and is tried again).
    pub async fn start(self: &Arc<Self>, config: &Config, stop: &CancellationToken) {
        let dns = self.dns_for(&config.discovery, &config.groups);
        let mut first = tokio::task::JoinSet::new();
        for group in &config.groups {
            let (group, dns) = (group.clone(), dns.clone());
            // The file is watched before it is first read, so no change goes unseen.
            let watch = watch_file(&group);
            first.spawn(async move {
                let answer = look_up(&group.source, dns.as_deref()).await;
                (group, watch, answer)
            });
        }
        let mut answered = Vec::new();
        while let Some(Ok(done)) = first.join_next().await {
            answered.push(done);
        }
        let mut following = lock(&self.following);
        following.settings = config.discovery.clone();
        following.dns = dns.clone();
        for (group, watch, answer) in answered {
            let wait = self.record(&group, answer, &config.discovery);
            let token = stop.child_token();
            following
                .groups
                .insert(group.name.clone(), (group.clone(), token.clone()));
            tokio::spawn(self.clone().follow(
                group,
                config.discovery.clone(),
                dns.clone(),
                watch,
                wait,
                token,
            ));
        }
    }

    /// Follows the groups of `config` from now on, as a reload that put it in force does: a
    /// group that is new, or whose settings changed, is looked up at once (its members join
    /// when found); a group no longer named is forgotten. Tasks end with `stop`.
    pub fn follow_config(self: &Arc<Self>, config: &Config, stop: &CancellationToken) {
        let mut following = lock(&self.following);
        let settings_changed = following.settings != config.discovery;
        if settings_changed {
            following.settings = config.discovery.clone();
            following.dns = self.dns_for(&config.discovery, &config.groups);
        }
        let dns = following.dns.clone();
        following.groups.retain(|name, (running, token)| {
            let kept = !settings_changed
                && config.groups.iter().any(|group| group == running)
                && !token.is_cancelled();
            if !kept {
                token.cancel();
                if !config.groups.iter().any(|group| &group.name == name) {
                    lock(&self.known).remove(name);
                }
            }
            kept
        });
        let mut known = lock(&self.known);
        for group in &config.groups {
            if following.groups.contains_key(&group.name) {
                continue;
            }
            if known
                .get(&group.name)
                .is_some_and(|known| known.source != group.source)
            {
                known.insert(group.name.clone(), Known::new(group.source.clone()));
            }
            let token = stop.child_token();
            following
                .groups
                .insert(group.name.clone(), (group.clone(), token.clone()));
            tokio::spawn(self.clone().follow(
                group.clone(),
                config.discovery.clone(),
                dns.clone(),
                watch_file(group),
                Duration::ZERO,
                token,
            ));
        }
    }

    /// A resolver for `settings` if any of `groups` looks names up; `None` (and an error
    /// logged) if the system's DNS settings cannot be read.
    fn dns_for(&self, settings: &DiscoveryConfig, groups: &[GroupConfig]) -> Option<Arc<Dns>> {
        let asks_dns = groups
            .iter()
            .any(|group| !matches!(group.source, GroupSource::File { .. }));
        if !asks_dns {
            return None;
        }
        match Dns::new(settings) {
            Ok(dns) => Some(Arc::new(dns)),
            Err(error) => {
                tracing::error!(%error, "discovery: no DNS lookups can be made; set [discovery] dns_servers");
                None
            }
        }
    }

    /// Looks `group` up after `wait`, then again and again, each time after the wait its
    /// answer sets (or at once when its file changes), until `stop`.
    async fn follow(
        self: Arc<Self>,
        group: GroupConfig,
        settings: DiscoveryConfig,
        dns: Option<Arc<Dns>>,
        mut watch: Option<(FileWatch, FileChanges)>,
        mut wait: Duration,
        stop: CancellationToken,
    ) {
        loop {
            let file_changed = async {
                match watch.as_mut() {
                    Some((_, changes)) => changes.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = file_changed => {}
                () = stop.cancelled() => return,
            }
            let answer = tokio::select! {
                answer = look_up(&group.source, dns.as_deref()) => answer,
                () = stop.cancelled() => return,
            };
            if stop.is_cancelled() {
                return;
            }
            wait = self.record(&group, answer, &settings);
        }
    }

    /// Keeps what a lookup of `group` answered: new members (waking the reloader if they
    /// changed), or a failure, which keeps the last good members. Answers how long to wait
    /// before the next lookup.
    fn record(
        &self,
        group: &GroupConfig,
        answer: Result<Answer, String>,
        settings: &DiscoveryConfig,
    ) -> Duration {
        let now = SystemTime::now();
        let mut known = lock(&self.known);
        let known = known
            .entry(group.name.clone())
            .or_insert_with(|| Known::new(group.source.clone()));
        known.lookups += 1;
        known.last_lookup = Some(now);
        let answer = answer.and_then(|answer| {
            let dns = !matches!(group.source, GroupSource::File { .. });
            if dns && answer.members.is_empty() {
                // DNS's "nothing" is as likely a glitch as the truth; a group is emptied by
                // removing it from the config, never by DNS.
                Err("the name has no addresses".to_owned())
            } else {
                Ok(answer)
            }
        });
        let wait = match answer {
            Ok(Answer { mut members, ttl }) => {
                members.sort();
                if known.failing > 0 && known.answered {
                    tracing::info!(group = %group.name, source = %group.source, "discovery: lookups answer again");
                }
                let changed = !known.answered || known.members != members;
                if changed {
                    let listed: Vec<String> =
                        members.iter().map(|member| member.label.clone()).collect();
                    tracing::info!(group = %group.name, source = %group.source, members = %listed.join(","), "discovery: members found");
                    known.members = members;
                    self.changed.notify_one();
                }
                known.answered = true;
                known.failing = 0;
                known.last_answer = Some(now);
                known.ttl = ttl;
                ttl.unwrap_or(settings.max_refresh)
                    .clamp(settings.min_refresh, settings.max_refresh)
            }
            Err(error) => {
                known.failures += 1;
                known.failing = known.failing.saturating_add(1);
                if known.failing == 1 {
                    tracing::warn!(
                        group = %group.name,
                        source = %group.source,
                        %error,
                        kept = known.members.len(),
                        "discovery: lookup failed; the last members found keep serving"
                    );
                }
                known.last_error = Some((now, error));
                let doubled = settings
                    .min_refresh
                    .saturating_mul(1 << (known.failing - 1).min(16));
                doubled.min(settings.max_refresh)
            }
        };
        known.next_lookup = Some(now + wait);
        wait
    }

    /// The backends `config` asks for: those it lists, then every group's members found so
    /// far in the group's current source, in the config's order.
    pub fn wanted(&self, config: &Config) -> Vec<BackendConfig> {
        let known = lock(&self.known);
        let mut wanted = config.backends.clone();
        for group in &config.groups {
            if let Some(found) = known
                .get(&group.name)
                .filter(|found| found.source == group.source)
            {
                wanted.extend(found.members.iter().map(|member| member.backend(group)));
            }
        }
        wanted
    }

    /// The group `name` is a member of, if it is one of `config`'s groups' members.
    pub fn group_of<'c>(config: &'c Config, name: &str) -> Option<&'c GroupConfig> {
        let (group, _) = name.split_once('/')?;
        config.groups.iter().find(|g| g.name == group)
    }

    /// The names of the groups followed now.
    pub fn group_names(&self) -> Vec<String> {
        lock(&self.known).keys().cloned().collect()
    }

    /// Waits until a group's members change.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Keeps the reloader's verdict on the last change of members: `None` if it was admitted.
    pub fn record_verdict(&self, refusal: Option<String>) {
        *lock(&self.refused) = refusal.map(|why| (SystemTime::now(), why));
    }

    /// Every group's state for `GET /discovery`: its source, members, lookups, last error
    /// and whether it is serving the last good answer.
    pub fn status(&self) -> Value {
        let known = lock(&self.known);
        let groups: Vec<Value> = known
            .iter()
            .map(|(name, known)| {
                json!({
                    "name": name,
                    "source": known.source.to_string(),
                    "members": known.members.iter().map(|m| format!("{name}/{}", m.label)).collect::<Vec<_>>(),
                    "answered": known.answered,
                    "serving_last_good": known.answered && known.failing > 0,
                    "lookups": known.lookups,
                    "failures": known.failures,
                    "last_lookup": known.last_lookup.map(rfc3339),
                    "last_answer": known.last_answer.map(rfc3339),
                    "ttl_seconds": known.ttl.map(|ttl| ttl.as_secs()),
                    "next_lookup": known.next_lookup.map(rfc3339),
                    "last_error": known.last_error.as_ref().map(|(at, message)| json!({
                        "at": rfc3339(*at),
                        "message": message,
                    })),
                })
            })
            .collect();
        let refused = lock(&self.refused);
        json!({
            "groups": groups,
            "last_refused": refused.as_ref().map(|(at, message)| json!({
                "at": rfc3339(*at),
                "message": message,
            })),
        })
    }

    /// Per group: members, whether it serves the last good answer, lookups and failures; for
    /// the metrics.
    pub fn counts(&self) -> Vec<GroupCounts> {
        lock(&self.known)
            .iter()
            .map(|(name, known)| GroupCounts {
                name: name.clone(),
                members: known.members.len() as u64,
                stale: known.answered && known.failing > 0,
                lookups: known.lookups,
                failures: known.failures,
            })
            .collect()
    }
}

/// One group's figures, for the metrics.
pub struct GroupCounts {
    /// The group's name.
    pub name: String,
    /// Members found by the last good answer.
    pub members: u64,
    /// Whether the last lookup failed, so the group serves the last good answer.
    pub stale: bool,
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that failed.
    pub failures: u64,
}

/// Hands every change of a group's members to `apply` (the reloader's admission), until
/// `stop`.
pub async fn follow_members<F, Fut>(discovery: Arc<Discovery>, stop: CancellationToken, apply: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = discovery.changed() => apply().await,
            () = stop.cancelled() => return,
        }
    }
}

/// Looks up what `source` names: DNS through `dns`, or the file.
async fn look_up(source: &GroupSource, dns: Option<&Dns>) -> Result<Answer, String> {
    let lookup = async {
        match (source, dns) {
            (GroupSource::File { path }, _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || file::read(&path))
                    .await
                    .map_err(|err| format!("reading the file failed: {err}"))?
            }
            (_, None) => Err("no DNS lookups can be made (see the log)".to_owned()),
            (GroupSource::Dns { host, port }, Some(dns)) => dns.addresses(host, *port).await,
            (GroupSource::Srv { name }, Some(dns)) => dns.service(name).await,
        }
    };
    tokio::time::timeout(LOOKUP_DEADLINE, lookup)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()))
}

/// A watch on `group`'s file, if it is a file group.
fn watch_file(group: &GroupConfig) -> Option<(FileWatch, FileChanges)> {
    match &group.source {
        GroupSource::File { path } => Some(FileWatch::start(Watched::Members, vec![path.clone()])),
        _ => None,
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Locks a mutex whose holder cannot leave it inconsistent, poisoned or not.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
