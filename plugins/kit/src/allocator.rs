//! The plugin's memory allocator: the standard one (wasi-libc's dlmalloc) behind a cache of
//! freed blocks, one list per size class.
//!
//! Every pick allocates in the plugin and frees again: the host has the plugin allocate the
//! `states` list it hands over, which the plugin frees after the pick, and the plugin allocates
//! its answer, freed once the host has read it (and the request's strings, for a plugin that
//! asks for them). The sizes repeat from pick to pick. Measured in the pick bench (callgrind,
//! round-robin, 3 backends; BENCHMARKS.md, issue 13), dlmalloc, dlfree and the calls between
//! Rust and them took about 1 400 of a pick's 6 000 instructions; with the cache a pick costs
//! about 5 100.
//!
//! Blocks up to 64 KiB with an alignment up to 16 are rounded up to a power of two (16 bytes at
//! least) and kept on their class's list when freed, up to 32 KiB of them a class (always at
//! least one block): at most 448 KiB cached, besides dlmalloc's 16 bytes a block. The rest go
//! back to dlmalloc, as do larger or more aligned blocks, which never enter a class. Under a
//! memory cap: a block in a class may take up to twice its size, moving between classes copies
//! (the old and new block live together for a moment), and when dlmalloc has no room for a
//! block, every cached block goes back to it before it is asked once more, so the cache itself
//! never makes an allocation fail.
//!
//! With the kit's `allocator` feature (on by default) it is the plugin's global allocator when
//! built for WebAssembly without threads; a plugin that wants its own turns the feature off.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

/// The smallest class's block size, and the alignment every class block has.
const SMALLEST: usize = 16;
/// Classes of 16 B, 32 B ... 64 KiB.
const CLASSES: usize = 13;
/// The most bytes a class keeps cached (but always one block).
const CACHED_BYTES: usize = 32 * 1024;

/// The size class a block of `layout` is served from, if any.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    let largest = SMALLEST << (CLASSES - 1);
    if layout.align() > SMALLEST || layout.size() > largest {
        return None;
    }
    // The bits of `size - 1` past the smallest class's four: 16 → 0, 17 → 1, 64 KiB → 12.
    let below = (layout.size().max(1) - 1) | (SMALLEST - 1);
    Some((usize::BITS - below.leading_zeros() - SMALLEST.trailing_zeros()) as usize)
}

/// How a block of `class` is asked of the allocator underneath.
#[inline]
fn class_layout(class: usize) -> Layout {
    // A power of two from 16 to 64 KiB, aligned to 16: always a valid layout.
    Layout::from_size_align(SMALLEST << class, SMALLEST).expect("a class's layout is valid")
}

/// A freed block on its class's list: the next one is written in its first bytes.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The freed blocks of every class, newest first.
struct FreeLists {
    heads: [*mut FreeBlock; CLASSES],
    counts: [usize; CLASSES],
}

impl FreeLists {
    const fn new() -> Self {
        FreeLists {
            heads: [ptr::null_mut(); CLASSES],
            counts: [0; CLASSES],
        }
    }

    /// A freed block of `class`, if one is cached.
    #[inline]
    fn take(&mut self, class: usize) -> Option<*mut u8> {
        let block = self.heads[class];
        if block.is_null() {
            return None;
        }
        // SAFETY: a block on the list was put there by `keep`, which wrote `next` into it, and
        // nothing else has used it since.
        self.heads[class] = unsafe { (*block).next };
        self.counts[class] -= 1;
        Some(block.cast())
    }

    /// Caches the freed block `block` of `class`, unless the class holds enough already.
    #[inline]
    fn keep(&mut self, class: usize, block: *mut u8) -> bool {
        let count = self.counts[class];
        if count > 0 && (count + 1) * (SMALLEST << class) > CACHED_BYTES {
            return false;
        }
        let block = block.cast::<FreeBlock>();
        // SAFETY: `block` is a freed block of at least 16 bytes aligned to 16, its owner's no
        // more: room for the link.
        unsafe {
            block.write(FreeBlock {
                next: self.heads[class],
            })
        };
        self.heads[class] = block;
        self.counts[class] = count + 1;
        true
    }
}

/// The allocator `A` behind a cache of freed blocks by size class (see the module's notes).
/// Not for threads: its lists are unsynchronised, and the kit installs it only where a plugin
/// has one thread. Not public: without `Sync` it could serve as no one else's global allocator.
pub(crate) struct Recycling<A: GlobalAlloc> {
    inner: A,
    lists: std::cell::UnsafeCell<FreeLists>,
}

impl<A: GlobalAlloc> Recycling<A> {
    /// `inner` behind empty lists.
    pub(crate) const fn new(inner: A) -> Self {
        Recycling {
            inner,
            lists: std::cell::UnsafeCell::new(FreeLists::new()),
        }
    }

