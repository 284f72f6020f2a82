//! Reading ids: every Keel id is a message holding one `value` string, and an absent id reads
//! as the empty string (which no valid id is), so handlers check one thing instead of two.

use crate::v1::{AgentId, ContainerId, ExecutorId, FrameworkId, OfferId, TaskId};

/// The text of an id, or `""` for an absent one.
///
/// ```
/// use protos::IdText;
/// use protos::v1::TaskId;
/// let some = Some(TaskId { value: "t1".into() });
/// let none: Option<TaskId> = None;
/// assert_eq!(some.text(), "t1");
/// assert_eq!(none.text(), "");
/// ```
pub trait IdText {
    /// The id's value, `""` if absent.
    fn text(&self) -> &str;
}

macro_rules! id_text {
    ($($id:ty),*) => {$(
        impl IdText for $id {
            fn text(&self) -> &str {
                &self.value
            }
        }
        impl IdText for Option<$id> {
            fn text(&self) -> &str {
                self.as_ref().map_or("", |id| id.value.as_str())
            }
        }
    )*};
}

id_text!(
    AgentId,
    ContainerId,
    ExecutorId,
    FrameworkId,
    OfferId,
    TaskId
);
