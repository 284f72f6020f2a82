//! Targets for what arrives on the wire outside a connection's framing: RecordIO streams, the
//! v1 APIs' calls in JSON and protobuf, and `keelctl send`'s JSON.

use prost::Message;
use protos::http_api::{next_record, Encoding};

/// Splits `data` into RecordIO records as a client reading a stream does, fed whole and fed
/// in two pieces cut where its first byte says: both must read the same records, fail alike,
/// and consume at least a length digit and a newline per record.
pub(crate) fn recordio(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let whole = read_records(&[stream]);
    let pieces = read_records(&[&stream[..cut], &stream[cut..]]);
    // Errors may say different things (what was seen first); that one is an error may not.
    assert_eq!(
        whole.as_ref().ok(),
        pieces.as_ref().ok(),
        "the cut changed what was read"
    );
    if let Ok((records, left)) = whole {
        let framing = 2 * records.len();
        let payload: usize = records.iter().map(Vec::len).sum();
        assert!(stream.len() - left >= payload + framing);
    }
}

/// The records read from `pieces` arriving in turn and the bytes left buffered, or the error.
fn read_records(pieces: &[&[u8]]) -> Result<(Vec<Vec<u8>>, usize), String> {
    let mut buffer = Vec::new();
    let mut records = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        while let Some(record) = next_record(&mut buffer)? {
            records.push(record);
        }
    }
    Ok((records, buffer.len()))
}

/// Decodes a call as the v1 API does (first byte even: JSON, odd: protobuf); a call that
/// decodes encodes again, in both encodings, to one that decodes equal.
fn v1_call<M>(data: &[u8])
where
    M: Message + prost::Name + Default + PartialEq,
{
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let encoding = if kind % 2 == 0 {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let Ok(call) = encoding.decode::<M>(body) else {
        return;
    };
    for again in [Encoding::Json, Encoding::Protobuf] {
        let bytes = again.body(&call);
        let back: M = again
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{again:?} of a decoded call does not decode: {e}"));
        // A NaN (a double field can hold one) is not equal to itself: such calls are compared
        // as Mesos's JSON writes them ("NaN"), which is what a client would see.
        let same = back == call || Encoding::Json.body(&back) == Encoding::Json.body(&call);
        assert!(same, "{again:?} round trip changed the call");
    }
}

/// `POST /api/v1/scheduler` bodies.
pub(crate) fn v1_scheduler_call(data: &[u8]) {
    v1_call::<protos::v1::scheduler::Call>(data)
}

/// `POST /api/v1/executor` bodies.
pub(crate) fn v1_executor_call(data: &[u8]) {
    v1_call::<protos::v1::executor::Call>(data)
}

/// `POST /api/v1` (operator) bodies.
pub(crate) fn v1_operator_call(data: &[u8]) {
    v1_call::<protos::v1::master::Call>(data)
}

/// `keelctl send <Name> <json>`: the first line is the message name, the rest its JSON.
pub(crate) fn keelctl_send(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, json) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok((full_name, body)) = keel::send_message::encode(name, json) {
        assert!(full_name.ends_with(name.trim().rsplit('.').next().unwrap_or("")));
        assert!(body.len() <= keel::send_message::MAX_JSON_BYTES * 8);
    }
}
