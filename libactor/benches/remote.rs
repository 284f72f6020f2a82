//! Remote messaging between two nodes on 127.0.0.1 against raw tokio length-delimited TCP doing
//! the same work, in the same run; and the same between secure nodes (mutual TLS) against raw
//! `tokio-rustls` length-delimited TCP. Bodies carry 100 bytes.
//!
//! ```text
//! cargo bench -p libactor --bench remote
//! ```
//!
//! - `remote_throughput`: one sender streams N messages to one receiver, which signals at the Nth.
//! - `remote_ping_pong`: N sequential round trips.

mod support;

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::Node;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{
    node, ping_pong_pair, secure_node, shut_down, start_rounds, start_stream, stream_pair,
    time_rounds,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const N_STREAM: u64 = 50_000;
const N_ROUNDS: u64 = 2_000;
const BODY_BYTES: usize = 100;

fn body() -> Bytes {
    Bytes::from(vec![0x5a; BODY_BYTES])
}

// ---------- raw tokio ----------

/// A client/server pair of tokio runtimes (one worker thread each, like two nodes) joined by
/// one TCP connection (TLS when `tls` is given) carrying length-delimited frames.
struct RawPair {
    _server: tokio::runtime::Runtime,
    client: tokio::runtime::Runtime,
    commands: mpsc::UnboundedSender<(u64, bool)>,
    done: std_mpsc::Receiver<()>,
}

/// TLS for the raw baseline: the same CA, certificates and rustls settings as secure nodes.
struct RawTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

fn raw_tls(ca: &ClusterCa) -> RawTls {
    let cert = ca
        .issue(&CertRequest::new("raw", &["bench"], &["127.0.0.1"]))
        .expect("certificate");
    let key = || PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
    let mut roots = rustls::RootCertStore::empty();
    for ca_cert in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(ca_cert.expect("CA")).expect("root");
    }
    let roots = Arc::new(roots);
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key())
        .expect("server config");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key())
        .expect("client config");
    RawTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
    }
}

/// Counts frames of a stream (first byte 0) or echoes each frame (first byte 1).
async fn raw_server<S: AsyncRead + AsyncWrite>(stream: S, done: std_mpsc::Sender<()>) {
    let (r, w) = tokio::io::split(stream);
    let mut frames = FramedRead::new(r, LengthDelimitedCodec::new());
    let mut out = FramedWrite::new(w, LengthDelimitedCodec::new());
    let mut seen = 0u64;
    while let Some(Ok(frame)) = frames.next().await {
        if frame[0] == 1 {
            out.send(frame.freeze()).await.expect("echo");
        } else {
            seen += 1;
            if seen == N_STREAM {
                seen = 0;
                let _ = done.send(());
            }
        }
    }
}

/// Streams or echoes as `commands` ask.
async fn raw_client<S: AsyncRead + AsyncWrite>(
    stream: S,
    mut commands: mpsc::UnboundedReceiver<(u64, bool)>,
    done: std_mpsc::Sender<()>,
) {
    let (r, w) = tokio::io::split(stream);
    let mut frames = FramedRead::new(r, LengthDelimitedCodec::new());
    let mut out = FramedWrite::new(w, LengthDelimitedCodec::new());
    let mut stream_body = body().to_vec();
    stream_body[0] = 0;
    let stream_body = Bytes::from(stream_body);
    let mut echo_body = body().to_vec();
    echo_body[0] = 1;
    let echo_body = Bytes::from(echo_body);
    while let Some((n, echo)) = commands.recv().await {
        if echo {
            for _ in 0..n {
                out.send(echo_body.clone()).await.expect("send");
                frames.next().await.expect("reply").expect("frame");
            }
            let _ = done.send(());
        } else {
            for _ in 0..n {
                out.feed(stream_body.clone()).await.expect("feed");
            }
            SinkExt::<Bytes>::flush(&mut out).await.expect("flush");
        }
    }
}

