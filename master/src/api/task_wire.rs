//! Tasks written as `keel.v1.Task` protobuf straight from the view's records, for the
//! operator API's `GET_STATE` and `GET_TASKS` in protobuf: building a `Task` message per
//! record first copies every id, status and resource name (a dozen allocations a task, for
//! 400,000 tasks) only to encode and drop them. The bytes are the ones prost writes for
//! [`TaskRecord::to_proto`] (same fields, same order, proto3's omissions), as the tests check.

use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
#[cfg(test)]
use protos::v1::master::response::GetTasks;
use protos::v1::master::response::{GetState, Type as ResponseType};
#[cfg(test)]
use protos::v1::master::Response;
use resources::{Amount, Resources, SCALAR_SCALE};

use super::state_shape::walk_tasks;
use super::view::{TaskRecord, TasksSeen};
use crate::master::StatusRecord;

/// `Response.type`, `Response.get_tasks`, `Response.get_state`.
const RESPONSE_TYPE: u32 = 1;
const RESPONSE_GET_TASKS: u32 = 13;
const RESPONSE_GET_STATE: u32 = 9;
/// `GetState.get_tasks`.
const STATE_GET_TASKS: u32 = 1;
/// `GetTasks.tasks`, `.completed_tasks`, `.unreachable_tasks`.
const TASKS_LIVE: u32 = 2;
const TASKS_COMPLETED: u32 = 3;
const TASKS_UNREACHABLE: u32 = 5;

fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_message_head(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// A proto3 string field: nothing when empty.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        message_len(tag, s.len())
    }
}