    /// The lists. Sound while one thread at a time uses the allocator (see the type's notes)
    /// and no caller holds the reference across another call into it.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    fn lists(&self) -> &mut FreeLists {
        // SAFETY: as the doc says; every use below ends before the method returns.
        unsafe { &mut *self.lists.get() }
    }

    /// Asks `inner` for a block of `layout`; if it has none, gives every cached block back
    /// and asks once more, so the cache never makes an allocation fail that would succeed
    /// without it (a plugin's memory is capped).
    ///
    /// # Safety
    /// `layout` has a non-zero size.
    unsafe fn ask_inner(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let ask = || {
            // SAFETY: the caller's promise.
            unsafe {
                match zeroed {
                    true => self.inner.alloc_zeroed(layout),
                    false => self.inner.alloc(layout),
                }
            }
        };
        let block = ask();
        match block.is_null() && self.release() {
            true => ask(),
            false => block,
        }
    }

    /// Gives every cached block back to `inner`; answers whether there was any.
    fn release(&self) -> bool {
        let lists = self.lists();
        let mut released = false;
        for class in 0..CLASSES {
            while let Some(block) = lists.take(class) {
                // SAFETY: a cached block came from `inner` with its class's layout.
                unsafe { self.inner.dealloc(block, class_layout(class)) };
                released = true;
            }
        }
        released
    }
}

impl<A: GlobalAlloc> Drop for Recycling<A> {
    /// Gives the cached blocks back (the global allocator is never dropped; a local one is).
    fn drop(&mut self) {
        self.release();
    }
}

