//! The manager's memory allocator: jemalloc, with options for a small
//! process whose load comes in bursts (a scale storm, a log flood) and then
//! goes quiet for hours.
//!
//! With glibc's malloc, each runtime thread had its own arena, and after
//! 2000 scale requests between 0 and 200 two of them stayed at about
//! 0.9 MiB resident each while holding about 0.3 MiB of live data: free
//! chunks left on pages that a few live objects kept (`malloc_info` after
//! `malloc_trim`). jemalloc keeps objects of one size class together and
//! gives freed pages back on a timer, so the storm leaves +0.6–0.75 MiB
//! instead of +2.0–2.3 MiB, and a manager at rest holds about 0.6 MiB less
//! (docs/benchmarks.md has the same-run figures).
//!
//! The options, read by jemalloc when it starts:
//! - `narenas:1`: one arena for every thread; the manager's threads
//!   allocate little, and each extra arena keeps its own partly used pages.
//! - `tcache_max:1024`, `tcache_nslots_small_max:16`: small thread caches
//!   (the default ones held about 1 MiB more with 100 instances; without
//!   any, the API served a quarter fewer requests a second).
//! - `background_thread:true`, `dirty_decay_ms:500`, `muzzy_decay_ms:0`:
//!   a jemalloc thread gives freed pages back to the kernel within about
//!   half a second, also while the manager is idle and makes no allocator
//!   call. Giving them back at once (`dirty_decay_ms:0`) cost a system
//!   call per large free and cut the API's throughput by three quarters.
//!   jemalloc starts that thread with every signal blocked, so SIGCHLD
//!   and the manager's signals still go only to the reaper
//!   (`phpeek_core::block_signals`).
//!
//! `_RJEM_MALLOC_CONF` in the manager's environment overrides these, for
//! an operator who wants other trade-offs.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer that jemalloc reads as its `malloc_conf`.
#[repr(transparent)]
pub struct Conf(*const std::ffi::c_char);

// SAFETY: the pointer is to an immutable `'static` C string; nothing writes
// through it.
unsafe impl Sync for Conf {}

/// jemalloc's compile-time options (the prefixed name is the one the
/// `tikv-jemalloc-sys` build reads).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: Conf = Conf(
    c"narenas:1,tcache_max:1024,tcache_nslots_small_max:16,background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:0"
        .as_ptr(),
);