fn put_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_message_head(tag, s.len(), buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// An id message (`TaskID`, `AgentID`, …: one string, field 1), present even when empty.
fn id_len(tag: u32, value: &str) -> usize {
    message_len(tag, string_len(1, value))
}

fn put_id(tag: u32, value: &str, buf: &mut Vec<u8>) {
    put_message_head(tag, string_len(1, value), buf);
    put_string(1, value, buf);
}

/// A proto3 scalar field: nothing when it holds its default (zero).
fn scalar_len<T: Default + PartialEq>(tag: u32, v: T, len: fn(u32, &T) -> usize) -> usize {
    if v == T::default() {
        0
    } else {
        len(tag, &v)
    }
}

fn put_scalar<T: Default + PartialEq>(
    tag: u32,
    v: T,
    put: fn(u32, &T, &mut Vec<u8>),
    buf: &mut Vec<u8>,
) {
    if v != T::default() {
        put(tag, &v, buf);
    }
}

fn int32_len(tag: u32, v: i32) -> usize {
    scalar_len(tag, v, encoding::int32::encoded_len)
}

fn put_int32(tag: u32, v: i32, buf: &mut Vec<u8>) {
    put_scalar(tag, v, encoding::int32::encode, buf);
}

fn double_len(tag: u32, v: f64) -> usize {
    scalar_len(tag, v, encoding::double::encoded_len)
}

fn put_double(tag: u32, v: f64, buf: &mut Vec<u8>) {
    put_scalar(tag, v, encoding::double::encode, buf);
}

fn uint64_len(tag: u32, v: u64) -> usize {
    scalar_len(tag, v, encoding::uint64::encoded_len)
}

fn put_uint64(tag: u32, v: u64, buf: &mut Vec<u8>) {
    put_scalar(tag, v, encoding::uint64::encode, buf);
}

/// One `Resource` (name 1, type 2, scalar 3, ranges 4, set 5, role 6), as
/// [`Resources::to_proto`] makes it.
fn resource_body_len(name: &str, role: &str, amount: &Amount) -> usize {
    let value = match amount {
        Amount::Scalar(v) => message_len(3, double_len(1, *v as f64 / SCALAR_SCALE as f64)),
        Amount::Ranges(set) => {
            let ranges: usize = set
                .iter()
                .map(|(begin, end)| message_len(1, uint64_len(1, begin) + uint64_len(2, end)))
                .sum();
            int32_len(2, 1) + message_len(4, ranges)
        }
        Amount::Set(items) => {
            let items: usize = items.iter().map(|i| message_len(1, i.len())).sum();
            int32_len(2, 2) + message_len(5, items)
        }
    };
    string_len(1, name) + value + string_len(6, role)
}

fn put_resource(tag: u32, name: &str, role: &str, amount: &Amount, buf: &mut Vec<u8>) {
    put_message_head(tag, resource_body_len(name, role, amount), buf);
    put_string(1, name, buf);
    match amount {
        Amount::Scalar(v) => {
            let value = *v as f64 / SCALAR_SCALE as f64;
            put_message_head(3, double_len(1, value), buf);
            put_double(1, value, buf);
        }
        Amount::Ranges(set) => {
            put_int32(2, 1, buf);
            let range_len = |begin, end| uint64_len(1, begin) + uint64_len(2, end);
            let ranges: usize = set
                .iter()
                .map(|(begin, end)| message_len(1, range_len(begin, end)))
                .sum();
            put_message_head(4, ranges, buf);
            for (begin, end) in set.iter() {
                put_message_head(1, range_len(begin, end), buf);
                put_uint64(1, begin, buf);
                put_uint64(2, end, buf);
            }
        }
        Amount::Set(items) => {
            put_int32(2, 2, buf);
            let len: usize = items.iter().map(|i| message_len(1, i.len())).sum();
            put_message_head(5, len, buf);
            for item in items {
                put_message_head(1, item.len(), buf);
                buf.extend_from_slice(item.as_bytes());
            }
        }
    }
    put_string(6, role, buf);
}

/// One `TaskStatus` (task_id 1, state 2, message 4, agent_id 5, timestamp 6, healthy 8,
/// source 9, reason 10), as [`StatusRecord::to_proto`] makes it.
fn status_body_len(s: &StatusRecord, task: &str, agent: &str) -> usize {
    id_len(1, task)
        + int32_len(2, s.state as i32)
        + string_len(4, &s.message)
        + id_len(5, agent)
        + double_len(6, s.timestamp)
        + s.healthy.map_or(0, |h| encoding::bool::encoded_len(8, &h))
        + int32_len(9, s.source)
        + s.reason.map_or(0, |r| encoding::int32::encoded_len(10, &r))
}

fn put_status(tag: u32, s: &StatusRecord, task: &str, agent: &str, buf: &mut Vec<u8>) {
    put_message_head(tag, status_body_len(s, task, agent), buf);
    put_id(1, task, buf);
    put_int32(2, s.state as i32, buf);
    put_string(4, &s.message, buf);
    put_id(5, agent, buf);
    put_double(6, s.timestamp, buf);
    if let Some(h) = s.healthy {
        encoding::bool::encode(8, &h, buf);
    }
    put_int32(9, s.source, buf);
    if let Some(r) = s.reason {
        encoding::int32::encode(10, &r, buf);
    }
}

fn resources_len(resources: &Resources) -> usize {
    resources
        .iter()
        .map(|(name, role, amount)| message_len(7, resource_body_len(name, role, amount)))
        .sum()
}

/// One `Task` (name 1, task_id 2, framework_id 3, executor_id 4, agent_id 5, state 6,
/// resources 7, statuses 8) with its key, as field `tag`.
fn put_task(tag: u32, t: &TaskRecord, buf: &mut Vec<u8>) {
    let state = t.state as i32;
    let statuses: usize = t
        .statuses
        .iter()
        .map(|s| message_len(8, status_body_len(s, &t.id, &t.agent)))
        .sum();
    let len = string_len(1, &t.name)
        + id_len(2, &t.id)
        + id_len(3, &t.framework)
        + if t.executor.is_empty() {
            0
        } else {
            id_len(4, &t.executor)
        }
        + id_len(5, &t.agent)
        + encoding::int32::encoded_len(6, &state)
        + resources_len(&t.resources)
        + statuses;
    put_message_head(tag, len, buf);
    put_string(1, &t.name, buf);
    put_id(2, &t.id, buf);
    put_id(3, &t.framework, buf);
    if !t.executor.is_empty() {
        put_id(4, &t.executor, buf);
    }
    put_id(5, &t.agent, buf);
    encoding::int32::encode(6, &state, buf);
    for (name, role, amount) in t.resources.iter() {
        put_resource(7, name, role, amount, buf);
    }
    for s in &t.statuses {
        put_status(8, s, &t.id, &t.agent, buf);
    }
}

/// The fields of a `GetTasks` message (no key or length of its own).
fn get_tasks_body(seen: &TasksSeen<'_>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 * (seen.live.len() + seen.completed.len()) + 64);
    // In field order, as prost writes them.
    for (tag, tasks) in [
        (TASKS_LIVE, &seen.live),
        (TASKS_COMPLETED, &seen.completed),
        (TASKS_UNREACHABLE, &seen.unreachable),
    ] {
        walk_tasks(tasks, |t| put_task(tag, t, &mut buf));
    }
    buf
}

/// `Response { type: GET_TASKS, get_tasks }` in protobuf.
pub fn get_tasks_response(seen: &TasksSeen<'_>) -> Vec<u8> {
    let body = get_tasks_body(seen);
    let mut out = Vec::with_capacity(body.len() + 16);
    encoding::int32::encode(RESPONSE_TYPE, &(ResponseType::GetTasks as i32), &mut out);
    put_message_head(RESPONSE_GET_TASKS, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// `Response { type: GET_STATE, get_state }` in protobuf: `rest` with its tasks written
/// from `seen` (`rest.get_tasks` is ignored).
pub fn get_state_response(seen: &TasksSeen<'_>, rest: GetState) -> Vec<u8> {
    let tasks = get_tasks_body(seen);
    let rest = GetState {
        get_tasks: None,
        ..rest
    }
    .encode_to_vec();
    let state_len = message_len(STATE_GET_TASKS, tasks.len()) + rest.len();
    let mut out = Vec::with_capacity(state_len + 16);
    encoding::int32::encode(RESPONSE_TYPE, &(ResponseType::GetState as i32), &mut out);
    put_message_head(RESPONSE_GET_STATE, state_len, &mut out);
    // `get_tasks` is GetState's first field, so it goes before the others.
    put_message_head(STATE_GET_TASKS, tasks.len(), &mut out);
    out.extend_from_slice(&tasks);
    out.extend_from_slice(&rest);
    out
}

/// What prost writes for the same response, for the tests.
#[cfg(test)]
fn expected(kind: ResponseType, get_tasks: GetTasks, rest: Option<GetState>) -> Vec<u8> {
    let mut response = Response {
        r#type: kind as i32,
        ..Default::default()
    };
    match rest {
        Some(rest) => {
            response.get_state = Some(GetState {
                get_tasks: Some(get_tasks),
                ..rest
            })
        }
        None => response.get_tasks = Some(get_tasks),
    }
    response.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use protos::v1::{AgentInfo, FrameworkInfo, TaskState};

    use super::*;
    use crate::api::view::{ClusterView, ViewLimits};
    use crate::master::FeedItem;

    fn status(state: TaskState, t: f64) -> StatusRecord {
        StatusRecord {
            state,
            timestamp: t,
            source: 1,
            reason: None,
            message: String::new(),
            healthy: None,
        }
    }

    /// Tasks with every kind of field set and unset: an executor or none, ranges, sets, a
    /// reserved role, a zero scalar's neighbour, statuses with and without reason, health
    /// and message, the zero state (`TASK_STARTING`), completed and unreachable ones.
    fn view() -> ClusterView {
        let mut v = ClusterView::new(ViewLimits::default());
        for f in ["f1", "f2"] {
            v.apply(
                FeedItem::FrameworkChanged {
                    id: f.into(),
                    info: FrameworkInfo::default(),
                    active: true,
                    added: true,
                    at: 1.0,
                },
                1.0,
            );
        }
        v.apply(
            FeedItem::AgentAdded {
                id: "a1".into(),
                info: AgentInfo::default(),
                pid: "slave(1)@127.0.0.1:1".into(),
                total: "cpus:8;mem:1024;ports:[1-100]".parse().unwrap(),
                at: 1.0,
            },
            1.0,
        );
        let tasks: [(&str, &str, &str, &str); 5] = [
            ("f1", "t1", "", "cpus:1;mem:32"),
            (
                "f1",
                "t2",
                "e1",
                "cpus(web):0.5;ports:[0-0,31000-31002];disks:{a,b}",
            ),
            ("f2", "t3", "", "mem:0.001"),
            ("f2", "t4", "", "cpus:2"),
            ("f2", "t5", "", "cpus:1"),
        ];
        for (framework, id, executor, resources) in tasks {
            v.apply(
                FeedItem::TaskAdded {
                    framework: framework.into(),
                    id: id.into(),
                    name: if id == "t3" {
                        String::new()
                    } else {
                        format!("name {id}")
                    },
                    executor: executor.into(),
                    agent: "a1".into(),
                    state: TaskState::TaskStaging,
                    resources: resources.parse().unwrap(),
                },
                1.0,
            );
        }
        let updates = [
            ("f1", "t1", status(TaskState::TaskStarting, 0.0)),
            (
                "f1",
                "t1",
                StatusRecord {
                    healthy: Some(false),
                    message: "slow".into(),
                    reason: Some(0),
                    ..status(TaskState::TaskRunning, 2.5)
                },
            ),
            ("f2", "t4", status(TaskState::TaskFinished, 3.0)),
            ("f2", "t5", status(TaskState::TaskUnreachable, 4.0)),
        ];
        for (framework, id, status) in updates {
            v.apply(
                FeedItem::TaskUpdated {
                    framework: framework.into(),
                    id: id.into(),
                    agent: "a1".into(),
                    status,
                },
                5.0,
            );
        }
        v
    }

    #[test]
    fn tasks_are_written_as_prost_writes_them() {
        let v = view();
        let all = |_: &str| true;
        let seen = v.tasks_seen(&all);
        assert_eq!(
            (
                seen.live.len(),
                seen.completed.len(),
                seen.unreachable.len()
            ),
            (3, 1, 1)
        );
        assert_eq!(
            get_tasks_response(&seen),
            expected(ResponseType::GetTasks, v.get_tasks(&all), None)
        );
        let state = v.get_state(&|_| true, &all);
        assert_eq!(
            get_state_response(&seen, state.clone()),
            expected(
                ResponseType::GetState,
                state.get_tasks.clone().unwrap_or_default(),
                Some(state)
            )
        );
        // A reader that sees nothing gets the empty lists.
        let none = |_: &str| false;
        assert_eq!(
            get_tasks_response(&v.tasks_seen(&none)),
            expected(ResponseType::GetTasks, v.get_tasks(&none), None)
        );
    }
}
