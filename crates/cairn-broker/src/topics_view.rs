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
        let built = Arc::new(build(store));
        let mut cached = self.cached.lock();
        if cached.as_ref().is_none_or(|(g, _)| *g <= generation) {
            *cached = Some((generation, built.clone()));
        }
        built
    }
}

fn build(store: &Store) -> Topics {
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
    Topics {
        snapshot: TopicsSnapshot::new(infos),
        names,
    }
}
