//! vane's shipped canary policy: a share of the requests to the backends with a tag (the
//! canary), the rest to the others (the stable ones).
//!
//! Which requests go to the canary:
//! - with `header=NAME`, a request whose header NAME says `always` goes to the canary and one
//!   that says `never` to the stable backends (as ingress-nginx's canary-by-header); with
//!   `header-value=VALUE` too, a request whose header is VALUE goes to the canary;
//! - of the others, `share` percent. By default the share is taken request by request, exactly:
//!   of any run of consecutive requests, the canary gets the share to within one request. With
//!   `sticky=KEY` (`ip`, `header:NAME`, `cookie:NAME`, `path` or `uri`, see the kit's
//!   `RequestKey`) it is taken key by key instead: a key is in the canary or not, every time,
//!   on every vane instance (a request without the key is taken by itself).
//!
//! Within each group, backends take turns by weight (smooth weighted round-robin). If no backend
//! of a request's group may receive it, the other group serves it: a canary that is down costs
//! no request. The other group's backends are the spares for retries.
//!
//! Config (`[policy] config`): `share=PERCENT` (0 to 100, to a hundredth; default 0),
//! `tag=NAME` (default `canary`), `header=NAME`, `header-value=VALUE`, `sticky=KEY`.

use vane_plugin_kit::{
    BackendInfo, ConfigPairs, Level, Needs, Policy, Request, RequestKey, States, WeightedSchedule,
};

/// Backends ranked per pick: the first choice and two spares.
const RANKED: usize = 3;

/// A whole, in hundredths of a percent.
const WHOLE: u64 = 10_000;

/// One group of backends: their indices in the set and their turns by weight.
struct Group {
    members: Vec<u32>,
    schedule: WeightedSchedule,
}

impl Group {
    fn new(members: Vec<u32>, backends: &[BackendInfo]) -> Self {
        let weights: Vec<u32> = members
            .iter()
            .map(|&i| backends[i as usize].weight)
            .collect();
        Group {
            schedule: WeightedSchedule::new(&weights),
            members,
        }
    }

    /// Pushes up to `max` eligible members, in turn from the one for `turn`.
    fn rank(&self, turn: u64, states: &States<'_>, max: usize, ranked: &mut Vec<u32>) {
        let members = &self.members;
        // Ranked as slots of the group (the schedule keeps them distinct from `start` on), then
        // named as backends of the set in place: no copy.
        let start = ranked.len();
        self.schedule.rank(
            turn,
            |slot| states.eligible(members[slot as usize] as usize),
            max,
            ranked,
        );
        for slot in &mut ranked[start..] {
            *slot = members[*slot as usize];
        }
    }
}

/// The canary policy's state: the two groups and what sends a request to the canary.
pub struct Canary {
    canary: Group,
    stable: Group,
    /// The canary's share of requests, in hundredths of a percent.
    share: u64,
    header: Option<String>,
    header_value: Option<String>,
    sticky: Option<RequestKey>,
}

impl Canary {
    /// Whether the request goes to the canary; with the turn it takes in its group.
    fn to_canary(&self, request: &Request) -> (bool, u64) {
        let sequence = request.sequence;
        if let Some(name) = &self.header
            && let Some(value) = vane_plugin_kit::header_values(request, name).next()
        {
            if self.header_value.as_deref() == Some(value) || value == "always" {
                return (true, sequence);
            }
            if value == "never" {
                return (false, sequence);
            }
        }
        if let Some(hash) = self.sticky.as_ref().and_then(|key| key.hash(request)) {
            return (hash % WHOLE < self.share, sequence);
        }
        // Request by request, exactly: the canary's count so far is floor(sequence × share),
        // and this request is the canary's if it moves that count on.
        let before = (u128::from(sequence) * u128::from(self.share) / u128::from(WHOLE)) as u64;
        let after =
            ((u128::from(sequence) + 1) * u128::from(self.share) / u128::from(WHOLE)) as u64;
        if after > before {
            (true, before)
        } else {
            (false, sequence - before)
        }
    }
}

impl Policy for Canary {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(
            config,
            &["share", "tag", "header", "header-value", "sticky"],
        )?;
        let share = match pairs.get("share") {
            None => 0,
            Some(value) => value
                .parse::<f64>()
                .ok()
                .filter(|percent| (0.0..=100.0).contains(percent))
                .map(|percent| (percent * 100.0).round() as u64)
                .ok_or_else(|| format!("share={value:?}: expected a percentage from 0 to 100"))?,
        };
        let tag = pairs.get("tag").unwrap_or("canary");
        let header = pairs.get("header").map(str::to_ascii_lowercase);
        let header_value = pairs.get("header-value").map(str::to_owned);
        if header_value.is_some() && header.is_none() {
            return Err("header-value is given without header=NAME".to_owned());
        }
        let sticky = pairs
            .get("sticky")
            .map(|value| RequestKey::parse("sticky", value))
            .transpose()?;

        let (tagged, others): (Vec<u32>, Vec<u32>) = (0..backends.len() as u32)
            .partition(|&i| backends[i as usize].tags.iter().any(|t| t == tag));
        if tagged.is_empty() || others.is_empty() {
            let which = if tagged.is_empty() {
                "no backend has"
            } else {
                "every backend has"
            };
            vane_plugin_kit::log(
                Level::Warn,
                &format!("{which} the tag {tag:?}: every request goes to the backends there are"),
            );
        }
        let mut needs = vane_plugin_kit::needs_nothing();
        if let Some(name) = &header {
            needs.headers.push(name.clone());
        }
        if let Some(key) = &sticky {
            key.add_needs(&mut needs);
        }
        let policy = Canary {
            canary: Group::new(tagged, backends),
            stable: Group::new(others, backends),
            share,
            header,
            header_value,
            sticky,
        };
        Ok((policy, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let (canary, turn) = self.to_canary(request);
        let (home, other) = if canary {
            (&self.canary, &self.stable)
        } else {
            (&self.stable, &self.canary)
        };
        home.rank(turn, states, RANKED, ranked);
        let left = RANKED - ranked.len();
        other.rank(request.sequence, states, left, ranked);
    }
}

vane_plugin_kit::export_policy!(Canary);
