//! Secure nodes: mutual TLS on every actor-protocol connection, the sender a handler sees is
//! the one its connection proved, and every way around that is refused and counted.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::{AskError, Context, Node, Process, TlsConfig, Upid};
use prost::Message;
use protos::libactor::examples::{Note, Ping, Pong};
use protos::libactor::{Envelope, ExitedNotice};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

fn tls(ca: &ClusterCa, principal: &str, roles: &[&str]) -> TlsConfig {
    let cert = ca
        .issue(&CertRequest::new(principal, roles, &["127.0.0.1"]))
        .unwrap();
    TlsConfig::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

fn secure_node(ca: &ClusterCa, principal: &str, roles: &[&str]) -> Node {
    secure_node_with(tls(ca, principal, roles))
}

fn secure_node_with(tls: TlsConfig) -> Node {
    Node::builder()
        .configure(|c| {
            c.arbiters = 2;
            c.io_threads = 1;
        })
        .tls(tls)
        .start()
        .expect("secure node starts on 127.0.0.1")
}

/// Answers a Ping with a Pong only when its proven sender has `role`; reports who it saw.
struct Guarded {
    role: &'static str,
    seen: mpsc::UnboundedSender<(Upid, Option<String>)>,
}

impl Process for Guarded {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |g: &mut Guarded, ctx: &mut Context<Guarded>, from: Upid, ping: Ping| {
                let principal = ctx.sender_identity().map(|i| i.principal().to_owned());
                let _ = g.seen.send((from.clone(), principal));
                if ctx.authorize(g.role) {
                    ctx.send(
                        &from,
                        Pong {
                            seq: ping.seq,
                            payload: ping.payload,
                        },
                    );
                }
            },
        );
    }
}

fn guarded(
    node: &Node,
    role: &'static str,
) -> (Upid, mpsc::UnboundedReceiver<(Upid, Option<String>)>) {
    let (seen, rx) = mpsc::unbounded_channel();
    (node.spawn("guarded", Guarded { role, seen }).unwrap(), rx)
}

#[tokio::test]
async fn secure_nodes_exchange_messages_and_handlers_see_the_proven_principal() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let master = secure_node(&ca, "master", &["master"]);
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    assert!(master.is_secure());
    assert_eq!(agent.identity().unwrap().principal(), "agent-1");
    let (target, mut seen) = guarded(&master, "agent");

    let pong: Pong = agent.ask(&target, ping(7), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 7);
    let (from, principal) = within(seen.recv()).await.unwrap();
    assert_eq!(from.address(), agent.address());
    assert_eq!(
        principal.as_deref(),
        Some("agent-1"),
        "the connection's certificate, not a claim"
    );

    // A local sender is the node itself, which lacks role agent: refused.
    master.send(&target, ping(8));
    let (_, principal) = within(seen.recv()).await.unwrap();
    assert_eq!(principal.as_deref(), Some("master"));
    // The mailbox is in order: this answer comes after the refused ping's handler ended.
    let pong: Pong = agent.ask(&target, ping(9), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 9);
    assert_eq!(
        master.metrics().snapshot()["libactor/refused/unauthorized"],
        1.0
    );
    agent.shutdown().await;
    master.shutdown().await;
}

