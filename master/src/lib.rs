//! The Keel master: master process, hierarchical DRF allocator, registrar, leader contender and
//! detector, HTTP APIs and Omega-style shared-state transactions. Built on `libactor`; talks to the
//! other crates only through `protos` messages. (Filled in by the Mesos core issue.)
