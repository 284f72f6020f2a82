//! Process id generation: `slave` → `slave(1)`, `slave(2)`, … as libprocess's `ID::generate`.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Hands out unique ids per prefix. Each node owns one, so ids are unique on that node.
#[derive(Debug, Default)]
pub struct IdGenerator {
    next: Mutex<HashMap<String, u64>>,
}

impl IdGenerator {
    /// A generator that starts every prefix at 1.
    pub fn new() -> IdGenerator {
        IdGenerator::default()
    }

    /// Returns `prefix(N)` with N one more than the last id handed out for `prefix`.
    ///
    /// ```
    /// let ids = libactor::IdGenerator::new();
    /// assert_eq!(ids.generate("slave"), "slave(1)");
    /// assert_eq!(ids.generate("slave"), "slave(2)");
    /// assert_eq!(ids.generate("master"), "master(1)");
    /// ```
    pub fn generate(&self, prefix: &str) -> String {
        let mut next = self.next.lock();
        let n = next.entry(prefix.to_owned()).or_insert(0);
        *n += 1;
        format!("{prefix}({n})")
    }
}