#[tokio::test]
async fn a_sender_without_the_role_is_refused_and_counted() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    let framework = secure_node(&ca, "analytics", &["framework"]);
    let master = secure_node(&ca, "master", &["master"]);
    let (target, mut seen) = guarded(&agent, "master");

    // The framework claims to be the master; its connection says otherwise.
    let claimed_master = master.pid("master").unwrap();
    framework.send_from(&framework.pid("master").unwrap(), &target, ping(1));
    let (_, principal) = within(seen.recv()).await.unwrap();
    assert_eq!(principal.as_deref(), Some("analytics"));
    let pong: Pong = master.ask(&target, ping(2), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 2, "the real master is obeyed");
    assert_eq!(
        agent.metrics().snapshot()["libactor/refused/unauthorized"],
        1.0
    );
    assert_ne!(claimed_master.address(), framework.address());
    for n in [agent, framework, master] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_frame_claiming_a_sender_on_another_node_is_dropped() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let master = secure_node(&ca, "master", &["master"]);
    let attacker = secure_node(&ca, "analytics", &["framework"]);
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    let (rec, mut rx) = Recorder::new();
    let target = agent.spawn("slave(1)", rec).unwrap();

    // On the attacker's connection, a Note claiming the master's pid, then one of its own.
    attacker.send_from(&master.pid("master").unwrap(), &target, note("spoofed"));
    attacker.send_from(&attacker.pid("scheduler").unwrap(), &target, note("honest"));
    match next(&mut rx).await {
        Seen::Note(from, n) => {
            assert_eq!(
                n,
                note("honest"),
                "the spoofed note never reached the process"
            );
            assert_eq!(from.address(), attacker.address());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        agent.metrics().snapshot()["libactor/dropped/unauthenticated_sender"],
        1.0
    );
    for n in [master, attacker, agent] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_forged_exited_notice_does_not_break_a_link() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let (watcher_node, target_node, attacker) = (
        secure_node(&ca, "master", &["master"]),
        secure_node(&ca, "framework-node", &["framework"]),
        secure_node(&ca, "intruder", &["framework"]),
    );
    let target = target_node.spawn("scheduler", Idle).unwrap();
    let (watcher, mut events, _probe, _probe_events) =
        linked_watcher(&watcher_node, &target_node, std::slice::from_ref(&target)).await;

    // The intruder announces that the scheduler exited; only its own node may.
    attacker.send(
        &watcher,
        ExitedNotice {
            linker: watcher.to_string(),
            pid: target.to_string(),
        },
    );
    // A note behind it on the same connection: once it arrives, the notice has been judged.
    attacker.send(&watcher, note("after"));
    assert_eq!(
        next(&mut events).await,
        Seen::Note(attacker.anonymous_pid().clone(), note("after")),
        "no exited before the note"
    );
    let dropped = watcher_node.metrics().snapshot()["libactor/dropped/unauthenticated_sender"];
    assert_eq!(dropped, 1.0);
    target_node.terminate(&target);
    assert_eq!(
        next(&mut events).await,
        Seen::Exited(target.clone()),
        "the real exit still arrives"
    );
    for n in [watcher_node, target_node, attacker] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_plaintext_peer_is_refused_by_a_secure_node() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let secure = secure_node(&ca, "agent-1", &["agent"]);
    let plain = node();
    let (rec, mut rx) = Recorder::new();
    let target = secure.spawn("slave(1)", rec).unwrap();
    let asked: Result<Pong, _> = plain.ask(&target, ping(1), EVENT_TIMEOUT).await;
    assert!(
        matches!(asked, Err(AskError::Unreachable(_))),
        "got {asked:?}"
    );
    // Counted before the refused connection was closed, which failed the ask; the plain
    // sender may have dialled again before it saw the first close.
    let refused = secure.metrics().snapshot()["libactor/tls/refused_plaintext"];
    assert!((1.0..=2.0).contains(&refused), "refused {refused}");
    assert_quiet(&mut rx);
    plain.shutdown().await;
    secure.shutdown().await;
}

#[tokio::test]
async fn certificates_from_another_ca_or_expired_are_refused_at_the_handshake() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let rogue_ca = ClusterCa::generate("rogue").unwrap();
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    let (rec, mut rx) = Recorder::new();
    let target = agent.spawn("slave(1)", rec).unwrap();

    // A certificate from another CA, trusting the real one so that it accepts the server.
    let rogue = rogue_ca
        .issue(&CertRequest::new("master", &["master"], &["127.0.0.1"]))
        .unwrap();
    let impostor = secure_node_with(
        TlsConfig::from_pem(ca.cert_pem(), &rogue.cert_pem, &rogue.key_pem).unwrap(),
    );
    let asked: Result<Pong, _> = impostor.ask(&target, ping(1), EVENT_TIMEOUT).await;
    assert!(asked.is_err(), "an unknown CA gets nowhere");
    metric_reaches(&agent, "libactor/tls/handshake_failures", 1.0).await;

    // An expired certificate from the right CA.
    let now = time::OffsetDateTime::now_utc();
    let expired = ca
        .issue_between(
            &CertRequest::new("master", &["master"], &["127.0.0.1"]),
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    let stale = secure_node_with(
        TlsConfig::from_pem(ca.cert_pem(), &expired.cert_pem, &expired.key_pem).unwrap(),
    );
    let asked: Result<Pong, _> = stale.ask(&target, ping(2), EVENT_TIMEOUT).await;
    assert!(asked.is_err(), "an expired certificate gets nowhere");
    metric_reaches(&agent, "libactor/tls/handshake_failures", 2.0).await;
    assert_quiet(&mut rx);
    for n in [agent, impostor, stale] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_node_whose_certificate_does_not_name_its_address_does_not_start() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let cert = ca
        .issue(&CertRequest::new("agent-1", &["agent"], &["10.1.2.3"]))
        .unwrap();
    let tls = TlsConfig::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let err = Node::builder().tls(tls).start().unwrap_err();
    assert!(err.to_string().contains("10.1.2.3"), "{err}");
}

