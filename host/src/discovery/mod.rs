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

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{BackendConfig, Config, DiscoveryConfig, GroupConfig, GroupSource};
use crate::file_watch::{FileChanges, FileWatch, Watched};
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

/// A new group, the watch on its file (started before the file was read), and what its first
/// lookup answered.
type FirstLookup = (
    GroupConfig,
    Option<(FileWatch, FileChanges)>,
    Result<Answer, String>,
);

/// The first answers for the groups a config names that are not followed yet in their
/// source: looked up before the config is admitted, so that it is admitted with their members.
pub struct FirstLookups {
    /// Each new group's first lookup.
    looked_up: Vec<FirstLookup>,
    /// The resolver for the config's `[discovery]`, if it had to be made anew.
    dns: Option<Option<Arc<Dns>>>,
}

impl FirstLookups {
    /// No first lookups: for a config whose groups are all followed already.
    pub fn none() -> Self {
        FirstLookups {
            looked_up: Vec::new(),
            dns: None,
        }
    }
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

    /// Looks up, all at once and each within a few seconds, every group of `config`
    /// that is not followed now in its source (a new group, or one whose source changed), as
    /// vane's start and a reload do before admitting `config`: its members then join with it.
    /// A lookup that fails leaves its group empty until one answers.
    pub async fn look_up_new(&self, config: &Config) -> FirstLookups {
        let (new, dns) = {
            let following = lock(&self.following);
            let new: Vec<GroupConfig> = config
                .groups
                .iter()
                .filter(|group| {
                    following
                        .groups
                        .get(&group.name)
                        .is_none_or(|(running, _)| running.source != group.source)
                })
                .cloned()
                .collect();
            let renewed = following.settings != config.discovery
                || (following.dns.is_none() && asks_dns(&config.groups));
            let dns = renewed.then(|| resolver_for(&config.discovery, &config.groups));
            let in_use = dns.clone().unwrap_or_else(|| following.dns.clone());
            (new, (dns, in_use))
        };
        let (made, in_use) = dns;
        let mut lookups = tokio::task::JoinSet::new();
        for group in new {
            let dns = in_use.clone();
            // The file is watched before it is first read, so no change goes unseen.
            let watch = watch_file(&group);
            lookups.spawn(async move {
                let answer = look_up(&group.source, dns.as_deref()).await;
                (group, watch, answer)
            });
        }
        let mut looked_up = Vec::new();
        while let Some(done) = lookups.join_next().await {
            match done {
                Ok(done) => looked_up.push(done),
                Err(err) => {
                    tracing::error!(error = %err, "discovery: a first lookup failed to run")
                }
            }
        }
        FirstLookups {
            looked_up,
            dns: made,
        }
    }

    /// Follows the groups of `config` from now on, as vane's start and a reload that put it in
    /// force do: `first` holds the answers [`Discovery::look_up_new`] found for its new groups
    /// (followed from them on); a group no longer named is forgotten; a change of `[discovery]`
    /// restarts every group's task (keeping the members found). Tasks end with `stop`.
    pub fn follow_config(
        self: &Arc<Self>,
        config: &Config,
        first: FirstLookups,
        stop: &CancellationToken,
    ) {
        let mut following = lock(&self.following);
        let renewed = following.settings != config.discovery
            || (following.dns.is_none() && asks_dns(&config.groups));
        if renewed {
            following.dns = match first.dns {
                Some(dns) => dns,
                None => resolver_for(&config.discovery, &config.groups),
            };
        }
        following.settings = config.discovery.clone();
        let dns = following.dns.clone();
        let mut known = lock(&self.known);
        following.groups.retain(|_, (running, token)| {
            let kept = !renewed && config.groups.iter().any(|group| group == running);
            if !kept {
                token.cancel();
            }
            kept
        });
        known.retain(|name, found| {
            config
                .groups
                .iter()
                .any(|group| &group.name == name && group.source == found.source)
        });
        let mut first: BTreeMap<String, _> = first
            .looked_up
            .into_iter()
            .map(|(group, watch, answer)| (group.name.clone(), (group, watch, answer)))
            .collect();
        for group in &config.groups {
            if following.groups.contains_key(&group.name) {
                continue;
            }
            known
                .entry(group.name.clone())
                .or_insert_with(|| Known::new(group.source.clone()));
            let token = stop.child_token();
            let (watch, wait) = match first.remove(&group.name) {
                Some((looked_up, watch, answer)) if looked_up == *group => {
                    let wait = self.record_in(&mut known, group, answer, &config.discovery, &token);
                    (watch, wait)
                }
                _ => (watch_file(group), Duration::ZERO),
            };
            following
                .groups
                .insert(group.name.clone(), (group.clone(), token.clone()));
            tokio::spawn(self.clone().follow(
                group.clone(),
                config.discovery.clone(),
                dns.clone(),
                watch,
                wait,
                token,
            ));
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
            let mut known = lock(&self.known);
            wait = self.record_in(&mut known, &group, answer, &settings, &stop);
        }
    }