// SAFETY: every method hands out blocks of at least the size and alignment asked for: a class's
// block is 16-aligned and its class's size, which is at least `layout.size()`; other layouts go
// to `inner` as they are. A block goes back to `inner` with the layout it was taken with.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Recycling<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => match self.lists().take(class) {
                Some(block) => block,
                // SAFETY: a class's layout has a non-zero size.
                None => unsafe { self.ask_inner(class_layout(class), false) },
            },
            // SAFETY: the caller's layout, which has a non-zero size.
            None => unsafe { self.ask_inner(layout, false) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(_) => {
                // SAFETY: the caller's layout, which has a non-zero size.
                let block = unsafe { self.alloc(layout) };
                if !block.is_null() {
                    // SAFETY: the block holds at least `layout.size()` bytes.
                    unsafe { block.write_bytes(0, layout.size()) };
                }
                block
            }
            // SAFETY: as in `alloc`.
            None => unsafe { self.ask_inner(layout, true) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => {
                if !self.lists().keep(class, block) {
                    // SAFETY: the block came from `inner` with its class's layout.
                    unsafe { self.inner.dealloc(block, class_layout(class)) }
                }
            }
            // SAFETY: the block came from `inner` with this layout.
            None => unsafe { self.inner.dealloc(block, layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size` with `layout`'s alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block is its class's size already.
            (Some(old), Some(new)) if old == new => block,
            (None, None) => {
                // SAFETY: both outside the classes: the block came from `inner` with `layout`.
                let moved = unsafe { self.inner.realloc(block, layout, new_size) };
                match moved.is_null() && self.release() {
                    // SAFETY: as above; a failed realloc left the block as it was.
                    true => unsafe { self.inner.realloc(block, layout, new_size) },
                    false => moved,
                }
            }
            _ => {
                // SAFETY: a valid layout of non-zero size (the caller's promise).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks hold at least the smaller size and do not overlap;
                    // `block` was allocated here with `layout`.
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

/// The plugin's global allocator, where a plugin has one thread.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: Recycling<std::alloc::System> = Recycling::new(std::alloc::System);

// SAFETY: a WebAssembly module built without the `atomics` feature has one thread.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for Recycling<std::alloc::System> {}

#[cfg(test)]
mod tests {
    use std::alloc::System;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    /// `System`, checking that every block comes back with the layout it went out with, and
    /// refusing what would take its live bytes past `limit`.
    struct Ledger {
        live: RefCell<HashMap<usize, Layout>>,
        allocations: Cell<usize>,
        limit: Cell<usize>,
    }

    impl Ledger {
        fn new() -> Self {
            Ledger {
                live: RefCell::default(),
                allocations: Cell::new(0),
                limit: Cell::new(usize::MAX),
            }
        }

        fn live_bytes(&self) -> usize {
            self.live.borrow().values().map(Layout::size).sum()
        }
    }

    unsafe impl GlobalAlloc for Ledger {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if self.live_bytes() + layout.size() > self.limit.get() {
                return ptr::null_mut();
            }
            let block = unsafe { System.alloc(layout) };
            self.live.borrow_mut().insert(block as usize, layout);
            self.allocations.set(self.allocations.get() + 1);
            block
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            let lent = self.live.borrow_mut().remove(&(block as usize));
            assert_eq!(lent, Some(layout), "a block comes back as it went out");
            unsafe { System.dealloc(block, layout) }
        }
    }

    #[test]
    fn every_size_is_served_by_the_smallest_class_that_holds_it() {
        for size in 1..=65536 {
            let class = class_of(layout(size, 8)).unwrap();
            assert!(class_layout(class).size() >= size, "{size}");
            assert!(
                class == 0 || class_layout(class - 1).size() < size,
                "{size}"
            );
        }
        assert_eq!(class_of(layout(65537, 8)), None);
        assert_eq!(
            class_of(layout(64, 32)),
            None,
            "more aligned than a class block"
        );
    }

    #[test]
    fn a_freed_block_serves_the_next_of_its_class_without_asking_underneath() {
        let recycling = Recycling::new(Ledger::new());
        unsafe {
            let first = recycling.alloc(layout(24, 8));
            recycling.dealloc(first, layout(24, 8));
            // 17 to 32 bytes are one class: the same block comes back.
            let second = recycling.alloc(layout(32, 4));
            assert_eq!(second, first);
            assert_eq!(recycling.inner.allocations.get(), 1);
            // Another class gets another block, 16-aligned.
            let other = recycling.alloc(layout(33, 8));
            assert_eq!(recycling.inner.allocations.get(), 2);
            assert_eq!(other as usize % SMALLEST, 0);
            recycling.dealloc(second, layout(32, 4));
            recycling.dealloc(other, layout(33, 8));
        }
        // Dropped, the cache gives its blocks back: the ledger checks each one's layout.
        drop(recycling);
    }

    #[test]
    fn a_class_caches_at_most_its_share_of_bytes_however_often_it_churns() {
        let recycling = Recycling::new(Ledger::new());
        let small = layout(1024, 8);
        let kept = CACHED_BYTES / 1024;
        unsafe {
            for round in 0..3 {
                let before = recycling.inner.allocations.get();
                let blocks: Vec<*mut u8> = (0..kept + 8).map(|_| recycling.alloc(small)).collect();
                let asked = recycling.inner.allocations.get() - before;
                // The first round asks for every block; later ones only for those not kept.
                assert_eq!(
                    asked,
                    if round == 0 { kept + 8 } else { 8 },
                    "round {round}"
                );
                for &block in &blocks {
                    recycling.dealloc(block, small);
                }
                assert_eq!(recycling.lists().counts[6], kept);
                assert_eq!(recycling.inner.live_bytes(), kept * 1024);
            }
            let large = layout(65536, 8);
            let big = [recycling.alloc(large), recycling.alloc(large)];
            for block in big {
                recycling.dealloc(block, large);
            }
            assert_eq!(recycling.lists().counts[12], 1, "always one block");
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_a_class_across_classes_and_beyond_them() {
        let recycling = Recycling::new(Ledger::new());
        unsafe {
            let block = recycling.alloc(layout(20, 4));
            for i in 0..20 {
                block.add(i).write(i as u8);
            }
            let same = recycling.realloc(block, layout(20, 4), 30);
            assert_eq!(same, block, "20 and 30 bytes are one class");
            let grown = recycling.realloc(same, layout(30, 4), 100);
            let huge = recycling.realloc(grown, layout(100, 4), 100_000);
            let huger = recycling.realloc(huge, layout(100_000, 4), 200_000);
            let shrunk = recycling.realloc(huger, layout(200_000, 4), 64);
            let smaller = recycling.realloc(shrunk, layout(64, 4), 20);
            for i in 0..20 {
                assert_eq!(smaller.add(i).read(), i as u8);
            }
            recycling.dealloc(smaller, layout(20, 4));
        }
        drop(recycling);
    }

    #[test]
    fn a_reused_block_is_zeroed_when_asked() {
        let recycling = Recycling::new(System);
        unsafe {
            let dirty = recycling.alloc(layout(64, 8));
            dirty.write_bytes(0xAB, 64);
            recycling.dealloc(dirty, layout(64, 8));
            let zeroed = recycling.alloc_zeroed(layout(60, 8));
            assert_eq!(zeroed, dirty);
            assert!((0..60).all(|i| zeroed.add(i).read() == 0));
            recycling.dealloc(zeroed, layout(60, 8));
        }
    }

    #[test]
    fn cached_blocks_go_back_before_an_allocation_fails() {
        let recycling = Recycling::new(Ledger::new());
        let small = layout(4096, 8);
        let fill_cache = || unsafe {
            recycling.inner.limit.set(usize::MAX);
            let blocks: Vec<*mut u8> = (0..8).map(|_| recycling.alloc(small)).collect();
            for &block in &blocks {
                recycling.dealloc(block, small);
            }
            assert_eq!(recycling.lists().counts[8], 8, "cached");
        };
        unsafe {
            // A class block (20 000 bytes take a 32 KiB one): room for it, but not beside the
            // cache.
            fill_cache();
            recycling
                .inner
                .limit
                .set(recycling.inner.live_bytes() + 30_000);
            let block = recycling.alloc(layout(20_000, 8));
            assert!(!block.is_null(), "the cache was given back");
            assert_eq!(recycling.lists().counts[8], 0);
            recycling.dealloc(block, layout(20_000, 8));
            // A block beyond the classes, the same way.
            fill_cache();
            recycling
                .inner
                .limit
                .set(recycling.inner.live_bytes() + 80_000);
            let large = layout(70_000, 8);
            let block = recycling.alloc(large);
            assert!(!block.is_null(), "the cache was given back");
            // Growing it past what is left fails only once nothing is cached.
            let grown = recycling.realloc(block, large, 90_000);
            assert!(grown.is_null(), "refused when nothing is cached");
            recycling.dealloc(block, large);
        }
    }
}