#[tokio::test]
async fn a_hello_from_a_host_the_certificate_does_not_name_admits_nothing() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    let (rec, mut rx) = Recorder::new();
    let target = agent.spawn("slave(1)", rec).unwrap();
    // A valid certificate for another host, used from this one by a hand-made client.
    let elsewhere = ca
        .issue(&CertRequest::new("master", &["master"], &["10.9.9.9"]))
        .unwrap();
    let tls = TlsConfig::from_pem(ca.cert_pem(), &elsewhere.cert_pem, &elsewhere.key_pem).unwrap();
    let mut client = (*tls.https_client()).clone();
    client.alpn_protocols = vec![libactor::tls::ALPN_ACTOR.to_vec()];
    let tcp = within(tokio::net::TcpStream::connect(agent.socket_addr()))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream =
        within(tokio_rustls::TlsConnector::from(std::sync::Arc::new(client)).connect(name, tcp))
            .await
            .unwrap();
    let mut bytes = BytesMut::from(&libactor::transport::frame::PREAMBLE[..]);
    for (from, name, body) in [
        ("__node__@127.0.0.1:9", "keel.libactor.Hello", Vec::new()),
        (
            "master@127.0.0.1:9",
            "keel.libactor.examples.Note",
            note("obey").encode_to_vec(),
        ),
    ] {
        let envelope = Envelope {
            from: from.into(),
            to: target.to_string(),
            name: name.into(),
            body: body.into(),
        }
        .encode_to_vec();
        bytes.put_u32(envelope.len() as u32);
        bytes.put_slice(&envelope);
    }
    within(stream.write_all(&bytes)).await.unwrap();
    within(stream.flush()).await.unwrap();
    metric_reaches(&agent, "libactor/dropped/unauthenticated_sender", 2.0).await;
    assert_quiet(&mut rx);
    agent.shutdown().await;
}

