//! The guest side: WIT bindings, the [`Policy`] trait and the export macro.
//!
//! Compiled only with the `guest` feature (on by default); the host uses the kit without it.

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "balancer",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_balancer",
        default_bindings_module: "vane_plugin_kit::guest::bindings",
    });
}

#[doc(hidden)]
pub use bindings::exports::vane::balancer::policy::Guest as __Guest;
pub use bindings::vane::balancer::host::log;
pub use bindings::vane::balancer::types::{
    BackendInfo, Columns, Header, IpAddress, Level, Needs, Outcome, Request, Target,
};

use crate::Weights;
use crate::least_loaded::{self, StateBits};

/// Bit 0 of a backend's state bits: it may receive this request.
const ELIGIBLE: u64 = 1;
/// Bit 1 of a backend's state bits: it is warming up (slow start).
const WARMING: u64 = 2;
/// Where a warming backend's share starts in its state bits (bits 16 to 25, thousandths).
const SHARE_SHIFT: u32 = 16;

/// The live state of every backend at the moment of a pick: whether each may receive the
/// request, and the columns the policy asked for in [`Needs::columns`]. Index `i` of every
/// column is backend `i` of the set `configure` was given.
#[derive(Debug, Clone, Copy)]
pub struct States<'a> {
    words: &'a [u64],
    count: usize,
    asked: Columns,
}

impl<'a> States<'a> {
    /// The states of `count` backends, laid out as `pick`'s `states` list with the columns
    /// `asked` (what the host hands a pick; also for testing a policy off the host).
    ///
    /// Panics if `words` is shorter than the state bits and `asked` columns of `count` backends.
    pub fn new(words: &'a [u64], count: usize, asked: Columns) -> Self {
        let columns = 1 + asked.bits().count_ones() as usize;
        assert!(
            words.len() >= count * columns,
            "{} numbers cannot hold {columns} columns of {count} backends",
            words.len()
        );
        States {
            words,
            count,
            asked,
        }
    }

    /// The number of backends.
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether backend `index` may receive this request (passes its health checks and is not
    /// ejected); never pick one that may not.
    #[inline]
    pub fn eligible(&self, index: usize) -> bool {
        index < self.count && self.words[index] & ELIGIBLE != 0
    }

    /// If backend `index` is warming up after joining the set or returning to rotation (slow
    /// start), the share of requests the host offers it, in thousandths (100 to 999); `None`
    /// once warm. The host already clears [`States::eligible`] on the requests not offered, so
    /// a policy honours slow start without reading this.
    #[inline]
    pub fn warming(&self, index: usize) -> Option<u32> {
        let bits = *self.words.get(index).filter(|_| index < self.count)?;
        (bits & WARMING != 0).then_some(((bits >> SHARE_SHIFT) & 0x3ff) as u32)
    }

    /// Pushes up to `max` eligible backends onto `ranked`, least loaded per unit of `weights`
    /// first: [`rank_least_loaded`](crate::rank_least_loaded) with this pick's eligibility
    /// and in-flight requests, read in place, with less work per backend. Panics if the policy
    /// did not ask for [`Columns::IN_FLIGHT`] in [`Needs::columns`].
    pub fn rank_least_loaded(
        &self,
        sequence: u64,
        weights: Weights<'_>,
        max: usize,
        ranked: &mut Vec<u32>,
    ) {
        let in_flight = self.column(Columns::IN_FLIGHT);
        let eligible = StateBits(&self.words[..self.count]);
        least_loaded::rank_weighted(sequence, &eligible, in_flight, weights, max, ranked);
    }

    /// The values of `column` (one of [`Columns`]), one per backend. Panics if the policy did
    /// not ask for it in [`Needs::columns`].
    pub fn column(&self, column: Columns) -> &'a [u64] {
        assert!(
            column.bits().count_ones() == 1 && self.asked.contains(column),
            "the policy reads {column:?} but did not ask for it in needs.columns"
        );
        // `states` holds the asked columns in the order `columns` declares them, which is the
        // order of their bits.
        let before = (self.asked.bits() & (column.bits() - 1)).count_ones() as usize;
        let start = (1 + before) * self.count;
        &self.words[start..start + self.count]
    }
}

