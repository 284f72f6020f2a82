//! A resource's name or role. The common ones — Mesos's standard resource names and the
//! unreserved role `*` — point at static text instead of owning a copy: a task's resources
//! then own no text at all, which keeps a master with hundreds of thousands of tasks smaller
//! and lets a walk over them (a large `/master/state`) read the names without a cache miss
//! each.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Names and roles kept as static text.
const KNOWN: [&str; 6] = ["*", "cpus", "mem", "disk", "ports", "gpus"];

/// A name or role; compares, orders and hashes as its text.
#[derive(Clone)]
pub(crate) enum Label {
    /// One of [`KNOWN`].
    Known(&'static str),
    /// Any other.
    Owned(Box<str>),
}

impl Label {
    /// The label for `text`, copied only if it is not a known one.
    pub(crate) fn new(text: &str) -> Label {
        match KNOWN.iter().find(|k| **k == text) {
            Some(known) => Label::Known(known),
            None => Label::Owned(text.into()),
        }
    }

    /// Its text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Label::Known(s) => s,
            Label::Owned(s) => s,
        }
    }
}

impl From<String> for Label {
    fn from(text: String) -> Label {
        match KNOWN.iter().find(|k| **k == text) {
            Some(known) => Label::Known(known),
            None => Label::Owned(text.into_boxed_str()),
        }
    }
}

impl From<&str> for Label {
    fn from(text: &str) -> Label {
        Label::new(text)
    }
}

impl Deref for Label {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Label {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Label {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_owned_labels_compare_as_their_text() {
        let known = Label::new("cpus");
        let owned = Label::from(String::from("cpus-x"));
        assert!(matches!(known, Label::Known(_)));
        assert!(matches!(owned, Label::Owned(_)));
        assert!(known < owned, "ordered as text");
        assert_eq!(
            Label::new("mem"),
            Label::Owned("mem".into()),
            "equal as text"
        );
        assert_eq!(known, "cpus");
    }
}
