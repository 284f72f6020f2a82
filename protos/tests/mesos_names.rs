//! The protocol keeps Mesos's names and enum numbers, and its messages survive encoding.

use prost::{Message, Name};
use protos::internal::{RegisterSlaveMessage, StatusUpdate, StatusUpdateMessage};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{AgentInfo, Resource, TaskId, TaskState, TaskStatus, Value};

#[test]
fn full_names_are_the_handler_keys() {
    assert_eq!(
        RegisterSlaveMessage::full_name(),
        "keel.internal.RegisterSlaveMessage"
    );
    assert_eq!(TaskStatus::full_name(), "keel.v1.TaskStatus");
}

#[test]
fn task_states_and_reasons_keep_mesos_numbers() {
    assert_eq!(TaskState::TaskStaging as i32, 6);
    assert_eq!(TaskState::TaskStarting as i32, 0);
    assert_eq!(TaskState::TaskKilling as i32, 8);
    assert_eq!(TaskState::TaskUnreachable as i32, 10);
    assert_eq!(TaskState::TaskGone as i32, 11);
    assert_eq!(Reason::ContainerLimitationMemory as i32, 8);
    assert_eq!(Reason::AgentRemoved as i32, 11);
    assert_eq!(TaskState::TaskLost.as_str_name(), "TASK_LOST");
}

#[test]
fn status_update_round_trip_keeps_an_explicit_zero_reason() {
    // REASON_COMMAND_EXECUTOR_FAILED is 0: presence, not the value, says a reason was given.
    let status = TaskStatus {
        task_id: Some(TaskId {
            value: "t-1".into(),
        }),
        state: TaskState::TaskFailed as i32,
        reason: Some(Reason::CommandExecutorFailed as i32),
        source: Source::Executor as i32,
        message: "exit status 3".into(),
        ..Default::default()
    };
    let msg = StatusUpdateMessage {
        update: Some(StatusUpdate {
            status: Some(status.clone()),
            ..Default::default()
        }),
        pid: "slave(1)@127.0.0.1:5051".into(),
    };
    let back = StatusUpdateMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, msg);
    let unset = TaskStatus {
        reason: None,
        ..status
    };
    let back = TaskStatus::decode(unset.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.reason, None);
}

#[test]
fn agent_resources_round_trip() {
    let cpus = Resource {
        name: "cpus".into(),
        r#type: protos::v1::value::Type::Scalar as i32,
        scalar: Some(protos::v1::value::Scalar { value: 4.0 }),
        ..Default::default()
    };
    let ports = Resource {
        name: "ports".into(),
        r#type: protos::v1::value::Type::Ranges as i32,
        ranges: Some(protos::v1::value::Ranges {
            range: vec![protos::v1::value::Range {
                begin: 31000,
                end: 32000,
            }],
        }),
        ..Default::default()
    };
    let info = AgentInfo {
        hostname: "node-1".into(),
        port: 5051,
        resources: vec![cpus, ports],
        ..Default::default()
    };
    let back = AgentInfo::decode(info.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, info);
    let _: Value = Value::default();
}