fn raw_pair(tls: Option<RawTls>) -> RawPair {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (server, client) = (runtime(), runtime());
    let listener = server
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (done_tx, done) = std_mpsc::channel();
    let server_done = done_tx.clone();
    let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
    server.spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).ok();
        match acceptor {
            Some(acceptor) => {
                let stream = acceptor.accept(stream).await.expect("TLS accept");
                raw_server(stream, server_done).await
            }
            None => raw_server(stream, server_done).await,
        }
    });
    let (commands, rx) = mpsc::unbounded_channel::<(u64, bool)>();
    client.spawn(async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        match tls {
            Some(tls) => {
                let name = ServerName::try_from("127.0.0.1").expect("name");
                let stream = tls
                    .connector
                    .connect(name, stream)
                    .await
                    .expect("TLS connect");
                raw_client(stream, rx, done_tx).await
            }
            None => raw_client(stream, rx, done_tx).await,
        }
    });
    RawPair {
        _server: server,
        client,
        commands,
        done,
    }
}

/// Benchmarks one libactor pair (`sender` → `receiver`) beside one raw pair, under `names`.
fn compare(c: &mut Criterion, (a, b): (&Node, &Node), raw: &RawPair, names: [&str; 2]) {
    let [actor, baseline] = names;
    let mut group = c.benchmark_group("remote_throughput");
    group.throughput(Throughput::Elements(N_STREAM));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let (sender, done_rx) = stream_pair(a, b, N_STREAM);
    group.bench_function(actor, |bench| {
        bench.iter_custom(|iters| {
            time_rounds(iters, || start_stream(&sender, N_STREAM, body()), &done_rx)
        })
    });
    group.bench_function(baseline, |bench| {
        bench.iter_custom(|iters| {
            let stream = || raw.commands.send((N_STREAM, false)).expect("client runs");
            time_rounds(iters, stream, &raw.done)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("remote_ping_pong");
    group.throughput(Throughput::Elements(N_ROUNDS));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let (pinger, pp_rx) = ping_pong_pair(a, b);
    group.bench_function(actor, |bench| {
        bench.iter_custom(|iters| {
            time_rounds(iters, || start_rounds(&pinger, N_ROUNDS, body()), &pp_rx)
        })
    });
    group.bench_function(baseline, |bench| {
        bench.iter_custom(|iters| {
            let rounds = || raw.commands.send((N_ROUNDS, true)).expect("client runs");
            time_rounds(iters, rounds, &raw.done)
        })
    });
    group.finish();
}

fn remote(c: &mut Criterion) {
    let (a, b) = (node(), node());
    let raw = raw_pair(None);
    compare(c, (&a, &b), &raw, ["libactor", "raw_tokio"]);
    let sent = a.metrics().snapshot();
    println!(
        "sender node: {} frames in {} socket writes ({:.1} frames per write)",
        sent["libactor/transport/frames_sent"],
        sent["libactor/transport/write_batches"],
        sent["libactor/transport/frames_sent"] / sent["libactor/transport/write_batches"].max(1.0)
    );
    shut_down(&[&a, &b]);
    drop(raw.client);

    let ca = ClusterCa::generate("bench").expect("CA");
    let (a, b) = (secure_node(&ca, "a"), secure_node(&ca, "b"));
    let raw = raw_pair(Some(raw_tls(&ca)));
    compare(c, (&a, &b), &raw, ["libactor_tls", "raw_tls"]);
    shut_down(&[&a, &b]);
    drop(raw.client);
}

criterion_group!(benches, remote);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    support::ratio::report(&[
        ("remote_throughput", "libactor", "raw_tokio", N_STREAM),
        ("remote_ping_pong", "libactor", "raw_tokio", N_ROUNDS),
        ("remote_throughput", "libactor_tls", "raw_tls", N_STREAM),
        ("remote_ping_pong", "libactor_tls", "raw_tls", N_ROUNDS),
        ("remote_throughput", "libactor_tls", "libactor", N_STREAM),
        ("remote_ping_pong", "libactor_tls", "libactor", N_ROUNDS),
    ]);
}
