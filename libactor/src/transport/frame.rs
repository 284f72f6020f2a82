//! The actor protocol on the wire.
//!
//! A connection opens with [`PREAMBLE`] (its first byte, NUL, can never start an HTTP request,
//! which is how the node's one port tells the two protocols apart). Then come frames: a 4-byte
//! big-endian length and that many bytes of a `keel.libactor.Envelope` protobuf.
//!
//! The decoder never trusts a length: a frame over the limit is skipped byte by byte without
//! being buffered, so a hostile length cannot make the node allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

/// The bytes that open an actor-protocol connection: NUL, `KEEL`, protocol version 2 (version
/// 2 opens with a [`protos::libactor::Hello`] frame).
pub const PREAMBLE: &[u8; 6] = b"\0KEEL\x02";

/// Bytes of the length prefix before each frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The full protobuf name of a message, as two static parts so that it is written without
/// allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireName {
    package: &'static str,
    name: &'static str,
}

impl WireName {
    pub(crate) fn of<M: prost::Name>() -> WireName {
        WireName {
            package: M::PACKAGE,
            name: M::NAME,
        }
    }

    fn len(&self) -> usize {
        if self.package.is_empty() {
            self.name.len()
        } else {
            self.package.len() + 1 + self.name.len()
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        if !self.package.is_empty() {
            buf.put_slice(self.package.as_bytes());
            buf.put_u8(b'.');
        }
        buf.put_slice(self.name.as_bytes());
    }
}

impl std::fmt::Display for WireName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.package.is_empty() {
            f.write_str(self.name)
        } else {
            write!(f, "{}.{}", self.package, self.name)
        }
    }
}

fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_field_header(tag: u32, len: usize, buf: &mut BytesMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// Bytes on the wire (prefix included) of a frame carrying `{from, to, name, body}`.
pub(crate) fn frame_len(from: &str, to: &str, name: WireName, body_len: usize) -> usize {
    LENGTH_PREFIX_BYTES + envelope_len(from, to, name, body_len)
}

fn envelope_len(from: &str, to: &str, name: WireName, body_len: usize) -> usize {
    field_len(1, from.len())
        + field_len(2, to.len())
        + field_len(3, name.len())
        + if body_len == 0 {
            0
        } else {
            field_len(4, body_len)
        }
}

/// Appends one length-prefixed frame holding the envelope `{from, to, name, body}` to `buf`,
/// byte-for-byte what prost would encode for `protos::libactor::Envelope`. The body is encoded
/// straight into `buf` by `body` (which must write exactly `body_len` bytes), so a message is
/// encoded once, with no intermediate buffer.
pub(crate) fn encode_frame_with(
    buf: &mut BytesMut,
    from: &str,
    to: &str,
    name: WireName,
    body_len: usize,
    body: impl FnOnce(&mut BytesMut),
) {
    let len = envelope_len(from, to, name, body_len);
    buf.reserve(LENGTH_PREFIX_BYTES + len);
    buf.put_u32(len as u32);
    put_field_header(1, from.len(), buf);
    buf.put_slice(from.as_bytes());
    put_field_header(2, to.len(), buf);
    buf.put_slice(to.as_bytes());
    put_field_header(3, name.len(), buf);
    name.put(buf);
    if body_len > 0 {
        put_field_header(4, body_len, buf);
        let before = buf.len();
        body(buf);
        debug_assert_eq!(
            buf.len() - before,
            body_len,
            "body encoder wrote its announced length"
        );
    }
}

/// Appends a frame whose body is already encoded.
#[cfg(test)]
pub(crate) fn encode_frame(buf: &mut BytesMut, from: &str, to: &str, name: WireName, body: &[u8]) {
    encode_frame_with(buf, from, to, name, body.len(), |b| b.put_slice(body));
}

/// An envelope read from a frame without copying: the addresses borrow the frame, name and
/// body share its memory.
#[derive(Debug)]
pub(crate) struct RawEnvelope<'a> {
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) name: bytestring::ByteString,
    pub(crate) body: Bytes,
}

/// Why a frame is not an envelope.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("envelope does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("envelope field {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("envelope field {0} runs past the end of the frame")]
    Truncated(u32),
}

/// Parses `keel.libactor.Envelope` from `frame` without copying (prost would copy the three
/// strings). Unknown fields are skipped, as protobuf requires.
pub(crate) fn parse_envelope(frame: &Bytes) -> Result<RawEnvelope<'_>, EnvelopeError> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext};
    let mut cursor: &[u8] = frame;
    let mut fields = [0..0, 0..0, 0..0, 0..0];
    while !cursor.is_empty() {
        let (tag, wire_type) = decode_key(&mut cursor)?;
        if (1..=4).contains(&tag) && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut cursor)?;
            if len > cursor.len() as u64 {
                return Err(EnvelopeError::Truncated(tag));
            }
            let start = frame.len() - cursor.len();
            fields[tag as usize - 1] = start..start + len as usize;
            cursor = &cursor[len as usize..];
        } else {
            skip_field(wire_type, tag, &mut cursor, DecodeContext::default())?;
        }
    }
    let [from, to, name, body] = fields;
    let text = |range: std::ops::Range<usize>, field: &'static str| {
        std::str::from_utf8(&frame[range]).map_err(|_| EnvelopeError::NotUtf8(field))
    };
    Ok(RawEnvelope {
        from: text(from, "from")?,
        to: text(to, "to")?,
        name: bytestring::ByteString::try_from(frame.slice(name))
            .map_err(|_| EnvelopeError::NotUtf8("name"))?,
        body: frame.slice(body),
    })
}

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// One whole frame's payload (without the length prefix).
    Frame(Bytes),
    /// A frame over the size limit was skipped entirely; its announced length.
    Skipped(u64),
}

