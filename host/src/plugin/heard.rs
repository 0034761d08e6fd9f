//! The outcomes a plugin's instances hear of through `observe`: queued as responses arrive,
//! gathered into numbered batches, and kept for a while so that every instance hears of every
//! batch, including an instance that was busy picking when a batch was made, or is new. Only
//! outcomes of the backend set in force are kept: an instance configured for it must never
//! hear of another set's indices.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_queue::ArrayQueue;

use super::bindings::Outcome;

/// How many outcomes wait, and how many are kept for instances behind, at most: beyond it the
/// oldest are dropped.
pub(super) const OUTCOMES_KEPT: usize = 4096;

/// Outcomes on their way to the plugin's instances.
pub(super) struct Heard {
    /// Outcomes not yet in a batch, each with the generation of the set it belongs to.
    queue: ArrayQueue<(u64, Outcome)>,
    /// Outcomes dropped: the queue was full, or they belonged to a set replaced since.
    dropped: AtomicU64,
    /// The batches kept, and the number the next one gets.
    batches: Mutex<Batches>,
}

#[derive(Default)]
struct Batches {
    /// Each batch with its number, oldest first, all of the set numbered `generation`.
    kept: VecDeque<(u64, Arc<[Outcome]>)>,
    generation: u64,
    /// The outcomes in `kept`.
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

    /// Queues `outcome` of the set numbered `generation`; answers whether it was queued (not
    /// dropped because the queue is full).
    pub(super) fn queue(&self, generation: u64, outcome: Outcome) -> bool {
        let queued = self.queue.push((generation, outcome)).is_ok();
        if !queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Outcomes dropped before any instance heard of them.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Gathers what is queued for the set numbered `generation` into a new batch (dropping what
    /// belongs to another set, and the batches kept for one); answers the size of the batch and
    /// the number the next batch will get, so that an instance that heard of every batch before
    /// it is up to date.
    pub(super) fn gather(&self, generation: u64) -> (usize, u64) {
        // Only those queued by now, so that a busy proxy cannot keep this going; outcomes
        // queued meanwhile wake the next delivery.
        let waiting = self.queue.len();
        let (batch, stale): (Vec<_>, Vec<_>) = std::iter::from_fn(|| self.queue.pop())
            .take(waiting)
            .partition(|(of, _)| *of == generation);
        self.dropped
            .fetch_add(stale.len() as u64, Ordering::Relaxed);
        let batch: Arc<[Outcome]> = batch.into_iter().map(|(_, outcome)| outcome).collect();
        let mut batches = self.batches();
        if batches.generation != generation {
            batches.kept.clear();
            batches.outcomes = 0;
            batches.generation = generation;
        }
        if !batch.is_empty() {
            let number = batches.next;
            batches.outcomes += batch.len();
            batches.kept.push_back((number, batch.clone()));
            batches.next += 1;
            while batches.outcomes > OUTCOMES_KEPT {
                let Some((_, oldest)) = batches.kept.pop_front() else {
                    break;
                };
                batches.outcomes -= oldest.len();
            }
        }
        (batch.len(), batches.next)
    }

    /// The outcomes of every batch kept from number `from` on, oldest first: what an instance
    /// that heard of the batches before `from` has still to hear of. Empty unless `generation`
    /// is the set the batches kept belong to.
    pub(super) fn since(&self, from: u64, generation: u64) -> Vec<Outcome> {
        let batches = self.batches();
        if batches.generation != generation {
            return Vec::new();
        }
        batches
            .kept
            .iter()
            .filter(|(number, _)| *number >= from)
            .flat_map(|(_, batch)| batch.iter().copied())
            .collect()
    }

    fn batches(&self) -> MutexGuard<'_, Batches> {
        // Nothing panics while holding it; a poisoned lock still holds consistent batches.
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn backends(outcomes: &[Outcome]) -> Vec<u32> {
        outcomes.iter().map(|o| o.backend).collect()
    }

    #[test]
    fn every_batch_is_kept_for_instances_behind_and_other_sets_are_dropped() {
        let heard = Heard::new();
        assert!(heard.queue(7, outcome(0)));
        assert!(heard.queue(6, outcome(1)));
        assert!(heard.queue(7, outcome(2)));
        assert_eq!(heard.gather(7), (2, 1));
        assert_eq!(heard.dropped(), 1, "the outcome of set 6");
        assert!(heard.queue(7, outcome(3)));
        assert_eq!(heard.gather(7), (1, 2));
        // Nothing new: no empty batch.
        assert_eq!(heard.gather(7), (0, 2));
        assert_eq!(backends(&heard.since(0, 7)), [0, 2, 3]);
        assert_eq!(backends(&heard.since(1, 7)), [3]);
        assert!(heard.since(2, 7).is_empty());
        assert!(heard.since(0, 6).is_empty(), "another set's indices");
        // A new set: what was kept for the old one is never heard of.
        assert!(heard.queue(8, outcome(4)));
        assert_eq!(heard.gather(8), (1, 3));
        assert_eq!(backends(&heard.since(0, 8)), [4]);
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
        let kept = heard.since(0, 1);
        assert_eq!(kept.len(), OUTCOMES_KEPT);
        assert_eq!(kept[0].backend, 1);
    }
}
