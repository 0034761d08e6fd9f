//! vane's shipped locality policy: backends in vane's own zone first, other zones only when
//! the local ones are down or loaded past a threshold, so traffic stays in the zone (no
//! cross-zone latency or transfer cost) while the zone can carry it.
//!
//! A backend's zone is its tag `zone=NAME` (`tags = ["zone=eu-west-1a"]`); one without such a
//! tag is in no zone, so always remote. Among the local backends the least loaded takes the
//! request (fewest requests in flight per unit of weight, ties taking turns), as least-conn
//! does. A request goes to another zone when:
//! - no local backend may receive it (all unhealthy, ejected, or none in the set), or
//! - every local backend holds `spill-at` requests in flight per unit of weight or more, and a
//!   backend in another zone holds fewer: the least loaded of those takes it.
//!
//! The other local backends, then the remote ones, are the spares for retries.
//!
//! Config (`[policy] config`): `zone=NAME` (required: the zone this vane runs in),
//! `spill-at=N` (default 16; `off` spills only when no local backend may receive a request).

use vane_plugin_kit::{BackendInfo, Columns, ConfigPairs, Level, Needs, Policy, Request, States};

/// Backends ranked per pick: the first choice and two spares.
const RANKED: usize = 3;

/// The load per unit of weight past which requests spill when the config does not say.
const DEFAULT_SPILL_AT: u64 = 16;

/// The tag that names a backend's zone: `zone=NAME`.
const ZONE_TAG: &str = "zone=";

/// The locality policy's state: which backends are local, and when to spill.
pub struct Locality {
    /// The local backends' indices, then the remote ones'.
    zones: [Zone; 2],
    /// In flight per unit of weight at which every local backend counts as loaded.
    spill_at: Option<u64>,
}

/// The backends of one side (local or remote), with room to copy their columns into per pick.
#[derive(Default)]
struct Zone {
    members: Vec<u32>,
    in_flight: Vec<u64>,
    weight: Vec<u64>,
    ranked: Vec<u32>,
}

impl Zone {
    /// Pushes up to `max` of the zone's eligible backends onto `ranked`, least loaded first
    /// (ties taking turns among them).
    fn rank(&mut self, sequence: u64, states: &States<'_>, max: usize, ranked: &mut Vec<u32>) {
        let (in_flight, weight) = (
            states.column(Columns::IN_FLIGHT),
            states.column(Columns::WEIGHT),
        );
        self.in_flight.clear();
        self.weight.clear();
        for &i in &self.members {
            self.in_flight.push(in_flight[i as usize]);
            self.weight.push(weight[i as usize]);
        }
        let members = &self.members;
        self.ranked.clear();
        vane_plugin_kit::rank_least_loaded(
            sequence,
            |k| states.eligible(members[k] as usize),
            &self.in_flight,
            &self.weight,
            max,
            &mut self.ranked,
        );
        ranked.extend(self.ranked.iter().map(|&k| members[k as usize]));
    }
}

impl Policy for Locality {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(config, &["zone", "spill-at"])?;
        let zone = pairs
            .get("zone")
            .filter(|zone| !zone.is_empty())
            .ok_or("zone=NAME is required: the zone this vane runs in")?;
        let spill_at =
            match pairs.get("spill-at") {
                None => Some(DEFAULT_SPILL_AT),
                Some("off") => None,
                Some(value) => Some(value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(
                    || format!("spill-at={value:?}: expected a whole number above 0, or off"),
                )?),
            };
        let zone_of = |backend: &BackendInfo| {
            backend
                .tags
                .iter()
                .find_map(|tag| tag.strip_prefix(ZONE_TAG))
                .map(str::to_owned)
        };
        let (local, remote): (Vec<u32>, Vec<u32>) = (0..backends.len() as u32)
            .partition(|&i| zone_of(&backends[i as usize]).as_deref() == Some(zone));
        if local.is_empty() {
            vane_plugin_kit::log(
                Level::Warn,
                &format!(
                    "no backend has the tag \"{ZONE_TAG}{zone}\": every request goes to another zone"
                ),
            );
        }
        let zones = [
            Zone {
                members: local,
                ..Zone::default()
            },
            Zone {
                members: remote,
                ..Zone::default()
            },
        ];
        let needs = vane_plugin_kit::needs(Columns::IN_FLIGHT | Columns::WEIGHT);
        Ok((Locality { zones, spill_at }, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let [local, remote] = &mut self.zones;
        local.rank(request.sequence, states, RANKED, ranked);
        let Some(&best_local) = ranked.first() else {
            remote.rank(request.sequence, states, RANKED, ranked);
            return;
        };
        // Loads per unit of weight compare as in_flight_a × weight_b against the other way.
        let (in_flight, weight) = (
            states.column(Columns::IN_FLIGHT),
            states.column(Columns::WEIGHT),
        );
        let load = |i: u32| (in_flight[i as usize], weight[i as usize].max(1));
        let (local_in_flight, local_weight) = load(best_local);
        let loaded = self
            .spill_at
            .is_some_and(|spill_at| local_in_flight >= spill_at.saturating_mul(local_weight));
        if !loaded && ranked.len() == RANKED {
            return;
        }
        let local_count = ranked.len();
        remote.rank(request.sequence, states, RANKED, ranked);
        if loaded && let Some(&best_remote) = ranked.get(local_count) {
            let (remote_in_flight, remote_weight) = load(best_remote);
            if remote_in_flight * local_weight < local_in_flight * remote_weight {
                // The least loaded remote backend first, the local ones after it.
                ranked[..=local_count].rotate_right(1);
            }
        }
        ranked.truncate(RANKED);
    }
}

vane_plugin_kit::export_policy!(Locality);
