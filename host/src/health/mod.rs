//! Which backends take traffic: active health checks (a probe loop) and passive ejection
//! (outlier detection on real traffic), both recorded in each backend's [`BackendHealth`].
//!
//! A backend is in rotation when its checks say healthy and it is not ejected. Health flips only
//! after consecutive results; an ejection lasts a cool-down that grows on repeated ejection.

mod active;
mod passive;
mod state;

pub use active::run_health_checks;
pub use passive::record_attempt;
pub use state::BackendHealth;