/// Splits a byte stream into frames, skipping those over `max_frame_bytes`.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    max_frame_bytes: usize,
    /// Bytes of an oversized frame still to discard, and its announced length.
    skipping: Option<(u64, u64)>,
}

impl FrameDecoder {
    pub(crate) fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            max_frame_bytes,
            skipping: None,
        }
    }

    /// The next frame in `buf`, consuming it; `None` when more bytes are needed.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Option<Decoded> {
        loop {
            if let Some((left, announced)) = self.skipping {
                let n = left.min(buf.len() as u64);
                buf.advance(n as usize);
                if n < left {
                    self.skipping = Some((left - n, announced));
                    return None;
                }
                self.skipping = None;
                return Some(Decoded::Skipped(announced));
            }
            if buf.len() < LENGTH_PREFIX_BYTES {
                return None;
            }
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > self.max_frame_bytes {
                buf.advance(LENGTH_PREFIX_BYTES);
                self.skipping = Some((len as u64, len as u64));
                continue;
            }
            if buf.len() < LENGTH_PREFIX_BYTES + len {
                buf.reserve(LENGTH_PREFIX_BYTES + len - buf.len());
                return None;
            }
            buf.advance(LENGTH_PREFIX_BYTES);
            return Some(Decoded::Frame(buf.split_to(len).freeze()));
        }
    }

    /// Whether the stream stopped inside a frame (bytes of a partial frame are buffered, or an
    /// oversized frame was still being skipped).
    pub(crate) fn mid_frame(&self, buf: &BytesMut) -> bool {
        self.skipping.is_some() || !buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use protos::libactor::examples::Ping;
    use protos::libactor::Envelope;

    #[test]
    fn encoding_matches_prost() {
        for body in [&b""[..], b"hello"] {
            let mut buf = BytesMut::new();
            encode_frame(
                &mut buf,
                "a@127.0.0.1:1",
                "b(1)@127.0.0.1:2",
                WireName::of::<Ping>(),
                body,
            );
            let expected = Envelope {
                from: "a@127.0.0.1:1".into(),
                to: "b(1)@127.0.0.1:2".into(),
                name: "keel.libactor.examples.Ping".into(),
                body: Bytes::copy_from_slice(body),
            };
            let mut decoder = FrameDecoder::new(1024);
            let Some(Decoded::Frame(frame)) = decoder.decode(&mut buf) else {
                panic!("a whole frame was encoded");
            };
            assert_eq!(frame, Bytes::from(expected.encode_to_vec()));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn parse_envelope_matches_prost_and_rejects_garbage() {
        let env = Envelope {
            from: "a@127.0.0.1:1".into(),
            to: "b@127.0.0.1:2".into(),
            name: "x.Y".into(),
            body: Bytes::from_static(b"\x08\x01"),
        };
        let frame = Bytes::from(env.encode_to_vec());
        let raw = parse_envelope(&frame).unwrap();
        assert_eq!(raw.from, "a@127.0.0.1:1");
        assert_eq!(raw.to, "b@127.0.0.1:2");
        assert_eq!(&*raw.name, "x.Y");
        assert_eq!(raw.body, env.body);
        assert!(parse_envelope(&Bytes::from_static(&[0xff; 7])).is_err());
        assert!(
            parse_envelope(&Bytes::from_static(&[0x0a, 0x05, b'a'])).is_err(),
            "length past end"
        );
        assert!(
            parse_envelope(&Bytes::from_static(&[0x0a, 0x02, 0xc3, 0x28])).is_err(),
            "not UTF-8"
        );
        // An unknown field (tag 9, varint) is skipped.
        let mut with_unknown = env.encode_to_vec();
        with_unknown.extend_from_slice(&[0x48, 0x01]);
        assert_eq!(
            &*parse_envelope(&Bytes::from(with_unknown)).unwrap().name,
            "x.Y"
        );
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut whole = BytesMut::new();
        encode_frame(&mut whole, "a@h:1", "b@h:2", WireName::of::<Ping>(), b"xyz");
        let mut decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let out = decoder.decode(&mut buf);
            if i + 1 < whole.len() {
                assert_eq!(out, None);
                assert!(decoder.mid_frame(&buf));
            } else {
                assert!(matches!(out, Some(Decoded::Frame(_))));
            }
        }
    }

    #[test]
    fn oversized_frames_are_skipped_without_buffering() {
        let mut decoder = FrameDecoder::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(1000);
        buf.put_slice(&[7u8; 600]);
        assert_eq!(decoder.decode(&mut buf), None);
        assert!(buf.is_empty(), "skipped bytes are discarded, not kept");
        buf.put_slice(&[7u8; 400]);
        buf.put_u32(3);
        buf.put_slice(b"abc");
        assert_eq!(decoder.decode(&mut buf), Some(Decoded::Skipped(1000)));
        assert_eq!(
            decoder.decode(&mut buf),
            Some(Decoded::Frame(Bytes::from_static(b"abc")))
        );
        assert!(!decoder.mid_frame(&buf));
    }
}
