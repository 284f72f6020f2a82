//! The metrics every node keeps about itself, looked up once at start so the hot path only
//! touches atomics. All live under `libactor/` in the node's registry.

use std::sync::Weak;

use crate::metrics::{Counter, Durations, Gauge, Metrics};
use crate::node::NodeInner;

macro_rules! node_counters {
    ($($field:ident => $name:literal : $doc:literal,)*) => {
        /// Cached handles of the node's own counters and timers.
        pub(crate) struct NodeMetrics {
            $(#[doc = $doc] pub(crate) $field: Counter,)*
            /// Time to answer an HTTP request.
            pub(crate) http_request_time: Durations,
            /// Streamed HTTP responses being served.
            pub(crate) http_streams_open: Gauge,
        }

        impl NodeMetrics {
            pub(crate) fn new(metrics: &Metrics) -> NodeMetrics {
                NodeMetrics {
                    $($field: metrics.counter($name),)*
                    http_request_time: metrics.durations("libactor/http/request_time"),
                    http_streams_open: metrics.gauge("libactor/http/streams_open"),
                }
            }
        }
    };
}

node_counters! {
    messages_sent_remote => "libactor/messages_sent_remote": "Messages handed to the transport for another node.",
    dropped_unknown_process => "libactor/dropped/unknown_process": "Messages for a process that does not run here.",
    dropped_unknown_message => "libactor/dropped/unknown_message": "Messages with no installed handler.",
    dropped_undecodable => "libactor/dropped/undecodable_body": "Messages whose body does not decode as its named type.",
    dropped_by_filter => "libactor/dropped/filtered": "Messages dropped by a test filter.",
    duplicated_by_filter => "libactor/filters/duplicated": "Messages a fault filter delivered twice.",
    delayed_by_filter => "libactor/filters/delayed": "Messages a fault filter held back.",
    dropped_send_queue_full => "libactor/dropped/send_queue_full": "Messages refused because a peer's send queue was full.",
    dropped_oversized => "libactor/dropped/oversized": "Messages not sent because their frame exceeds max_frame_bytes.",
    dropped_connection_lost => "libactor/dropped/connection_lost": "Queued messages lost when a connection failed.",
    processes_spawned => "libactor/processes_spawned": "Processes started.",
    processes_terminated => "libactor/processes_terminated": "Processes ended.",
    frames_sent => "libactor/transport/frames_sent": "Frames written to peers.",
    frames_received => "libactor/transport/frames_received": "Well-formed frames read from peers.",
    write_batches => "libactor/transport/write_batches": "Socket writes (each carries one or more frames).",
    malformed_frames => "libactor/transport/malformed_frames": "Frames whose envelope does not decode.",
    invalid_envelopes => "libactor/transport/invalid_envelopes": "Envelopes with a bad sender or receiver address.",
    oversized_frames => "libactor/transport/oversized_frames": "Frames over max_frame_bytes, skipped unread.",
    truncated_frames => "libactor/transport/truncated_frames": "Connections that ended in the middle of a frame.",
    bad_preambles => "libactor/transport/bad_preambles": "Connections that spoke neither HTTP nor the actor protocol.",
    connections_accepted => "libactor/transport/connections_accepted": "Inbound connections accepted.",
    connections_refused => "libactor/transport/connections_refused": "Inbound connections refused over max_connections or max_connections_per_ip.",
    pending_evicted => "libactor/transport/pending_evicted": "Connections closed still in their handshake, to make room for a newer one (max_pending_connections).",
    connect_failures => "libactor/transport/connect_failures": "Outbound connections that could not be made.",
    connections_broken => "libactor/transport/connections_broken": "Outbound connections that broke after being made.",
    inbound_throttled => "libactor/transport/inbound_throttled": "Times a connection paused reading because mailboxes were full.",
    http_requests => "libactor/http/requests": "HTTP requests served.",
    http_bad_requests => "libactor/http/bad_requests": "HTTP requests refused as malformed, oversized or unroutable.",
    http_message_posts => "libactor/http/message_posts": "Messages posted over HTTP (libprocess style).",
    http_unauthenticated => "libactor/http/unauthenticated": "HTTP requests refused (401) by a node that authenticates every request.",
    http_unauthorized => "libactor/http/unauthorized": "HTTP requests refused (403) because the proven principal may not call that endpoint.",
    http_streams_disconnected => "libactor/http/streams_disconnected": "Streamed HTTP responses cut off because their client stopped reading (its buffer was full).",
    tls_handshake_failures => "libactor/tls/handshake_failures": "TLS handshakes that failed (unknown CA, expired or malformed certificate, timeout).",
    refused_plaintext => "libactor/tls/refused_plaintext": "Plaintext actor-protocol connections refused by a secure node.",
    refused_unauthenticated => "libactor/tls/refused_unauthenticated": "Actor-protocol connections or message posts without a client certificate, refused.",
    dropped_unauthenticated_sender => "libactor/dropped/unauthenticated_sender": "Messages whose claimed sender is not on the node their connection proved.",
    refused_unauthorized => "libactor/refused/unauthorized": "Messages a handler refused: the proven sender lacks the role it needs.",
}

impl NodeMetrics {
    /// Gauges computed when metrics are read; they hold the node weakly.
    pub(crate) fn register_gauges(metrics: &Metrics, node: Weak<NodeInner>) {
        let n = node.clone();
        metrics.gauge_fn("libactor/messages_received", move || {
            n.upgrade().map_or(0.0, |n| n.messages_received() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/processes", move || {
            n.upgrade().map_or(0.0, |n| n.processes.len() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/mailbox_depth", move || {
            n.upgrade().map_or(0.0, |n| n.mailbox_depth_total() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/transport/send_queue_depth", move || {
            n.upgrade().map_or(0.0, |n| n.transport.queued() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/transport/peers", move || {
            n.upgrade().map_or(0.0, |n| n.transport.peers() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/transport/pending_connections", move || {
            n.upgrade()
                .map_or(0.0, |n| n.transport.admission.pending_count() as f64)
        });
        let n = node.clone();
        metrics.gauge_fn("libactor/transport/established_connections", move || {
            n.upgrade()
                .map_or(0.0, |n| n.transport.admission.established_count() as f64)
        });
        metrics.gauge_fn("libactor/transport/inbound_connections", move || {
            node.upgrade()
                .map_or(0.0, |n| n.transport.inbound_connections() as f64)
        });
    }
}
