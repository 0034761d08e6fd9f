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
    local: Vec<bool>,
    /// In flight per unit of weight at which every local backend counts as loaded.
    spill_at: Option<u64>,
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
        let local: Vec<bool> = backends
            .iter()
            .map(|b| zone_of(b).as_deref() == Some(zone))
            .collect();
        if !local.contains(&true) {
            vane_plugin_kit::log(
                Level::Warn,
                &format!(
                    "no backend has the tag \"{ZONE_TAG}{zone}\": every request goes to another zone"
                ),
            );
        }
        let needs = vane_plugin_kit::needs(Columns::IN_FLIGHT | Columns::WEIGHT);
        Ok((Locality { local, spill_at }, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let in_flight = states.column(Columns::IN_FLIGHT);
        let weight = states.column(Columns::WEIGHT);
        let rank = |local: bool, max: usize, ranked: &mut Vec<u32>| {
            let eligible = |i: usize| states.eligible(i) && self.local[i] == local;
            vane_plugin_kit::rank_least_loaded(
                request.sequence,
                eligible,
                in_flight,
                weight,
                max,
                ranked,
            );
        };
        rank(true, RANKED, ranked);
        let Some(&best_local) = ranked.first() else {
            rank(false, RANKED, ranked);
            return;
        };
        // Loads per unit of weight compare as in_flight_a × weight_b against the other way.
        let load = |i: u32| (in_flight[i as usize], weight[i as usize].max(1));
        let (local_in_flight, local_weight) = load(best_local);
        let loaded = self
            .spill_at
            .is_some_and(|spill_at| local_in_flight >= spill_at.saturating_mul(local_weight));
        let mut remote = Vec::with_capacity(RANKED);
        rank(false, RANKED, &mut remote);
        if loaded && let Some(&best_remote) = remote.first() {
            let (remote_in_flight, remote_weight) = load(best_remote);
            if remote_in_flight * local_weight < local_in_flight * remote_weight {
                ranked.insert(0, best_remote);
                remote.remove(0);
            }
        }
        ranked.extend(remote);
        ranked.truncate(RANKED);
    }
}

vane_plugin_kit::export_policy!(Locality);
