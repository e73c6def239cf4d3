//! The topics consumer groups see: every non-internal topic with its id and partition count,
//! built once and shared until the topic set changes. A heartbeat carries the whole snapshot
//! to the coordinator, so building it per request would cost a pass over every topic each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_group::consumer::TopicId;
use cairn_group::{TopicInfo, TopicsSnapshot};
use cairn_log::Store;
use parking_lot::Mutex;

/// One built view: the snapshot the coordinator takes, and topic names by id for answers.
#[derive(Debug, Default)]
pub struct Topics {
    pub snapshot: TopicsSnapshot,
    pub names: HashMap<TopicId, String>,
}

#[derive(Default)]
pub struct TopicsView {
    /// Bumped after every change to the topic set or a partition count.
    generation: AtomicU64,
    cached: Mutex<Option<(u64, Arc<Topics>)>>,
}

impl TopicsView {
    /// Called after a topic is created or deleted or gains partitions.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current view: the cached one unless a change was announced since it was built.
    pub fn get(&self, store: &Store) -> Arc<Topics> {
        // Read before the store: a change announced while building leaves the result tagged
        // with the older generation, so the next call builds again.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, t)) = &*self.cached.lock() {
            if *g == generation {
                return t.clone();
            }
        }
        let built = Arc::new(build(store, generation));
        let mut cached = self.cached.lock();
        if cached.as_ref().is_none_or(|(g, _)| *g <= generation) {
            *cached = Some((generation, built.clone()));
        }
        built
    }
}

fn build(store: &Store, generation: u64) -> Topics {
    let infos: Vec<TopicInfo> = store
        .topics()
        .into_iter()
        .filter(|t| !t.internal && !crate::internal_topics::is_internal(&t.name))
        .map(|t| TopicInfo {
            id: t.id.into_bytes(),
            name: t.name,
            partitions: t.partitions.min(i32::MAX as u32) as i32,
        })
        .collect();
    let names = infos.iter().map(|t| (t.id, t.name.clone())).collect();
    let mut snapshot = TopicsSnapshot::new(infos);
    // Never 0, which tells the coordinator the generation is unknown.
    snapshot.generation = generation + 1;
    Topics { snapshot, names }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(
            dir,
            Arc::new(|_: &cairn_log::TopicMeta| cairn_log::LogConfig::default()),
        )
        .unwrap()
    }

    #[test]
    fn the_view_is_shared_until_a_change_is_announced() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .create_topic("a", 2, Default::default(), false)
            .unwrap();
        store
            .create_topic("__consumer_offsets", 1, Default::default(), true)
            .unwrap();
        let view = TopicsView::default();
        let first = view.get(&store);
        assert_eq!(
            first.snapshot.by_name.len(),
            1,
            "internal topics are left out"
        );
        let a = &first.snapshot.by_name["a"];
        assert_eq!(a.partitions, 2);
        assert_eq!(first.names[&a.id], "a");
        assert!(Arc::ptr_eq(&first, &view.get(&store)), "not rebuilt");

        store.add_partitions("a", 5).unwrap();
        store
            .create_topic("b", 1, Default::default(), false)
            .unwrap();
        view.changed();
        let second = view.get(&store);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.snapshot.by_name["a"].partitions, 5);
        assert!(second.snapshot.by_name.contains_key("b"));
        assert!(Arc::ptr_eq(&second, &view.get(&store)));
    }

    /// Prints what a rebuild and a cached answer cost over a thousand topics.
    #[test]
    fn a_cached_view_costs_nothing_per_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for i in 0..1000 {
            store
                .create_topic(&format!("t{i}"), 1, Default::default(), false)
                .unwrap();
        }
        let view = TopicsView::default();
        let t = Instant::now();
        let built = view.get(&store);
        let build = t.elapsed();
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(Arc::ptr_eq(&built, &view.get(&store)));
        }
        let cached = t.elapsed() / 1000;
        eprintln!("1000 topics: build {build:?}, cached get {cached:?}");
        assert!(cached < build, "a cached get must not rebuild");
    }
}
