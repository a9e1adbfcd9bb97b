//! The process's allocator: jemalloc, counting for the memory figures. When counting is enabled,
//! it tracks the bytes allocated and not yet freed, so `rmf-dash bench` can report the memory an
//! engine keeps per tracked entity. The binary installs it; disabled it costs one relaxed load
//! per allocation.
//!
//! Why jemalloc: with glibc's allocator the engine's, the hub's and the runtime's threads each
//! kept the memory they had freed, so a site's RSS kept growing for hours after its live state
//! had stopped growing (the soak of the 1k site: heap flat at 180-210 MB from the second site
//! hour, `RssAnon` 282 MB at one hour and 382 MB at four). jemalloc returns freed pages to the
//! system after a short decay (BENCHMARKS.md, "Soak").

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tikv_jemallocator::Jemalloc as Inner;

/// jemalloc's options, read when it starts: a background thread returns freed pages to the
/// system after their decay (10 s) also while the process is idle (without it, pages are only
/// returned by later allocations: a server left idle after a burst of clients would keep them).
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded to jemalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { Inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { Inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was allocated by jemalloc with `layout`.
        unsafe { Inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was allocated by jemalloc with `layout`.
        unsafe { Inner.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting from zero.
pub fn start() {
    LIVE.store(0, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
}

/// Bytes allocated and not freed since `start` (frees of older memory count negative).
pub fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

pub fn stop() {
    ENABLED.store(false, Ordering::SeqCst);
}
