//! Asking the CPU to start loading memory that is about to be read. Writing a large state
//! walks hundreds of thousands of records whose text lies scattered over the heap; read one
//! after another, each piece is a cache miss waited for alone. Asked for a few records ahead,
//! the misses overlap.

/// Starts loading the cache line at `p` (a hint: never faults, whatever `p` is).
#[inline(always)]
pub fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault, even on an invalid
    // address. (Safe to call from Rust 1.87; unsafe before.)
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading the first `lines` cache lines of `*value`.
#[inline(always)]
pub fn prefetch_lines<T>(value: &T, lines: usize) {
    let start = (value as *const T).cast::<u8>();
    for line in 0..lines.min(std::mem::size_of::<T>().div_ceil(64)) {
        prefetch(start.wrapping_add(line * 64));
    }
}
