//! Sorters: the order in which the allocator visits roles, and the frameworks within each role
//! (Mesos's `allocator/sorter`). Keel ships one policy, [`drf`].

pub mod drf;
