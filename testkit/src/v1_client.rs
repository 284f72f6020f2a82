//! A minimal client of Mesos's v1 HTTP APIs as tests speak them: a call posted in JSON (Mesos's
//! mapping) or protobuf, and a `SUBSCRIBE` stream read record by record, each decoded and, for
//! JSON, kept raw too so that tests can check the exact shape a Mesos client would see.

use std::time::Duration;

use libactor::http_client::{open_stream, request_over, StreamReply};
use libactor::TlsConfig;
use prost::Message;
use protos::http_api::{next_record, Encoding};

/// How long a test waits for each record.
pub const RECORD_WAIT: Duration = Duration::from_secs(30);

/// `message` as a request body in `encoding`.
pub fn body<M: Message + prost::Name>(encoding: Encoding, message: &M) -> Vec<u8> {
    encoding.body(message)
}

/// What a v1 call got back: the status, the body, and the headers.
#[derive(Debug)]
pub struct CallReply {
    /// HTTP status.
    pub status: u16,
    /// The body as sent.
    pub body: Vec<u8>,
    /// The `Content-Type`.
    pub content_type: Option<String>,
}

impl CallReply {
    /// The body decoded as `M` in `encoding` (panics if it is not one: the test's failure).
    pub fn decode<M: Message + prost::Name + Default>(&self, encoding: Encoding) -> M {
        encoding
            .decode(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text (for refusals).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Posts `body` to `path` on `address` as `content_type`, with `headers` besides.
pub async fn post(
    address: &str,
    tls: Option<&TlsConfig>,
    path: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> CallReply {
    let mut all = vec![("content-type", content_type.to_owned())];
    all.extend(headers.iter().cloned());
    let reply = request_over(address, tls, "POST", path, &all, body.into())
        .await
        .expect("the node answers");
    CallReply {
        status: reply.status,
        content_type: reply.header("content-type").map(str::to_owned),
        body: reply.body.to_vec(),
    }
}

/// An open `SUBSCRIBE` stream of events `E`.
pub struct EventStream<E> {
    reply: StreamReply,
    buffer: Vec<u8>,
    encoding: Encoding,
    _events: std::marker::PhantomData<E>,
}

impl<E: Message + prost::Name + Default> EventStream<E> {
    /// Subscribes at `path` with `body` (a `SUBSCRIBE` call in `encoding`, which is also what
    /// the stream is asked for); panics unless answered `200` in that encoding.
    pub async fn open(
        address: &str,
        tls: Option<&TlsConfig>,
        path: &str,
        encoding: Encoding,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> EventStream<E> {
        let mut all = vec![
            ("content-type", encoding.content_type().to_owned()),
            ("accept", encoding.content_type().to_owned()),
        ];
        all.extend(headers.iter().cloned());
        let reply = open_stream(address, tls, "POST", path, &all, body.into())
            .await
            .expect("SUBSCRIBE is answered");
        assert_eq!(reply.status, 200, "SUBSCRIBE to {path}");
        assert_eq!(reply.header("content-type"), Some(encoding.content_type()));
        EventStream {
            reply,
            buffer: Vec::new(),
            encoding,
            _events: std::marker::PhantomData,
        }
    }

    /// The stream's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// A response header of the subscription.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.reply.header(name)
    }

    /// The next event, with its raw JSON when the stream is JSON; `None` once the stream
    /// ends. Panics after [`RECORD_WAIT`].
    pub async fn next(&mut self) -> Option<(E, Option<serde_json::Value>)> {
        tokio::time::timeout(RECORD_WAIT, async {
            loop {
                if let Some(record) = next_record(&mut self.buffer).expect("well-formed RecordIO") {
                    return Some(match self.encoding {
                        Encoding::Protobuf => (E::decode(&record[..]).expect("an event"), None),
                        Encoding::Json => {
                            let value: serde_json::Value =
                                serde_json::from_slice(&record).expect("JSON");
                            let event = protos::mesos_json::from_json(&value).expect("an event");
                            (event, Some(value))
                        }
                    });
                }
                match self.reply.next_chunk().await {
                    Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        })
        .await
        .expect("an event in time")
    }

    /// The next event `pick` accepts, skipping others.
    pub async fn until(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&E) -> bool,
    ) -> (E, Option<serde_json::Value>) {
        loop {
            match self.next().await {
                Some((event, json)) if pick(&event) => return (event, json),
                Some(_) => {}
                None => panic!("the stream ended while waiting for {what}"),
            }
        }
    }
}
