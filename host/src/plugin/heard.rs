//! The outcomes a plugin's instances hear of through `observe`: queued as responses arrive,
//! gathered into numbered batches, and kept for a while so that every instance hears of every
//! batch, including an instance that was busy picking when a batch was made, or is new.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use super::bindings::Outcome;

/// How many outcomes wait, and how many are kept for instances behind, at most: beyond it the
/// oldest are dropped.
pub(super) const OUTCOMES_KEPT: usize = 4096;

/// Outcomes on their way to the plugin's instances.
pub(super) struct Heard {
    /// Outcomes not yet in a batch, each with the generation of the set it belongs to.
    queue: ArrayQueue<(u64, Outcome)>,
    /// Outcomes dropped because the queue was full.
    dropped: AtomicU64,
    /// The batches kept, oldest first, and the number the next one gets.
    batches: Mutex<Batches>,
}

#[derive(Default)]
struct Batches {
    kept: VecDeque<(u64, Arc<[Outcome]>)>,
    outcomes: usize,
    next: u64,
}

impl Heard {
    pub(super) fn new() -> Self {
        Heard {
            queue: ArrayQueue::new(OUTCOMES_KEPT),
            dropped: AtomicU64::new(0),
            batches: Mutex::default(),
        }
    }

    /// Queues `outcome` of the set numbered `generation`; answers whether the queue was empty.
    pub(super) fn queue(&self, generation: u64, outcome: Outcome) -> bool {
        let was_empty = self.queue.is_empty();
        if self.queue.push((generation, outcome)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        was_empty
    }

    /// Outcomes dropped because the plugin fell behind.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Gathers what is queued for the set numbered `generation` into a new batch (dropping what
    /// belongs to another set); answers the number the next batch will get, so that an
    /// instance that heard of every batch before it is up to date.
    pub(super) fn gather(&self, generation: u64) -> u64 {
        // Only those queued by now, so that a busy proxy cannot keep this going.
        let waiting = self.queue.len();
        let batch: Vec<Outcome> = std::iter::from_fn(|| self.queue.pop())
            .take(waiting)
            .filter(|(of, _)| *of == generation)
            .map(|(_, outcome)| outcome)
            .collect();
        let mut batches = self
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !batch.is_empty() {
            let number = batches.next;
            batches.outcomes += batch.len();
            batches.kept.push_back((number, batch.into()));
            batches.next += 1;
            while batches.outcomes > OUTCOMES_KEPT {
                let Some((_, oldest)) = batches.kept.pop_front() else {
                    break;
                };
                batches.outcomes -= oldest.len();
            }
        }
        batches.next
    }

    /// The outcomes of every batch kept from number `from` on, oldest first: what an instance
    /// that heard of the batches before `from` has still to hear of.
    pub(super) fn since(&self, from: u64) -> Vec<Outcome> {
        let batches = self
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        batches
            .kept
            .iter()
            .filter(|(number, _)| *number >= from)
            .flat_map(|(_, batch)| batch.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(backend: u32) -> Outcome {
        Outcome {
            backend,
            status: 200,
            latency_us: 1,
        }
    }

    #[test]
    fn every_batch_is_kept_for_instances_behind_and_other_sets_are_dropped() {
        let heard = Heard::new();
        assert!(heard.queue(7, outcome(0)));
        assert!(!heard.queue(6, outcome(1)));
        assert!(!heard.queue(7, outcome(2)));
        assert_eq!(heard.gather(7), 1);
        assert!(heard.queue(7, outcome(3)));
        assert_eq!(heard.gather(7), 2);
        // Nothing new: no empty batch.
        assert_eq!(heard.gather(7), 2);
        let backends = |from| {
            heard
                .since(from)
                .iter()
                .map(|o| o.backend)
                .collect::<Vec<_>>()
        };
        assert_eq!(backends(0), [0, 2, 3]);
        assert_eq!(backends(1), [3]);
        assert_eq!(backends(2), [] as [u32; 0]);
    }

    #[test]
    fn the_oldest_batches_go_when_too_many_outcomes_are_kept() {
        let heard = Heard::new();
        for round in 0..3 {
            for _ in 0..OUTCOMES_KEPT / 2 {
                heard.queue(1, outcome(round));
            }
            heard.gather(1);
        }
        let kept = heard.since(0);
        assert_eq!(kept.len(), OUTCOMES_KEPT);
        assert_eq!(kept[0].backend, 1);
    }
}
