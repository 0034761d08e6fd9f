//! A timer for how long something has made no progress: it starts when a read or write first
//! has to wait, and progress stops it, so it measures the time between two steps, never the
//! whole transfer (nginx's `client_body_timeout` and `send_timeout` work so). Nothing is
//! allocated or registered with tokio's timer until the first wait, so a transfer that never
//! waits costs nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Times one transfer's waits against `limit`.
#[derive(Debug)]
pub struct StallTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl StallTimer {
    /// A timer allowing waits of up to `limit`.
    pub fn new(limit: Duration) -> Self {
        StallTimer {
            limit,
            sleep: None,
            waiting: false,
        }
    }

    /// Notes that the transfer has to wait: whether it has now waited past the limit since its
    /// last progress. When not, `cx` is woken at the limit.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.waiting {
            sleep.as_mut().reset(deadline);
            self.waiting = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// Notes progress: the next wait starts a new count.
    pub fn progress(&mut self) {
        self.waiting = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(timer: &mut StallTimer) -> bool {
        timer.poll_expired(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_wait_without_progress_expires() {
        let mut timer = StallTimer::new(Duration::from_secs(10));
        assert!(!expired(&mut timer));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!expired(&mut timer), "6 s into the first wait");
        timer.progress();
        assert!(!expired(&mut timer), "a new wait starts after progress");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            !expired(&mut timer),
            "6 s into the second wait, 12 s in all"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(expired(&mut timer), "11 s into the second wait");
    }
}
