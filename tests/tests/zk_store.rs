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
