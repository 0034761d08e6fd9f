//! The plugin's memory allocator: the standard one (wasi-libc's dlmalloc) behind a cache of
//! freed blocks, one list per size class.
//!
//! Every pick allocates in the plugin twice and frees twice: the host has the plugin allocate
//! the `states` list it hands over, the plugin frees it after the pick, allocates its answer,
//! and frees that when the host has read it. The sizes repeat from pick to pick. dlmalloc, as
//! compiled into a plugin, spends about 300 instructions on each of these (its bins, splitting
//! and coalescing), over 1 000 a pick of the 6 000 one costs (BENCHMARKS.md, issue 13); a block
//! taken from or put back on its class's list costs a few.
//!
//! Blocks up to 64 KiB with an alignment up to 16 are rounded up to a power of two (16 bytes at
//! least) and kept on their class's list when freed, up to 32 KiB of them a class (always at
//! least one block), so at most about 450 KiB stay cached; the rest go back to dlmalloc. Larger
//! or more aligned blocks go straight to dlmalloc.
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
/// has one thread.
pub struct Recycling<A: GlobalAlloc> {
    inner: A,
    lists: std::cell::UnsafeCell<FreeLists>,
}

impl<A: GlobalAlloc> Recycling<A> {
    /// `inner` behind empty lists.
    pub const fn new(inner: A) -> Self {
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
}

impl<A: GlobalAlloc> Drop for Recycling<A> {
    /// Gives the cached blocks back (the global allocator is never dropped; a local one is).
    fn drop(&mut self) {
        let lists = self.lists.get_mut();
        for class in 0..CLASSES {
            while let Some(block) = lists.take(class) {
                // SAFETY: a cached block came from `inner` with its class's layout.
                unsafe { self.inner.dealloc(block, class_layout(class)) }
            }
        }
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
                None => unsafe { self.inner.alloc(class_layout(class)) },
            },
            // SAFETY: the caller's layout, as the caller gave it.
            None => unsafe { self.inner.alloc(layout) },
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
            // SAFETY: both outside the classes: the block came from `inner` with `layout`.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
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

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_round_up_to_their_class_and_large_or_aligned_ones_have_none() {
        assert_eq!(class_of(layout(1, 1)), Some(0));
        assert_eq!(class_of(layout(16, 8)), Some(0));
        assert_eq!(class_of(layout(17, 8)), Some(1));
        assert_eq!(class_of(layout(4096, 8)), Some(8));
        assert_eq!(class_of(layout(65536, 16)), Some(12));
        assert_eq!(class_of(layout(65537, 8)), None);
        assert_eq!(class_of(layout(64, 32)), None);
    }

    #[test]
    fn a_freed_block_serves_the_next_of_its_class_and_keeps_its_contents_apart() {
        let recycling = Recycling::new(System);
        unsafe {
            let first = recycling.alloc(layout(24, 8));
            first.write_bytes(0xAB, 24);
            recycling.dealloc(first, layout(24, 8));
            // 17 to 32 bytes are one class: the same block comes back.
            let second = recycling.alloc(layout(32, 4));
            assert_eq!(second, first);
            // Another class gets another block.
            let other = recycling.alloc(layout(33, 8));
            assert_ne!(other, second);
            assert_eq!(other as usize % SMALLEST, 0, "class blocks are 16-aligned");
            recycling.dealloc(second, layout(32, 4));
            recycling.dealloc(other, layout(33, 8));
        }
    }

    #[test]
    fn a_class_caches_at_most_its_share_of_bytes_but_always_one_block() {
        let recycling = Recycling::new(System);
        let small = layout(1024, 8);
        let large = layout(65536, 8);
        unsafe {
            let blocks: Vec<*mut u8> = (0..40).map(|_| recycling.alloc(small)).collect();
            for &block in &blocks {
                recycling.dealloc(block, small);
            }
            assert_eq!(recycling.lists().counts[6], CACHED_BYTES / 1024);
            let big = [recycling.alloc(large), recycling.alloc(large)];
            for block in big {
                recycling.dealloc(block, large);
            }
            assert_eq!(recycling.lists().counts[12], 1);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_a_class_and_across_classes() {
        let recycling = Recycling::new(System);
        unsafe {
            let block = recycling.alloc(layout(20, 4));
            for i in 0..20 {
                block.add(i).write(i as u8);
            }
            let same = recycling.realloc(block, layout(20, 4), 30);
            assert_eq!(same, block, "20 and 30 bytes are one class");
            let grown = recycling.realloc(same, layout(30, 4), 100_000);
            let shrunk = recycling.realloc(grown, layout(100_000, 4), 40);
            for i in 0..20 {
                assert_eq!(shrunk.add(i).read(), i as u8);
            }
            recycling.dealloc(shrunk, layout(40, 4));
        }
    }
}
