//! `keelctl send`: turn `<MessageName> <json>` into the protobuf message of that name (through
//! the descriptors `protos` compiles, so every Keel message works with no hand-written
//! mapping) and post it to a process the way libprocess peers do.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use libactor::http_client::{request_over, HttpError};

/// Largest JSON document accepted for one message.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Why a message could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No message has that name.
    #[error("no message called {0:?} (try a full name such as keel.internal.ReviveOffersMessage)")]
    UnknownMessage(String),
    /// More than one message has that short name.
    #[error("{name:?} is ambiguous: {candidates}")]
    Ambiguous {
        /// The name given.
        name: String,
        /// The full names it could mean.
        candidates: String,
    },
    /// The JSON is malformed or does not fit the message.
    #[error("JSON does not fit {message}: {why}")]
    BadJson {
        /// The message's full name.
        message: String,
        /// What is wrong.
        why: String,
    },
    /// The JSON is too large.
    #[error("JSON is {0} bytes; at most {MAX_JSON_BYTES} are accepted")]
    TooLarge(usize),
    /// The HTTP request failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The node refused the message.
    #[error("{to} answered {status}: {body}")]
    Refused {
        /// The receiver.
        to: String,
        /// Status code.
        status: u16,
        /// Body text.
        body: String,
    },
}

/// Finds a message by full name (`keel.internal.ReviveOffersMessage`) or by short name
/// (`ReviveOffersMessage`) when only one message has it.
pub fn find_message(name: &str) -> Result<MessageDescriptor, SendError> {
    let pool = protos::mesos_json::descriptor_pool();
    if let Some(m) = pool.get_message_by_name(name) {
        return Ok(m);
    }
    let matches: Vec<MessageDescriptor> =
        pool.all_messages().filter(|m| m.name() == name).collect();
    match matches.len() {
        0 => Err(SendError::UnknownMessage(name.to_owned())),
        1 => Ok(matches.into_iter().next().expect("one match")),
        _ => Err(SendError::Ambiguous {
            name: name.to_owned(),
            candidates: matches
                .iter()
                .map(|m| m.full_name().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Encodes `json` as the message `name`; returns its full name and bytes. Field names are the
/// proto names or their lowerCamelCase JSON names, as in protobuf's JSON mapping.
pub fn encode(name: &str, json: &str) -> Result<(String, Bytes), SendError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(SendError::TooLarge(json.len()));
    }
    let descriptor = find_message(name)?;
    let full = descriptor.full_name().to_owned();
    let mut de = serde_json::Deserializer::from_str(json);
    let message =
        DynamicMessage::deserialize(descriptor, &mut de).map_err(|e| SendError::BadJson {
            message: full.clone(),
            why: e.to_string(),
        })?;
    de.end().map_err(|e| SendError::BadJson {
        message: full.clone(),
        why: e.to_string(),
    })?;
    Ok((full, Bytes::from(message.encode_to_vec())))
}

/// Posts message `name` built from `json` to process `to`, as `from`; over HTTPS with `tls`'s
/// certificate when given (a secure node takes posts only so).
pub async fn send(
    from: &libactor::Upid,
    to: &libactor::Upid,
    name: &str,
    json: &str,
    tls: Option<&libactor::TlsConfig>,
) -> Result<String, SendError> {
    let (full, body) = encode(name, json)?;
    let path = format!("/{}/{}", to.id(), full);
    let reply = request_over(
        to.address(),
        tls,
        "POST",
        &path,
        &[("libprocess-from", from.to_string())],
        body,
    )
    .await?;
    if reply.status != 202 {
        return Err(SendError::Refused {
            to: to.to_string(),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        });
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_find_the_same_message() {
        let a = find_message("ReviveOffersMessage").unwrap();
        let b = find_message("keel.internal.ReviveOffersMessage").unwrap();
        assert_eq!(a.full_name(), b.full_name());
        assert!(matches!(
            find_message("NoSuchMessage"),
            Err(SendError::UnknownMessage(_))
        ));
    }

    #[test]
    fn json_becomes_the_same_bytes_as_the_typed_message() {
        let (full, bytes) = encode(
            "ReviveOffersMessage",
            r#"{"frameworkId": {"value": "F1"}, "roles": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(full, "keel.internal.ReviveOffersMessage");
        let typed = protos::internal::ReviveOffersMessage {
            framework_id: Some(protos::v1::FrameworkId { value: "F1".into() }),
            roles: vec!["a".into()],
        };
        assert_eq!(bytes, Bytes::from(typed.encode_to_vec()));
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        for bad in [
            "{",
            "[]",
            r#"{"noSuchField": 1}"#,
            r#"{"roles": 7}"#,
            "{} trailing",
        ] {
            assert!(
                matches!(
                    encode("ReviveOffersMessage", bad),
                    Err(SendError::BadJson { .. })
                ),
                "{bad}"
            );
        }
    }
}