    /// Keeps in `known` what a lookup of `group` by the task `task` answered: new members
    /// (waking the reloader if they changed, or if the last change was refused), or a
    /// failure, which keeps the last good members. Nothing is kept once `task` is stopped or
    /// the group is no longer followed in this source: a late answer never overwrites what a
    /// reload put in its place. Answers how long to wait before the next lookup.
    fn record_in(
        &self,
        known: &mut BTreeMap<String, Known>,
        group: &GroupConfig,
        answer: Result<Answer, String>,
        settings: &DiscoveryConfig,
        task: &CancellationToken,
    ) -> Duration {
        let Some(known) = known
            .get_mut(&group.name)
            .filter(|known| known.source == group.source && !task.is_cancelled())
        else {
            return settings.max_refresh;
        };
        let now = SystemTime::now();
        known.lookups += 1;
        known.last_lookup = Some(now);
        let wait = match acceptable(&group.source, answer) {
            Ok(Answer { members, ttl }) => {
                if known.failing > 0 && known.answered {
                    tracing::info!(group = %group.name, source = %group.source, "discovery: lookups answer again");
                }
                let changed = !known.answered || known.members != members;
                if changed {
                    let listed: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
                    tracing::info!(group = %group.name, source = %group.source, members = %listed.join(","), "discovery: members found");
                    known.members = members;
                }
                if changed || lock(&self.refused).is_some() {
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
                    let kept = known.members.len();
                    if known.answered {
                        tracing::warn!(group = %group.name, source = %group.source, %error, kept, "discovery: lookup failed; the last members found keep serving");
                    } else {
                        tracing::warn!(group = %group.name, source = %group.source, %error, "discovery: lookup failed; the group has no members until one answers");
                    }
                }
                known.last_error = Some((now, error));
                retry_after(known.failing, settings)
            }
        };
        known.next_lookup = Some(now + wait);
        wait
    }

    /// The backends `config` asks for: those it lists, then each group's members, in the
    /// config's order: from `first`'s answer for a group looked up for `config`, else those
    /// found so far in the group's source.
    pub fn wanted(&self, config: &Config, first: &FirstLookups) -> Vec<BackendConfig> {
        let known = lock(&self.known);
        let mut wanted = config.backends.clone();
        for group in &config.groups {
            let fresh = first
                .looked_up
                .iter()
                .find(|(looked_up, _, _)| looked_up == group)
                .map(|(_, _, answer)| answer.as_ref().ok().filter(|a| usable(&group.source, a)));
            let members = match fresh {
                Some(Some(answer)) => Some(&answer.members),
                Some(None) => None,
                None => known
                    .get(&group.name)
                    .filter(|found| found.source == group.source)
                    .map(|found| &found.members),
            };
            wanted.extend(members.into_iter().flatten().map(|m| m.backend(group)));
        }
        wanted
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

    /// Every group followed, for `GET /discovery` and the metrics.
    pub fn groups(&self) -> Vec<GroupStatus> {
        lock(&self.known)
            .iter()
            .map(|(name, known)| GroupStatus {
                name: name.clone(),
                source: known.source.to_string(),
                members: known
                    .members
                    .iter()
                    .map(|member| format!("{name}/{}", member.label))
                    .collect(),
                answered: known.answered,
                serving_last_good: known.answered && known.failing > 0,
                lookups: known.lookups,
                failures: known.failures,
                last_lookup: known.last_lookup,
                last_answer: known.last_answer,
                ttl: known.ttl,
                next_lookup: known.next_lookup,
                last_error: known.last_error.clone(),
            })
            .collect()
    }

    /// When the reloader last refused a change of members, and why; `None` once a later
    /// change is admitted.
    pub fn refused(&self) -> Option<(SystemTime, String)> {
        lock(&self.refused).clone()
    }
}

/// What discovery knows of one group, for `GET /discovery` and the metrics.
#[derive(Debug, Clone)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Its source, as `dns NAME port N`, `srv NAME` or `file PATH`.
    pub source: String,
    /// Its members' names, from the last good answer.
    pub members: Vec<String>,
    /// Whether any lookup has answered yet.
    pub answered: bool,
    /// Whether the last lookup failed, so the group serves the last good answer.
    pub serving_last_good: bool,
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that failed.
    pub failures: u64,
    /// When the last lookup was made.
    pub last_lookup: Option<SystemTime>,
    /// When a lookup last answered.
    pub last_answer: Option<SystemTime>,
    /// The shortest TTL of the last answer's records (none for a file).
    pub ttl: Option<Duration>,
    /// When the next lookup is due (sooner if the group's file changes).
    pub next_lookup: Option<SystemTime>,
    /// The last failure: when, and what it said.
    pub last_error: Option<(SystemTime, String)>,
}

