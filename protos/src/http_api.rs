//! How the v1 HTTP APIs' calls and events cross the wire: JSON (Mesos's mapping, see
//! [`crate::mesos_json`]) or protobuf (Mesos's field numbers), events framed in RecordIO
//! (`<length>\n<bytes>`), and which of the two a request asks for (`Content-Type`, `Accept`).
//!
//! ```
//! use protos::http_api::{next_record, Encoding};
//! use protos::v1::scheduler::{event, Event};
//!
//! let heartbeat = Event { r#type: event::Type::Heartbeat as i32, ..Default::default() };
//! let mut stream = Encoding::Json.record(&heartbeat).to_vec();
//! let record = next_record(&mut stream).unwrap().unwrap();
//! assert_eq!(record, br#"{"type":"HEARTBEAT"}"#);
//! ```

use bytes::Bytes;
use prost::Message;

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/x-protobuf`.
pub const PROTOBUF: &str = "application/x-protobuf";

/// A request's or a stream's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Mesos's JSON.
    Json,
    /// Protobuf.
    Protobuf,
}

impl Encoding {
    /// The encoding of a `Content-Type` (parameters such as `; charset=utf-8` ignored).
    pub fn of_content_type(value: Option<&str>) -> Option<Encoding> {
        match value?.split(';').next()?.trim() {
            JSON => Some(Encoding::Json),
            PROTOBUF => Some(Encoding::Protobuf),
            _ => None,
        }
    }

    /// The encoding an `Accept` header allows, preferring `fallback` (the request's own) when
    /// it allows both or says nothing; `None` when it allows neither.
    pub fn accepted(value: Option<&str>, fallback: Encoding) -> Option<Encoding> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Some(fallback);
        };
        let types: Vec<&str> = value
            .split(',')
            .filter_map(|t| t.split(';').next())
            .map(str::trim)
            .collect();
        let allows = |e: Encoding| {
            types
                .iter()
                .any(|t| *t == e.content_type() || *t == "*/*" || *t == "application/*")
        };
        [fallback, fallback.other()]
            .into_iter()
            .find(|e| allows(*e))
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => JSON,
            Encoding::Protobuf => PROTOBUF,
        }
    }

    fn other(self) -> Encoding {
        match self {
            Encoding::Json => Encoding::Protobuf,
            Encoding::Protobuf => Encoding::Json,
        }
    }

    /// Decodes a call (or any message) from a request body.
    pub fn decode<M: Message + prost::Name + Default>(self, body: &[u8]) -> Result<M, String> {
        let name = M::NAME;
        match self {
            Encoding::Protobuf => {
                M::decode(body).map_err(|e| format!("the body is not a protobuf {name}: {e}"))
            }
            Encoding::Json => {
                let value: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| format!("the body is not JSON: {e}"))?;
                crate::mesos_json::from_json(&value)
                    .map_err(|e| format!("the body is not a {name}: {e}"))
            }
        }
    }

    /// A response (or any message) as a body.
    pub fn body<M: Message + prost::Name>(self, message: &M) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            // Every message of Keel's protos has a JSON form (the descriptors come with them).
            Encoding::Json => crate::mesos_json::to_json(message)
                .map(|value| value.to_string().into_bytes())
                .unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    /// An event (or any message) as one RecordIO record.
    pub fn record<M: Message + prost::Name>(self, event: &M) -> Bytes {
        let payload = self.body(event);
        let mut record = format!("{}\n", payload.len()).into_bytes();
        record.extend_from_slice(&payload);
        Bytes::from(record)
    }
}

/// Why a v1 API request was refused before its call was acted on: the HTTP status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 405, 406 or 415.
    pub status: u16,
    /// What was wrong, for the response body.
    pub why: String,
}

impl Refusal {
    fn new(status: u16, why: impl Into<String>) -> Refusal {
        Refusal {
            status,
            why: why.into(),
        }
    }
}

/// The call an API request carries (`POST` to `path`, JSON or protobuf) and its encoding:
/// `405` for another method, `415` for another content type, `400` for a body that is not an
/// `M`.
pub fn read_call<M: Message + prost::Name + Default>(
    path: &str,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Encoding, M), Refusal> {
    if method != "POST" {
        return Err(Refusal::new(405, format!("POST a Call to {path}")));
    }
    let encoding = Encoding::of_content_type(content_type).ok_or_else(|| {
        Refusal::new(
            415,
            "Content-Type must be application/json or application/x-protobuf",
        )
    })?;
    let call = encoding
        .decode(body)
        .map_err(|why| Refusal::new(400, why))?;
    Ok((encoding, call))
}

/// [`read_call`] for a call answered with a body: the call, and the encoding of the answer
/// (`Accept` honoured, `406` when it allows neither encoding).
pub fn read_call_to_answer<M: Message + prost::Name + Default>(
    path: &str,
    method: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: &[u8],
) -> Result<(Encoding, M), Refusal> {
    let (encoding, call) = read_call(path, method, content_type, body)?;
    Ok((stream_encoding(accept, encoding)?, call))
}

/// The encoding of a stream whose request said `accept` and came in `request`: `406` when
/// `accept` allows neither.
pub fn stream_encoding(accept: Option<&str>, request: Encoding) -> Result<Encoding, Refusal> {
    Encoding::accepted(accept, request).ok_or_else(|| {
        Refusal::new(
            406,
            "Accept must allow application/json or application/x-protobuf",
        )
    })
}

/// The longest record [`next_record`] accepts: a length beyond it is a broken or hostile
/// stream, not one to buffer.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// Splits RecordIO records off the front of `buffer` (clients read streams with this). The
/// answer depends only on the bytes, never on how they arrived: a length line is at most 20
/// characters before its newline, whether or not the newline is buffered yet.
pub fn next_record(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    const MAX_LENGTH_LINE: usize = 20;
    let Some(newline) = buffer
        .iter()
        .take(MAX_LENGTH_LINE + 1)
        .position(|b| *b == b'\n')
    else {
        if buffer.len() > MAX_LENGTH_LINE {
            return Err("a RecordIO length longer than 20 digits".into());
        }
        return Ok(None);
    };
    let length: usize = std::str::from_utf8(&buffer[..newline])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| "a RecordIO length that is not a number".to_owned())?;
    if length > MAX_RECORD_BYTES {
        return Err(format!(
            "a RecordIO record of {length} bytes, over the limit of {MAX_RECORD_BYTES}"
        ));
    }
    let end = newline + 1 + length;
    if buffer.len() < end {
        return Ok(None);
    }
    let record = buffer[newline + 1..end].to_vec();
    buffer.drain(..end);
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::scheduler::{event, Event};

    #[test]
    fn accept_headers_choose_the_encoding() {
        let json = Encoding::Json;
        assert_eq!(Encoding::accepted(None, json), Some(json));
        assert_eq!(Encoding::accepted(Some("*/*"), json), Some(json));
        assert_eq!(
            Encoding::accepted(Some("application/x-protobuf"), json),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::accepted(Some("text/html"), json), None);
        assert_eq!(
            Encoding::of_content_type(Some("application/json; charset=utf-8")),
            Some(json)
        );
        assert_eq!(Encoding::of_content_type(Some("text/plain")), None);
    }

    #[test]
    fn records_round_trip_in_both_encodings() {
        let event = Event {
            r#type: event::Type::Heartbeat as i32,
            ..Default::default()
        };
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let mut buffer = encoding.record(&event).to_vec();
            buffer.extend_from_slice(b"3\nab");
            let first = next_record(&mut buffer).unwrap().unwrap();
            match encoding {
                Encoding::Protobuf => assert_eq!(Event::decode(&first[..]).unwrap(), event),
                Encoding::Json => {
                    let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
                    assert_eq!(v["type"], "HEARTBEAT");
                }
            }
            assert_eq!(next_record(&mut buffer).unwrap(), None, "incomplete");
            buffer.push(b'c');
            assert_eq!(next_record(&mut buffer).unwrap().unwrap(), b"abc");
        }
        assert!(next_record(&mut b"x\n".to_vec()).is_err());
    }
}