/// A balancing policy: built by [`Policy::configure`], then asked to [`Policy::pick`] per request.
///
/// The host may run several instances of a plugin at once (one per worker thread), each with its
/// own state; use [`Request::sequence`] for anything that must be exact across them.
pub trait Policy: Sized + 'static {
    /// Builds the policy for this config string and backend set, and says what it needs per
    /// request; an `Err` refuses the plugin with that message. Called again whenever the backend
    /// set or the config changes, replacing the previous value.
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String>;

    /// Pushes the indices of the backends to use onto `ranked`, first choice first. Pushing
    /// nothing declines, and the host uses its built-in round-robin.
    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>);

    /// Learns how requests ended, oldest first, in batches some milliseconds after the
    /// responses; called only if [`Needs::feedback`] was true.
    fn observe(&mut self, outcomes: &[Outcome]) {
        let _ = outcomes;
    }
}

/// What a policy that needs no headers, no request target, no feedback and no column but
/// eligibility answers from `configure`.
pub fn needs_nothing() -> Needs {
    needs(Columns::empty())
}

/// What a policy that reads `columns` of the states, and needs nothing else, answers from
/// `configure`.
pub fn needs(columns: Columns) -> Needs {
    Needs {
        headers: Vec::new(),
        feedback: false,
        target: false,
        columns,
    }
}

/// The indices of the backends that may receive traffic now, in set order.
pub fn eligible<'a>(states: &States<'a>) -> impl Iterator<Item = u32> + 'a {
    let states = *states;
    (0..states.len())
        .filter(move |&index| states.eligible(index))
        .map(|index| index as u32)
}

/// The address of the client connected to vane.
pub fn client_ip(request: &Request) -> std::net::IpAddr {
    match request.client_ip {
        IpAddress::Ipv4(bits) => std::net::Ipv4Addr::from_bits(bits).into(),
        IpAddress::Ipv6((high, low)) => {
            std::net::Ipv6Addr::from_bits(u128::from(high) << 64 | u128::from(low)).into()
        }
    }
}

/// The values of the request header `name` (lower case, as asked for in [`Needs::headers`]).
pub fn header_values<'a>(request: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> {
    request
        .headers
        .iter()
        .flatten()
        .filter(move |header| header.name == name)
        .map(|header| header.value.as_str())
}

/// How many backends a pick's answer has room for from the start: a first choice and the
/// spares for retries most policies rank, in the kit allocator's smallest block. A `Vec`'s
/// first push would make room for as many, through its growth path (about 200 instructions a
/// pick in the pick bench).
#[doc(hidden)]
pub const ANSWER_ROOM: usize = 4;

/// Exports `$policy` (a type implementing [`Policy`]) as this component's balancing policy.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: () = {
            use ::std::cell::RefCell;
            use $crate::Policy as _;

            ::std::thread_local! {
                static STATE: RefCell<Option<($policy, $crate::Columns)>> =
                    const { RefCell::new(None) };
            }

            struct Exported;

            impl $crate::__Guest for Exported {
                fn configure(
                    config: String,
                    backends: Vec<$crate::BackendInfo>,
                ) -> Result<$crate::Needs, String> {
                    let (policy, needs) = <$policy>::configure(&config, &backends)?;
                    let columns = needs.columns;
                    STATE.with(|state| *state.borrow_mut() = Some((policy, columns)));
                    Ok(needs)
                }

                fn pick(request: $crate::Request, states: Vec<u64>) -> Vec<u32> {
                    // Room for a first choice and a few spares from the start: no growing.
                    let mut ranked = Vec::with_capacity($crate::guest::ANSWER_ROOM);
                    STATE.with(|state| {
                        if let Some((policy, columns)) = state.borrow_mut().as_mut() {
                            let count = states.len() / (1 + columns.bits().count_ones() as usize);
                            let states = $crate::States::new(&states, count, *columns);
                            policy.pick(&request, &states, &mut ranked);
                        }
                    });
                    ranked
                }

                fn observe(outcomes: Vec<$crate::Outcome>) {
                    STATE.with(|state| {
                        if let Some((policy, _)) = state.borrow_mut().as_mut() {
                            policy.observe(&outcomes);
                        }
                    });
                }
            }

    $crate::__export_balancer_impl!(Exported with_types_in $crate::guest::bindings);
        };
    };
}
