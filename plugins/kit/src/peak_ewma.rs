//! A peak-sensitive moving average of latency, as Finagle's and linkerd's `PeakEwma`: a sample
//! above the average replaces it at once (a backend turning slow is noticed at its first slow
//! answer), one below pulls it down smoothly, and with no samples it decays toward zero over
//! `tau` (a backend left alone because it was slow is tried again later).

/// One backend's peak-sensitive latency average, in microseconds, timed in microseconds since
/// any fixed moment the caller keeps.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PeakEwma {
    average_us: f64,
    /// When the average was last updated; `None` before the first sample.
    stamp_us: Option<u64>,
}

impl PeakEwma {
    /// Takes the sample `latency_us` observed at `now_us`, with decay time `tau_us`.
    pub fn observe(&mut self, latency_us: f64, now_us: u64, tau_us: f64) {
        let weight = self.weight_kept(now_us, tau_us);
        let decayed = self.average_us * weight;
        self.average_us = if latency_us > decayed {
            latency_us
        } else {
            decayed + latency_us * (1.0 - weight)
        };
        self.stamp_us = Some(now_us.max(self.stamp_us.unwrap_or(0)));
    }

    /// The average at `now_us`: decayed toward zero for the time since the last sample; `None`
    /// before the first sample.
    pub fn get(&self, now_us: u64, tau_us: f64) -> Option<f64> {
        self.stamp_us.map(|_| self.value(now_us, tau_us))
    }

    fn value(&self, now_us: u64, tau_us: f64) -> f64 {
        self.average_us * self.weight_kept(now_us, tau_us)
    }

    /// How much of the average is kept after the time since the last sample: `e^(-t/tau)`.
    fn weight_kept(&self, now_us: u64, tau_us: f64) -> f64 {
        let elapsed = now_us.saturating_sub(self.stamp_us.unwrap_or(now_us)) as f64;
        (-elapsed / tau_us.max(1.0)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: f64 = 10_000_000.0; // 10 s

    #[test]
    fn a_peak_is_taken_at_once_and_forgotten_smoothly() {
        let mut ewma = PeakEwma::default();
        assert_eq!(ewma.get(0, TAU), None);
        ewma.observe(1_000.0, 0, TAU);
        assert_eq!(ewma.get(0, TAU), Some(1_000.0));
        // A slow answer: taken whole.
        ewma.observe(50_000.0, 1_000, TAU);
        assert!((ewma.get(1_000, TAU).unwrap() - 50_000.0).abs() < 1e-6);
        // Fast answers right after pull it down only a little each.
        ewma.observe(1_000.0, 2_000, TAU);
        let after_one = ewma.get(2_000, TAU).unwrap();
        assert!(after_one > 49_000.0, "{after_one}");
        // Left alone for tau, it keeps about 1/e of its value.
        let later = ewma.get(2_000 + TAU as u64, TAU).unwrap();
        assert!(
            (later / after_one - (-1.0f64).exp()).abs() < 1e-9,
            "{later}"
        );
    }

    #[test]
    fn samples_far_apart_follow_the_latest() {
        let mut ewma = PeakEwma::default();
        ewma.observe(40_000.0, 0, TAU);
        ewma.observe(2_000.0, 10 * TAU as u64, TAU);
        let now = ewma.get(10 * TAU as u64, TAU).unwrap();
        assert!((now - 2_000.0).abs() < 1.0, "{now}");
    }
}
