//! The guest side: WIT bindings, the [`Policy`] trait and the export macro.
//!
//! Compiled only with the `guest` feature (on by default); the host uses the kit without it.

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "balancer",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_balancer",
        default_bindings_module: "vane_plugin_kit::guest::bindings",
    });
}

#[doc(hidden)]
pub use bindings::exports::vane::balancer::policy::Guest as __Guest;
pub use bindings::vane::balancer::host::log;
pub use bindings::vane::balancer::types::{
    BackendInfo, BackendStates, Header, IpAddress, Level, Needs, Request, Target,
};

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
    fn pick(&mut self, request: &Request, states: &BackendStates, ranked: &mut Vec<u32>);

    /// Learns from one response; called only if [`Needs::feedback`] was true.
    fn observe(&mut self, backend: u32, status: u16, latency_us: u32) {
        let _ = (backend, status, latency_us);
    }
}

/// What a policy that needs no headers, no request target and no feedback answers from
/// `configure`.
pub fn needs_nothing() -> Needs {
    Needs {
        headers: Vec::new(),
        feedback: false,
        target: false,
    }
}

/// The indices of the backends that may receive traffic now, in set order.
pub fn eligible(states: &BackendStates) -> impl Iterator<Item = u32> + '_ {
    states
        .healthy
        .iter()
        .enumerate()
        .filter(|(_, healthy)| **healthy)
        .map(|(index, _)| index as u32)
}

/// The values of the request header `name` (lower case, as asked for in [`Needs::headers`]).
pub fn header_values<'a>(request: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> {
    request
        .headers
        .iter()
        .filter(move |header| header.name == name)
        .map(|header| header.value.as_str())
}

/// Exports `$policy` (a type implementing [`Policy`]) as this component's balancing policy.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: () = {
            use ::std::cell::RefCell;
            use $crate::Policy as _;

            ::std::thread_local! {
                static STATE: RefCell<Option<$policy>> = const { RefCell::new(None) };
            }

            struct Exported;

            impl $crate::__Guest for Exported {
                fn configure(
                    config: String,
                    backends: Vec<$crate::BackendInfo>,
                ) -> Result<$crate::Needs, String> {
                    let (policy, needs) = <$policy>::configure(&config, &backends)?;
                    STATE.with(|state| *state.borrow_mut() = Some(policy));
                    Ok(needs)
                }

                fn pick(request: $crate::Request, states: $crate::BackendStates) -> Vec<u32> {
                    let mut ranked = Vec::new();
                    STATE.with(|state| {
                        if let Some(policy) = state.borrow_mut().as_mut() {
                            policy.pick(&request, &states, &mut ranked);
                        }
                    });
                    ranked
                }

                fn observe(backend: u32, status: u16, latency_us: u32) {
                    STATE.with(|state| {
                        if let Some(policy) = state.borrow_mut().as_mut() {
                            policy.observe(backend, status, latency_us);
                        }
                    });
                }
            }

    $crate::__export_balancer_impl!(Exported with_types_in $crate::guest::bindings);
        };
    };
}