/// How long to wait after the `failing`-th failure in a row: `min_refresh`, doubled each
/// time, up to `max_refresh`.
fn retry_after(failing: u32, settings: &DiscoveryConfig) -> Duration {
    let doubled = settings
        .min_refresh
        .saturating_mul(1 << failing.saturating_sub(1).min(16));
    doubled.min(settings.max_refresh)
}

/// Whether `answer` from `source` may stand for the group: DNS's "nothing" is as likely a
/// glitch as the truth, so a group is emptied by removing it from the config, never by DNS;
/// a file's empty list is the file's word.
fn usable(source: &GroupSource, answer: &Answer) -> bool {
    !answer.members.is_empty() || matches!(source, GroupSource::File { .. })
}

/// `answer`, or a failure if it may not stand for the group (see [`usable`]).
fn acceptable(source: &GroupSource, answer: Result<Answer, String>) -> Result<Answer, String> {
    answer.and_then(|answer| {
        if usable(source, &answer) {
            Ok(answer)
        } else {
            Err("the name has no addresses".to_owned())
        }
    })
}

/// Whether any of `groups` looks names up in DNS.
fn asks_dns(groups: &[GroupConfig]) -> bool {
    groups
        .iter()
        .any(|group| !matches!(group.source, GroupSource::File { .. }))
}

/// A resolver for `settings` if any of `groups` looks names up; `None` (and an error logged)
/// if none is needed, or if the system's DNS settings cannot be read.
fn resolver_for(settings: &DiscoveryConfig, groups: &[GroupConfig]) -> Option<Arc<Dns>> {
    if !asks_dns(groups) {
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
    let mut answer = tokio::time::timeout(LOOKUP_DEADLINE, lookup)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()))?;
    // Sorted, so that DNS's rotation of the same records changes nothing.
    answer.members.sort();
    Ok(answer)
}

