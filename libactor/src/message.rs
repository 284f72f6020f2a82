//! What travels between processes: protobuf messages, kept typed on the local path and encoded
//! once on the remote path.

use std::any::{Any, TypeId};

use bytes::Bytes;
use bytestring::ByteString;

use crate::Upid;

/// A message a process can send and handle: any prost-generated type with a known full name.
///
/// Every type in the `protos` crate qualifies (its build enables `prost::Name`). Handlers are
/// keyed by [`prost::Name::full_name`], e.g. `keel.internal.RegisterSlaveMessage`.
pub trait Message: prost::Message + prost::Name + Default + Clone + Send + 'static {}

impl<T> Message for T where T: prost::Message + prost::Name + Default + Clone + Send + 'static {}

/// Names of a message type, reachable through one pointer so that local payloads stay small.
pub(crate) struct MessageMeta {
    /// The short type name (`Ping`), for spans and logs without allocating.
    short: &'static str,
    /// Computes the full protobuf name; called only when a filter or an error needs it.
    full: fn() -> String,
    /// Encodes a local value of this type (a filter duplicating a local message).
    encode: fn(&(dyn Any + Send)) -> Bytes,
}

/// The [`MessageMeta`] of each message type, as a promoted constant.
trait HasMeta {
    const META: &'static MessageMeta;
}

impl<M: Message> HasMeta for M {
    const META: &'static MessageMeta = &MessageMeta {
        short: M::NAME,
        full: M::full_name,
        encode: |value| {
            value
                .downcast_ref::<M>()
                .map(|m| Bytes::from(prost::Message::encode_to_vec(m)))
                .unwrap_or_default()
        },
    };
}

/// A typed message on the local path. Messages of up to 64 bytes (a Ping with its payload
/// handle, most acknowledgements) live inline, saving an allocation per local send; larger
/// ones go to the heap.
pub(crate) type LocalValue = smallbox::SmallBox<dyn Any + Send, smallbox::space::S8>;

/// A message body on its way to a process.
pub(crate) enum Payload {
    /// Sent on this node: the typed value itself, never encoded.
    Local {
        value: LocalValue,
        meta: &'static MessageMeta,
    },
    /// Arrived from the network or an HTTP post: the name and encoded body from the frame.
    Encoded { name: ByteString, body: Bytes },
}

impl Payload {
    /// Wraps a typed value for a local send.
    pub(crate) fn local<M: Message>(msg: M) -> Payload {
        Payload::Local {
            value: smallbox::smallbox!(msg),
            meta: <M as HasMeta>::META,
        }
    }

    /// A second copy of the message, encoded (what a network that duplicates would deliver).
    pub(crate) fn duplicate(&self) -> Payload {
        match self {
            Payload::Local { value, meta } => Payload::Encoded {
                name: (meta.full)().into(),
                body: (meta.encode)(&**value),
            },
            Payload::Encoded { name, body } => Payload::Encoded {
                name: name.clone(),
                body: body.clone(),
            },
        }
    }

    /// The full protobuf name of the message.
    pub(crate) fn full_name(&self) -> String {
        match self {
            Payload::Local { meta, .. } => (meta.full)(),
            Payload::Encoded { name, .. } => name.to_string(),
        }
    }

    /// A short name for spans and logs.
    pub(crate) fn short_name(&self) -> &str {
        match self {
            Payload::Local { meta, .. } => meta.short,
            Payload::Encoded { name, .. } => name.rsplit('.').next().unwrap_or(name),
        }
    }

    /// Whether this payload holds (or encodes) a message of type `M`.
    pub(crate) fn is<M: Message>(&self) -> bool {
        match self {
            Payload::Local { value, .. } => Any::type_id(&**value) == TypeId::of::<M>(),
            Payload::Encoded { name, .. } => names_equal::<M>(name),
        }
    }

    /// A copy of the message as `M`, if it is one and (for encoded payloads) decodes.
    pub(crate) fn to_typed<M: Message>(&self) -> Option<M> {
        match self {
            Payload::Local { value, .. } => value.downcast_ref::<M>().cloned(),
            Payload::Encoded { name, body } if names_equal::<M>(name) => {
                M::decode(body.clone()).ok()
            }
            Payload::Encoded { .. } => None,
        }
    }

    /// Takes the message as `M`: moves a local value, decodes an encoded one.
    pub(crate) fn into_typed<M: Message>(self) -> Result<M, DecodeError> {
        match self {
            Payload::Local { value, meta } => value
                .downcast::<M>()
                .map(|b| b.into_inner())
                .map_err(|_| DecodeError::WrongType((meta.full)())),
            Payload::Encoded { body, name } => {
                M::decode(body).map_err(|e| DecodeError::Body(name.to_string(), e.to_string()))
            }
        }
    }
}

/// Compares a wire name with `M`'s full name without allocating.
pub(crate) fn names_equal<M: prost::Name>(name: &str) -> bool {
    if M::PACKAGE.is_empty() {
        return name == M::NAME;
    }
    name.len() == M::PACKAGE.len() + 1 + M::NAME.len()
        && name.starts_with(M::PACKAGE)
        && name.as_bytes()[M::PACKAGE.len()] == b'.'
        && name.ends_with(M::NAME)
}

/// Why a delivered message could not be handed to its handler.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("local payload is not the handler's type (it is {0})")]
    WrongType(String),
    #[error("body of {0} does not decode: {1}")]
    Body(String, String),
}

/// What proves who sent a message.
#[derive(Debug, Clone, Default)]
pub(crate) enum Proof {
    /// Sent by a process on this node: the node's own identity.
    #[default]
    Local,
    /// Arrived on a connection whose peer proved this identity.
    Peer(std::sync::Arc<crate::tls::Identity>),
    /// Arrived on a plaintext connection of an insecure node: nothing is proven.
    Unproven,
}

/// One message delivered into a process's mailbox.
pub(crate) struct Delivery {
    pub(crate) from: Upid,
    /// Who the transport proved sent it; `from` is only a claim.
    pub(crate) proof: Proof,
    pub(crate) payload: Payload,
    /// Held while a message that arrived over the network is queued or handled: it counts
    /// against the node's inbound limit until dropped.
    pub(crate) permit: Option<crate::transport::InboundPermit>,
}

impl Delivery {
    /// A second delivery of the same message from the same sender (it holds no inbound permit:
    /// the network made it).
    pub(crate) fn duplicate(&self) -> Delivery {
        Delivery {
            from: self.from.clone(),
            proof: self.proof.clone(),
            payload: self.payload.duplicate(),
            permit: None,
        }
    }
}
