//! Nodes in separate OS processes over real TCP on 127.0.0.1: messaging, ask, and what a
//! SIGKILLed node does to the processes linked to it.

use std::time::Duration;

use keel_testkit::ChildNode;
use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::{Note, Ping, Pong};
use tokio::sync::mpsc;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const NODE_BIN: &str = env!("CARGO_BIN_EXE_actor-node");

/// Links to a process and reports Notes and exits.
struct Watcher {
    target: Upid,
    tx: mpsc::UnboundedSender<String>,
}

impl Process for Watcher {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |w: &mut Watcher, _: &mut Context<Watcher>, from: Upid, n: Note| {
                let _ = w.tx.send(format!("note {} from {from}", n.text));
            },
        );
        let target = self.target.clone();
        ctx.link(&target);
        ctx.send(
            &target,
            Note {
                text: "hello".into(),
            },
        );
    }

    fn exited(&mut self, _: &mut Context<Self>, pid: &Upid) {
        let _ = self.tx.send(format!("exited {pid}"));
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(EVENT_TIMEOUT, rx.recv())
        .await
        .expect("event within the bound")
        .expect("watcher alive")
}

#[tokio::test]
async fn ask_a_node_in_another_process() {
    let child = ChildNode::start(NODE_BIN).await.unwrap();
    let node = Node::builder().start().unwrap();
    for seq in 0..100 {
        let pong: Pong = node
            .ask(
                child.echo_pid(),
                Ping {
                    seq,
                    payload: vec![7; 100].into(),
                },
                EVENT_TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(pong.seq, seq);
        assert_eq!(pong.payload.len(), 100);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn sigkilled_node_fires_exited_for_linked_processes() {
    let mut child = ChildNode::start(NODE_BIN).await.unwrap();
    let node = Node::builder().start().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let target = child.echo_pid().clone();
    node.spawn(
        "watcher",
        Watcher {
            target: target.clone(),
            tx,
        },
    )
    .unwrap();
    // The echo answers the note sent right after the link: the link is in place.
    assert_eq!(next(&mut rx).await, format!("note hello from {target}"));
    child.kill();
    child.wait().await.unwrap();
    assert_eq!(next(&mut rx).await, format!("exited {target}"));
    assert!(node.metrics().snapshot()["libactor/transport/connections_broken"] >= 1.0);
    node.shutdown().await;
}
