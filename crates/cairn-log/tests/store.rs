mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use cairn_log::{LogConfig, LogConfigFn, Store, StoreError, TopicMeta};
use common::*;

/// Maps a couple of Kafka topic configs onto the log config, like the broker would.
fn config_fn() -> LogConfigFn {
    Arc::new(|meta: &TopicMeta| {
        let mut c = LogConfig::default();
        if let Some(v) = meta.configs.get("segment.bytes") {
            c.segment_bytes = v.parse().unwrap();
        }
        if let Some(v) = meta.configs.get("retention.ms") {
            c.retention_ms = v.parse().unwrap();
        }
        if let Some(v) = meta.configs.get("cleanup.policy") {
            c.cleanup_compact = v.contains("compact");
            c.cleanup_delete = v.contains("delete");
        }
        c
    })
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("topics.json") && n != ".lock")
        .collect();
    names.sort();
    names
}

#[test]
fn create_reopen_and_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster_id, orders_id) = {
        let store = Store::open(dir.path(), config_fn()).unwrap();
        let cluster_id = store.cluster_id();
        assert_eq!(cluster_id.len(), 22);
        assert!(cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let orders = store
            .create_topic("orders", 3, configs(&[("retention.ms", "1000")]), false)
            .unwrap();
        assert_eq!(orders.partitions, 3);
        store
            .create_topic("__consumer_offsets", 2, BTreeMap::new(), true)
            .unwrap();
        assert!(matches!(
            store.create_topic("orders", 1, BTreeMap::new(), false),
            Err(StoreError::TopicExists(_))
        ));
        assert!(matches!(
            store.create_topic("empty", 0, BTreeMap::new(), false),
            Err(StoreError::InvalidPartitions(_))
        ));
        assert!(store
            .create_topic("../evil", 1, BTreeMap::new(), false)
            .is_err());
        let p = store.partition("orders", 2).unwrap();
        assert_eq!(p.config().retention_ms, 1000);
        p.append(&batch_n(3, 1), 0).unwrap();
        assert!(store.partition("orders", 3).is_none());
        assert!(store.partition("orders", -1).is_none());
        store.close().unwrap();
        (cluster_id, orders.id)
    };
    let store = Store::open(dir.path(), config_fn()).unwrap();
    assert_eq!(store.cluster_id(), cluster_id);
    let names: Vec<String> = store.topics().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["__consumer_offsets", "orders"]);
    let orders = store.topic("orders").unwrap();
    assert_eq!(orders.id, orders_id);
    assert_eq!(orders.configs, configs(&[("retention.ms", "1000")]));
    assert!(store.topic("__consumer_offsets").unwrap().internal);
    assert_eq!(store.topic_by_id(orders_id).unwrap().name, "orders");
    assert!(store.topic_by_id(uuid::Uuid::new_v4()).is_none());
    let p = store.partition("orders", 2).unwrap();
    assert_eq!(p.log_end_offset(), 3);
    assert_eq!(p.config().retention_ms, 1000);
}

#[test]
fn delete_topic_removes_files_and_frees_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config_fn()).unwrap();
    store
        .create_topic("a.b_c-d", 2, BTreeMap::new(), false)
        .unwrap();
    store
        .create_topic("keep", 1, BTreeMap::new(), false)
        .unwrap();
    let old = store.partition("a.b_c-d", 0).unwrap();
    old.append(&batch_n(2, 1), 0).unwrap();
    assert_eq!(
        dir_names(dir.path()),
        vec!["a.b_c-d-0", "a.b_c-d-1", "keep-0"]
    );

    let meta = store.delete_topic("a.b_c-d").unwrap();
    assert_eq!(meta.partitions, 2);
    assert_eq!(dir_names(dir.path()), vec!["keep-0"]);
    assert!(store.topic("a.b_c-d").is_none());
    assert!(store.partition("a.b_c-d", 0).is_none());
    assert!(matches!(
        store.delete_topic("a.b_c-d"),
        Err(StoreError::UnknownTopic(_))
    ));

    // Recreating yields a fresh, empty topic with a new id.
    let again = store
        .create_topic("a.b_c-d", 1, BTreeMap::new(), false)
        .unwrap();
    assert_ne!(again.id, meta.id);
    assert_eq!(store.partition("a.b_c-d", 0).unwrap().log_end_offset(), 0);
    drop(store);

    let store = Store::open(dir.path(), config_fn()).unwrap();
    assert_eq!(store.topic("a.b_c-d").unwrap().id, again.id);
    assert_eq!(store.topics().len(), 2);
}

#[test]
fn leftovers_of_interrupted_operations_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), config_fn()).unwrap();
        store.create_topic("t", 1, BTreeMap::new(), false).unwrap();
    }
    // A delete that renamed but did not finish removing, a create that never
    // reached the registry, and a partition beyond the registered count.
    for d in ["t-0.0123456789abcdef.deleted", "ghost-0", "t-5"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
        fs::write(dir.path().join(d).join("00000000000000000000.log"), b"").unwrap();
    }
    fs::create_dir_all(dir.path().join("not-a-partition")).unwrap();
    let store = Store::open(dir.path(), config_fn()).unwrap();
    assert_eq!(dir_names(dir.path()), vec!["not-a-partition", "t-0"]);
    assert_eq!(store.topics().len(), 1);
}

