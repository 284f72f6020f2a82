//! The registrar's store in a real ZooKeeper: compare-and-set on znode versions, so that of
//! two masters writing from the same version exactly one wins.

use coordination::session::connect;
use coordination::{Entry, Store, StoreError, ZkStore, ZkUrl};
use keel_testkit::zookeeper_server::ZooKeeperServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn znode_versions_make_writes_compare_and_set() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk.url("/keel").parse().unwrap();
    let timeout = std::time::Duration::from_secs(4);
    let a = ZkStore::open(connect(&url, timeout).await.unwrap(), &url)
        .await
        .unwrap();
    let b = ZkStore::open(connect(&url, timeout).await.unwrap(), &url)
        .await
        .unwrap();

    assert_eq!(a.get("agents").await.unwrap(), None);
    assert_eq!(a.put("agents", b"v0", None).await.unwrap(), 0);
    assert!(matches!(
        b.put("agents", b"also first", None).await,
        Err(StoreError::Conflict { found: Some(0), .. })
    ));
    // Both read version 0; the first write wins, the second finds version 1.
    assert_eq!(b.put("agents", b"from b", Some(0)).await.unwrap(), 1);
    assert!(matches!(
        a.put("agents", b"from a", Some(0)).await,
        Err(StoreError::Conflict {
            expected: Some(0),
            found: Some(1),
            ..
        })
    ));
    assert_eq!(
        a.get("agents").await.unwrap(),
        Some(Entry {
            data: b"from b".to_vec(),
            version: 1
        })
    );
    assert!(matches!(
        a.put("missing", b"x", Some(3)).await,
        Err(StoreError::Conflict { found: None, .. })
    ));
    assert!(matches!(
        a.get("../escape").await,
        Err(StoreError::BadKey(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_lives_beside_the_election_path_and_an_older_one_moves_there() {
    use coordination::zookeeper_client as zk;
    let zk_server = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk_server.url("/keel").parse().unwrap();
    let timeout = std::time::Duration::from_secs(4);
    let client = connect(&url, timeout).await.unwrap();
    // An older Keel kept its store under the election path, where a Mesos client (pymesos's
    // detector takes every child but `log_replicas` for a master) would read it as one.
    coordination::session::ensure_path(&client, "/keel/registry")
        .await
        .unwrap();
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client
        .create("/keel/registry/agents", b"kept", &options)
        .await
        .unwrap();

    let store = ZkStore::open(client.clone(), &url).await.unwrap();
    assert_eq!(store.get("agents").await.unwrap().unwrap().data, b"kept");
    assert_eq!(
        client.list_children("/keel").await.unwrap(),
        Vec::<String>::new(),
        "nothing but the election's json.info_ nodes belongs under /keel"
    );
    assert_eq!(
        client.list_children("/keel-registry").await.unwrap(),
        vec!["agents".to_owned()]
    );
    // Opening again (the next leader) finds the moved store and nothing to move.
    let again = ZkStore::open(connect(&url, timeout).await.unwrap(), &url)
        .await
        .unwrap();
    assert_eq!(again.get("agents").await.unwrap().unwrap().data, b"kept");
}
