//! The global allocator of every Keel binary (and of the tests that link this library):
//! mimalloc. A master taking back tens of thousands of agents grows its maps by hundreds of
//! megabytes within a second; glibc's malloc did that a page range at a time (`mprotect` per
//! growth of a thread arena) and spent about a fifth of the master's time there.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