#[test]
fn add_partitions_and_set_configs_persist() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path(), config_fn()).unwrap();
        let meta = store.create_topic("t", 2, BTreeMap::new(), false).unwrap();
        assert!(matches!(
            store.add_partitions("t", 2),
            Err(StoreError::InvalidPartitions(_))
        ));
        assert!(matches!(
            store.add_partitions("nope", 4),
            Err(StoreError::UnknownTopic(_))
        ));
        let grown = store.add_partitions("t", 5).unwrap();
        assert_eq!((grown.partitions, grown.id), (5, meta.id));
        assert!(store.partition("t", 4).is_some());

        let p0 = store.partition("t", 0).unwrap();
        assert_eq!(
            p0.config().segment_bytes,
            LogConfig::default().segment_bytes
        );
        store
            .set_topic_configs("t", configs(&[("segment.bytes", "1")]))
            .unwrap();
        assert_eq!(p0.config().segment_bytes, 1);
        assert_eq!(store.partition("t", 4).unwrap().config().segment_bytes, 1);
        assert!(matches!(
            store.set_topic_configs("nope", BTreeMap::new()),
            Err(StoreError::UnknownTopic(_))
        ));
        meta.id
    };
    let store = Store::open(dir.path(), config_fn()).unwrap();
    let meta = store.topic("t").unwrap();
    assert_eq!((meta.partitions, meta.id), (5, id));
    assert_eq!(meta.configs, configs(&[("segment.bytes", "1")]));
    assert_eq!(store.partition("t", 3).unwrap().config().segment_bytes, 1);
}

#[test]
fn store_retention_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config_fn()).unwrap();
    store
        .create_topic(
            "t",
            2,
            configs(&[("segment.bytes", "1"), ("retention.ms", "100")]),
            false,
        )
        .unwrap();
    for p in 0..2 {
        let log = store.partition("t", p).unwrap();
        for ts in [0, 10, 20] {
            log.append(&batch_n(1, ts), ts).unwrap();
        }
    }
    store.sync_all().unwrap();
    assert_eq!(store.enforce_retention(1000).unwrap(), 4);
    assert_eq!(store.partition("t", 1).unwrap().log_start_offset(), 2);
}

#[test]
fn corrupt_registry_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("topics.json"), b"{not json").unwrap();
    assert!(matches!(
        Store::open(dir.path(), config_fn()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn compaction_and_retention_follow_cleanup_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config_fn()).unwrap();
    let tiny = [("segment.bytes", "1"), ("retention.ms", "1000")];
    let mut compacted = tiny.to_vec();
    compacted.push(("cleanup.policy", "compact"));
    let mut both = tiny.to_vec();
    both.push(("cleanup.policy", "compact,delete"));
    for (name, cfg) in [
        ("plain", tiny.to_vec()),
        ("compacted", compacted),
        ("both", both),
    ] {
        store.create_topic(name, 1, configs(&cfg), false).unwrap();
        let log = store.partition(name, 0).unwrap();
        // Every batch holds the single key "k0" and rolls a new segment.
        for ts in [10, 20, 30] {
            log.append(&batch(&[ts]), ts).unwrap();
        }
    }
    // Two superseded copies in each of the two compacted topics.
    assert_eq!(store.compact(100).unwrap(), 4);
    assert_eq!(store.compact(100).unwrap(), 0);
    let offsets = |name: &str| {
        let log = store.partition(name, 0).unwrap();
        decode_offsets(&log.read(log.log_start_offset(), 1 << 20).unwrap().data)
    };
    assert_eq!(offsets("plain").len(), 1, "reads stop at the segment end");
    assert_eq!(store.partition("plain", 0).unwrap().segment_count(), 3);
    assert_eq!(offsets("compacted"), vec![(2, 30)]);

    // Old segments: deleted unless the policy is compact only. (The emptied first
    // segment of "both" has no timestamps left, so its age is its file's mtime.)
    assert_eq!(store.enforce_retention(i64::MAX / 2).unwrap(), 2 + 1);
    let starts: Vec<i64> = ["plain", "compacted", "both"]
        .iter()
        .map(|n| store.partition(n, 0).unwrap().log_start_offset())
        .collect();
    assert_eq!(starts, vec![2, 0, 2]);
}

#[test]
fn a_data_directory_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), config_fn()).unwrap();
    match Store::open(dir.path(), config_fn()) {
        Err(cairn_log::StoreError::Locked(_)) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second store opened a directory that is in use"),
    }
    drop(first);
    Store::open(dir.path(), config_fn()).expect("the lock goes with the first store");
}
