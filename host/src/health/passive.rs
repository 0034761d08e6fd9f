//! Passive ejection, in the spirit of Envoy's outlier detection: consecutive failed attempts on
//! real traffic (no connection, broken off, timed out) take a backend out for a cool-down, after
//! which it is tried again.

use std::sync::Arc;

use crate::backend::Backend;
use crate::config::EjectionConfig;

/// Records one attempt on `backend`; the failure that completes a streak ejects it, and a timer
/// puts it back after the cool-down. Must run inside the tokio runtime.
pub fn record_attempt(backend: &Arc<Backend>, ok: bool, config: &EjectionConfig) {
    let Some(cool_down) = backend.health.record_attempt(ok, config) else {
        return;
    };
    tracing::warn!(
        backend = %backend.name,
        address = %backend.address,
        failures = config.consecutive_failures,
        cool_down = %humantime::format_duration(cool_down),
        "ejected after consecutive failures"
    );
    let backend = backend.clone();
    tokio::spawn(async move {
        tokio::time::sleep(cool_down).await;
        backend.health.restore();
        tracing::info!(
            backend = %backend.name,
            address = %backend.address,
            "ejection over; the backend is tried again"
        );
    });
}
