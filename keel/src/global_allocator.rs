//! The memory allocator of every Keel binary: mimalloc. A master taking back tens of thousands
//! of agents grows its maps by hundreds of megabytes within a second; glibc's malloc did that a
//! page range at a time (`mprotect` per growth of a thread arena) and spent about a fifth of the
//! master's time there (see BENCHMARKS.md, "Master failover").
//!
//! A library must not choose its users' allocator, so each binary declares it, in one line:
//!
//! ```
//! keel::global_allocator!();
//!
//! fn main() {
//!     let v = vec![1, 2, 3]; // allocated by mimalloc
//!     assert_eq!(v.len(), 3);
//! }
//! ```

//!
//! Heap profilers that intercept `malloc` (heaptrack, valgrind's massif and DHAT) see nothing
//! of mimalloc's allocations; build with the `system-allocator` feature
//! (`cargo build --release -p keel --features keel/system-allocator`) to profile a binary on
//! glibc's malloc instead.

/// mimalloc, re-exported so that binaries need no dependency of their own on it.
pub use mimalloc::MiMalloc;

/// The allocator every Keel binary uses: mimalloc, or the system's with `system-allocator`.
#[cfg(not(feature = "system-allocator"))]
pub type Allocator = MiMalloc;
/// The allocator every Keel binary uses: mimalloc, or the system's with `system-allocator`.
#[cfg(feature = "system-allocator")]
pub type Allocator = std::alloc::System;

/// The one value of [`Allocator`].
#[cfg(not(feature = "system-allocator"))]
pub const ALLOCATOR: Allocator = MiMalloc;
/// The one value of [`Allocator`].
#[cfg(feature = "system-allocator")]
pub const ALLOCATOR: Allocator = std::alloc::System;

/// Declares [`Allocator`] (mimalloc) as the `#[global_allocator]` of the binary that calls it
/// (once, at the top level of its `main.rs`).
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::global_allocator::Allocator = $crate::global_allocator::ALLOCATOR;
    };
}
