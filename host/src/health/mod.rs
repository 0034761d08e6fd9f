//! Active health checks: every interval, one probe of each backend of the current set (over
//! HTTP, `http.rs`); each backend's verdict flips only after consecutive results
//! ([`crate::backend::BackendHealth`]). Passive ejection is recorded by the proxy on real traffic.

mod http;

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Transition};
use crate::config::HealthConfig;
use crate::state::State;

/// Asks one backend whether it is healthy.
trait Probe: Send + Sync + 'static {
    /// Whether `backend` answered as healthy within the probe's timeout; if not, why.
    fn probe(&self, backend: &Backend) -> impl Future<Output = Result<(), String>> + Send;
}

/// Probes every backend of `state`'s current set each `interval` until `stop` is cancelled.
/// The first round starts at once; a backend added by a reload is probed from the next round.
/// A probe reaches its backend as requests do (TLS, HTTP/2), with heads up to
/// `max_header_size`.
pub async fn run_health_checks(
    state: Arc<State>,
    config: HealthConfig,
    max_header_size: usize,
    stop: CancellationToken,
) {
    let probe = http::HttpProbe::new(&config, max_header_size);
    run_rounds(state, config, Arc::new(probe), stop).await;
}

/// The probe loop, with the probe given.
async fn run_rounds<P: Probe>(
    state: Arc<State>,
    config: HealthConfig,
    probe: Arc<P>,
    stop: CancellationToken,
) {
    let config = Arc::new(config);
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let mut round = JoinSet::new();
        for backend in state.backends().backends() {
            let (probe, config, backend) = (probe.clone(), config.clone(), backend.clone());
            round.spawn(async move {
                let probed = probe.probe(&backend).await;
                let ok = probed.is_ok();
                report(
                    &backend,
                    backend.health.record_probe(ok, &config),
                    probed.err(),
                );
                if ok && backend.health.end_ejection_early() {
                    tracing::info!(
                        backend = %backend.name,
                        address = %backend.address,
                        "ejection ended early: the backend passed a health check"
                    );
                }
            });
        }
        tokio::select! {
            _ = round.join_all() => {}
            () = stop.cancelled() => return,
        }
    }
}

fn report(backend: &Backend, transition: Option<Transition>, failure: Option<String>) {
    match transition {
        Some(Transition::BecameUnhealthy) => tracing::warn!(
            backend = %backend.name,
            address = %backend.address,
            failure = failure.as_deref().unwrap_or(""),
            "health check failing; the backend is out of rotation"
        ),
        Some(Transition::BecameHealthy) => tracing::info!(
            backend = %backend.name,
            address = %backend.address,
            "health check passing; the backend is back in rotation"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::backend::test_set;
    use crate::clock::Clock;
    use crate::config::RetryConfig;
    use crate::policy::Policy;

    /// A probe whose answer the test sets, counting the probes of each backend.
    #[derive(Default)]
    struct Scripted {
        failing: Mutex<Vec<String>>,
        probes: AtomicU32,
        slow: AtomicBool,
    }

    impl Probe for Scripted {
        fn probe(&self, backend: &Backend) -> impl Future<Output = Result<(), String>> + Send {
            self.probes.fetch_add(1, Ordering::SeqCst);
            let ok = !self.failing.lock().unwrap().contains(&backend.name);
            let slow = self.slow.load(Ordering::SeqCst);
            async move {
                if slow {
                    tokio::time::sleep(Duration::from_millis(450)).await;
                }
                if ok {
                    Ok(())
                } else {
                    Err("scripted".to_owned())
                }
            }
        }
    }

    fn checks(interval_ms: u64) -> HealthConfig {
        HealthConfig {
            interval: Duration::from_millis(interval_ms),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            ..HealthConfig::default()
        }
    }

    fn in_rotation(state: &State) -> Vec<bool> {
        state
            .backends()
            .backends()
            .iter()
            .map(|b| b.health.healthy())
            .collect()
    }

    /// Waits until `at` ms after the checks started, letting every round due by then run.
    async fn until(started: tokio::time::Instant, at: u64) {
        tokio::time::sleep_until(started + Duration::from_millis(at)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_leaves_after_the_unhealthy_threshold_of_rounds_and_comes_back_after_the_healthy_one()
     {
        let clock = Clock::new();
        let state = State::new(
            test_set(&[1, 1]),
            Policy::builtin(&clock),
            RetryConfig::default(),
            clock,
        );
        let probe = Arc::new(Scripted::default());
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let checks = tokio::spawn(run_rounds(
            state.clone(),
            checks(300),
            probe.clone(),
            stop.clone(),
        ));

        // Rounds at 0, 300, 600...; b1 fails from the round at 300 on.
        until(started, 1).await;
        assert_eq!(
            probe.probes.load(Ordering::SeqCst),
            2,
            "the first round starts at once"
        );
        probe.failing.lock().unwrap().push("b1".into());
        until(started, 601).await;
        assert_eq!(
            in_rotation(&state),
            [true, true],
            "two failures in a row are not enough"
        );
        until(started, 899).await;
        assert_eq!(in_rotation(&state), [true, true]);
        until(started, 901).await;
        assert_eq!(in_rotation(&state), [true, false], "out at the third");

        probe.failing.lock().unwrap().clear();
        until(started, 1201).await;
        assert_eq!(
            in_rotation(&state),
            [true, false],
            "one success is not enough"
        );
        until(started, 1501).await;
        assert_eq!(in_rotation(&state), [true, true], "back at the second");
        assert_eq!(probe.probes.load(Ordering::SeqCst), 12, "six rounds of two");

        stop.cancel();
        checks.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_slower_than_the_interval_delays_the_next_instead_of_overlapping_it() {
        let clock = Clock::new();
        let state = State::new(
            test_set(&[1]),
            Policy::builtin(&clock),
            RetryConfig::default(),
            clock,
        );
        let probe = Arc::new(Scripted::default());
        probe.slow.store(true, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let checks = tokio::spawn(run_rounds(state, checks(300), probe.clone(), stop.clone()));
        // Each round takes 450 ms: rounds start at 0, 450, 900 and 1350.
        until(started, 1349).await;
        assert_eq!(probe.probes.load(Ordering::SeqCst), 3);
        until(started, 1351).await;
        assert_eq!(probe.probes.load(Ordering::SeqCst), 4);
        stop.cancel();
        checks.await.unwrap();
    }
}