/// A watch on `group`'s file, if it is a file group.
fn watch_file(group: &GroupConfig) -> Option<(FileWatch, FileChanges)> {
    match &group.source {
        GroupSource::File { path } => Some(FileWatch::start(Watched::Members, vec![path.clone()])),
        _ => None,
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent, poisoned or not.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, source: GroupSource) -> GroupConfig {
        GroupConfig {
            name: name.to_owned(),
            source,
            weight: 1,
            tags: Vec::new(),
            protocol: crate::config::BackendProtocol::Http1,
            tls: None,
        }
    }

    fn dns(host: &str) -> GroupSource {
        GroupSource::Dns {
            host: host.to_owned(),
            port: 80,
        }
    }

    fn answer(last: &[u8], ttl: u64) -> Result<Answer, String> {
        let members = last
            .iter()
            .map(|&last| Member::found(SocketAddr::from(([10, 0, 0, last], 80)), None, "h"))
            .collect();
        Ok(Answer {
            members,
            ttl: Some(Duration::from_secs(ttl)),
        })
    }

    fn settings() -> DiscoveryConfig {
        DiscoveryConfig {
            dns_servers: Vec::new(),
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(30),
        }
    }

    /// Discovery knowing `group` in its source, as following it would.
    fn following(group: &GroupConfig) -> Arc<Discovery> {
        let discovery = Discovery::new();
        lock(&discovery.known).insert(group.name.clone(), Known::new(group.source.clone()));
        discovery
    }

    fn members(discovery: &Discovery) -> Vec<Vec<String>> {
        discovery.groups().into_iter().map(|g| g.members).collect()
    }

    /// Records an answer for `group` as a live task of it would.
    fn record(
        discovery: &Discovery,
        group: &GroupConfig,
        answer: Result<Answer, String>,
    ) -> Duration {
        let mut known = lock(&discovery.known);
        discovery.record_in(
            &mut known,
            group,
            answer,
            &settings(),
            &CancellationToken::new(),
        )
    }

    #[test]
    fn the_ttl_sets_the_next_lookup_within_the_bounds() {
        let web = group("web", dns("web"));
        let discovery = following(&web);
        let record = |answer| record(&discovery, &web, answer);
        assert_eq!(record(answer(&[1], 5)), Duration::from_secs(5));
        assert_eq!(record(answer(&[1], 300)), Duration::from_secs(30));
        assert_eq!(record(answer(&[1], 0)), Duration::from_secs(1));
    }

    #[test]
    fn a_failure_or_an_empty_dns_answer_keeps_the_members_and_backs_off() {
        let web = group("web", dns("web"));
        let discovery = following(&web);
        let record_web = |answer| record(&discovery, &web, answer);
        record_web(answer(&[1, 2], 5));
        let waits: Vec<u64> = [
            Err("timed out".to_owned()),
            answer(&[], 5),
            Err("timed out".to_owned()),
            Err("timed out".to_owned()),
            Err("timed out".to_owned()),
            Err("timed out".to_owned()),
        ]
        .into_iter()
        .map(|answer| record_web(answer).as_secs())
        .collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30]);
        let status = &discovery.groups()[0];
        assert_eq!(status.members, vec!["web/10.0.0.1:80", "web/10.0.0.2:80"]);
        assert!(status.serving_last_good);
        assert_eq!((status.lookups, status.failures), (7, 6));
        assert_eq!(
            status
                .last_error
                .as_ref()
                .map(|(_, message)| message.as_str()),
            Some("timed out")
        );
        // A file's empty list is its word.
        let file = group(
            "f",
            GroupSource::File {
                path: "f.json".into(),
            },
        );
        let discovery = following(&file);
        record(&discovery, &file, answer(&[1], 5));
        let empty = Ok(Answer {
            members: Vec::new(),
            ttl: None,
        });
        record(&discovery, &file, empty);
        assert_eq!(members(&discovery), vec![Vec::<String>::new()]);
    }

    #[test]
    fn a_late_answer_never_overwrites_what_a_reload_put_in_its_place() {
        let old = group("web", dns("old"));
        let new = group("web", dns("new"));
        let discovery = following(&new);
        let token = CancellationToken::new();
        let mut known = lock(&discovery.known);
        // The task of the old source answers after the reload pointed the group elsewhere.
        discovery.record_in(&mut known, &old, answer(&[1], 5), &settings(), &token);
        // The task of the new source answers after it was stopped.
        token.cancel();
        discovery.record_in(&mut known, &new, answer(&[2], 5), &settings(), &token);
        // A group dropped by a reload is not brought back.
        let gone = group("gone", dns("gone"));
        discovery.record_in(
            &mut known,
            &gone,
            answer(&[3], 5),
            &settings(),
            &CancellationToken::new(),
        );
        drop(known);
        let groups = discovery.groups();
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].lookups, groups[0].members.len()), (0, 0));
    }

    #[test]
    fn wanted_takes_a_first_lookup_for_a_group_pointed_elsewhere() {
        let old = group("web", dns("old"));
        let discovery = following(&old);
        {
            let mut known = lock(&discovery.known);
            let token = CancellationToken::new();
            discovery.record_in(&mut known, &old, answer(&[1], 5), &settings(), &token);
        }
        let config = |group: &GroupConfig| Config {
            groups: vec![group.clone()],
            ..crate::demo::config(
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
                crate::config::PolicyConfig::for_plugin("p.wasm".into()),
                Vec::new(),
            )
        };
        let names = |wanted: Vec<BackendConfig>| -> Vec<String> {
            wanted.into_iter().map(|backend| backend.name).collect()
        };
        assert_eq!(
            names(discovery.wanted(&config(&old), &FirstLookups::none())),
            vec!["web/10.0.0.1:80"]
        );
        let new = group("web", dns("new"));
        // Not looked up yet: nothing of the old source's.
        assert!(
            discovery
                .wanted(&config(&new), &FirstLookups::none())
                .is_empty()
        );
        let first = FirstLookups {
            looked_up: vec![(new.clone(), None, answer(&[2], 5))],
            dns: None,
        };
        assert_eq!(
            names(discovery.wanted(&config(&new), &first)),
            vec!["web/10.0.0.2:80"]
        );
    }
}
