//! Network faults for simulation: a seeded filter drops, duplicates and holds back messages
//! (held ones overtaken by later ones, delivered once the paused clock passes their hold), the
//! same way for the same seed; a partition cuts groups of nodes apart both ways until healed;
//! a seeded node draws the same randomness every run.

mod common;

use std::time::Duration;

use common::{next, node, node_with_clock, note, within, Recorder, Seen};
use libactor::{partition, Clock, NetworkFaults, Node};

const MESSAGES: usize = 300;

/// Sends `MESSAGES` notes through a fault filter seeded with `seed`, lets every hold pass,
/// and returns the notes in the order they arrived, with the node's fault counters.
async fn through_faults(seed: u64) -> (Vec<usize>, [f64; 3]) {
    let clock = Clock::paused();
    let node: Node = node_with_clock(&clock);
    let (rec, mut rx) = Recorder::new();
    let target = node.spawn("target", rec).unwrap();
    let faults = NetworkFaults {
        drop: 0.2,
        duplicate: 0.2,
        delay: 0.2,
        max_delay: Duration::from_secs(10),
    };
    let guard = node.inject_faults(faults, seed, |m| m.name.ends_with(".Note"));
    for i in 0..MESSAGES {
        node.send(&target, note(&i.to_string()));
    }
    clock.advance(Duration::from_secs(10));
    drop(guard);
    node.send(&target, note("end"));
    let mut arrived = Vec::new();
    loop {
        match next(&mut rx).await {
            Seen::Note(_, n) if n.text == "end" => break,
            Seen::Note(_, n) => arrived.push(n.text.parse().unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let m = node.metrics().snapshot();
    let counters = [
        m["libactor/dropped/filtered"],
        m["libactor/filters/duplicated"],
        m["libactor/filters/delayed"],
    ];
    node.shutdown().await;
    (arrived, counters)
}

#[tokio::test]
async fn messages_are_dropped_duplicated_and_reordered_the_same_way_for_a_seed() {
    let (arrived, [dropped, duplicated, delayed]) = through_faults(42).await;
    let mut copies = vec![0u32; MESSAGES];
    for i in &arrived {
        copies[*i] += 1;
    }
    let lost = copies.iter().filter(|c| **c == 0).count();
    let twice = copies.iter().filter(|c| **c == 2).count();
    assert!(copies.iter().all(|c| *c <= 2));
    assert_eq!(lost as f64, dropped, "every loss counted");
    assert_eq!(twice as f64, duplicated, "every duplicate counted");
    // About a fifth of each, by the draw.
    for n in [dropped, duplicated, delayed] {
        assert!(
            (20.0..=100.0).contains(&n),
            "{dropped} {duplicated} {delayed}"
        );
    }
    assert!(
        arrived.windows(2).any(|w| w[0] > w[1]),
        "held messages are overtaken"
    );
    assert_eq!(arrived.len(), MESSAGES - lost + twice);

    let (again, counters) = through_faults(42).await;
    assert_eq!(again, arrived, "the same seed, the same fates");
    assert_eq!(counters, [dropped, duplicated, delayed]);
    let (other, _) = through_faults(43).await;
    assert_ne!(other, arrived, "another seed, other fates");
}

#[tokio::test]
async fn a_partition_cuts_groups_apart_both_ways_until_healed() {
    let (a, b, c) = (node(), node(), node());
    let (on_a, mut a_seen) = Recorder::new();
    let (on_b, mut b_seen) = Recorder::new();
    let on_a = a.spawn("rec", on_a).unwrap();
    let on_b = b.spawn("rec", on_b).unwrap();

    // Filters on b and c drop a's messages; one on a drops b's and c's.
    let mut cut = partition(&[&a], &[&b, &c]);
    a.send(&on_b, note("across"));
    b.send(&on_a, note("across back"));
    c.send(&on_b, note("same side"));
    assert!(matches!(next(&mut b_seen).await, Seen::Note(_, n) if n.text == "same side"));
    // No message follows a dropped one while the cut lasts: the filters' drops are the event.
    within(cut[0].dropped(1)).await;
    within(cut[2].dropped(1)).await;
    drop(cut);
    // Each later note travels the connection the cut one did: it would have come first.
    a.send(&on_b, note("healed"));
    b.send(&on_a, note("healed back"));
    assert!(matches!(next(&mut b_seen).await, Seen::Note(_, n) if n.text == "healed"));
    assert!(matches!(next(&mut a_seen).await, Seen::Note(_, n) if n.text == "healed back"));
    assert_eq!(a.metrics().snapshot()["libactor/dropped/filtered"], 1.0);
    assert_eq!(b.metrics().snapshot()["libactor/dropped/filtered"], 1.0);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_seeded_node_draws_the_same_randomness_every_run() {
    let seeded = |seed| common::node_with(&Clock::new(), move |c| c.seed = Some(seed));
    let (a, b, c) = (seeded(5), seeded(5), seeded(6));
    let draw = |n: &Node| (n.random().uuid(), n.random().next_u64());
    assert!(a.random().is_seeded());
    assert_eq!(draw(&a), draw(&b));
    assert_ne!(draw(&a), draw(&c));
    assert!(!node().random().is_seeded());
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