#[tokio::test]
async fn message_posts_to_a_secure_node_need_a_client_certificate() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let agent = secure_node(&ca, "agent-1", &["agent"]);
    let (rec, mut rx) = Recorder::new();
    agent.spawn("slave(1)", rec).unwrap();
    let post = |tls: Option<TlsConfig>, from: &'static str| {
        let addr = agent.address().to_owned();
        async move {
            libactor::http_client::request_over(
                &addr,
                tls.as_ref(),
                "POST",
                "/slave(1)/keel.libactor.examples.Note",
                &[("libprocess-from", from.to_owned())],
                Note { text: from.into() }.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(
        post(None, "master@127.0.0.1:5050").await,
        401,
        "plaintext proves nothing"
    );
    let master = tls(&ca, "master", &["master"]);
    assert_eq!(
        post(Some(master.clone()), "master@10.0.0.1:5050").await,
        403,
        "not its host"
    );
    assert_eq!(post(Some(master), "master@127.0.0.1:5050").await, 202);
    match next(&mut rx).await {
        Seen::Note(_, n) => assert_eq!(n.text, "master@127.0.0.1:5050"),
        other => panic!("unexpected {other:?}"),
    }
    // Reads stay open over plaintext and HTTPS alike.
    let metrics = libactor::http_client::request(
        agent.address(),
        "GET",
        "/metrics/snapshot",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(metrics.status, 200);
    let m = agent.metrics().snapshot();
    assert_eq!(m["libactor/tls/refused_unauthenticated"], 1.0);
    assert_eq!(m["libactor/dropped/unauthenticated_sender"], 1.0);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_long_stream_over_tls_arrives_whole_and_in_order() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    // One network thread each: the writer's last batch must leave without another send
    // behind it to push it out of the TLS buffer.
    let single = |principal: &str| {
        Node::builder()
            .single_threaded()
            .tls(tls(&ca, principal, &["agent"]))
            .start()
            .unwrap()
    };
    let (a, b) = (single("a"), single("b"));
    let (rec, mut rx) = Recorder::new();
    let target = b.spawn("sink", rec).unwrap();
    let sender = a.pid("source").unwrap();
    const N: u64 = 50_000;
    for seq in 0..N {
        let payload = vec![0x5a; 100].into();
        a.send_from(&sender, &target, Ping { seq, payload });
    }
    for seq in 0..N {
        match next(&mut rx).await {
            Seen::Ping(_, p) => assert_eq!(p.seq, seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_that_authenticates_reads_wants_a_certificate_or_basic() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let checker: libactor::BasicCheck =
        std::sync::Arc::new(|header: &str| (header == "Basic b3BzOnMx").then(|| "ops".to_owned()));
    let agent = Node::builder()
        .configure(|c| {
            c.arbiters = 1;
            c.io_threads = 1;
            c.http_authentication = Some(libactor::HttpAuthentication {
                basic: Some(checker),
            });
        })
        .tls(tls(&ca, "agent-1", &["agent"]))
        .start()
        .unwrap();
    let get = |tls: Option<TlsConfig>, header: Option<&'static str>| {
        let addr = agent.address().to_owned();
        async move {
            let headers: Vec<(&str, String)> = header
                .map(|h| ("authorization", h.to_owned()))
                .into_iter()
                .collect();
            libactor::http_client::request_over(
                &addr,
                tls.as_ref(),
                "GET",
                "/metrics/snapshot",
                &headers,
                Default::default(),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(get(None, None).await, 401, "anonymous reads are refused");
    assert_eq!(
        get(None, Some("Basic bm86bm8=")).await,
        401,
        "wrong credentials"
    );
    assert_eq!(get(None, Some("Basic b3BzOnMx")).await, 200, "HTTP Basic");
    assert_eq!(
        get(Some(tls(&ca, "viewer", &["operator"])), None).await,
        200,
        "a certificate"
    );
    assert_eq!(
        agent.metrics().snapshot()["libactor/http/unauthenticated"],
        2.0
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn an_ask_takes_its_answer_only_from_the_node_asked() {
    let ca = ClusterCa::generate("test cluster").unwrap();
    let (asker, asked, intruder) = (
        secure_node(&ca, "framework", &["framework"]),
        secure_node(&ca, "master", &["master"]),
        secure_node(&ca, "intruder", &["framework"]),
    );
    let silent = asked.spawn("silent", Idle).unwrap();
    let pending = {
        let (asker, silent) = (asker.clone(), silent.clone());
        tokio::spawn(async move {
            asker
                .ask::<Ping, Pong>(&silent, ping(1), EVENT_TIMEOUT)
                .await
        })
    };
    // Once the request has arrived (the silent process has no handler for it), the ask's
    // reply address exists; the intruder answers there in the silent process's place.
    metric_reaches(&asked, "libactor/dropped/unknown_message", 1.0).await;
    let reply_slot = asker.pid("__ask__(1)").unwrap();
    intruder.send(
        &reply_slot,
        Pong {
            seq: 1,
            payload: Default::default(),
        },
    );
    metric_reaches(&asker, "libactor/dropped/unauthenticated_sender", 1.0).await;
    asked.terminate(&silent);
    let answer = within(pending).await.unwrap();
    assert!(matches!(answer, Err(AskError::Exited(_))), "got {answer:?}");
    for n in [asker, asked, intruder] {
        n.shutdown().await;
    }
}
