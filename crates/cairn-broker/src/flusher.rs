//! Group commit for the fsync-before-acknowledge mode: produce handlers queue a partition and wait;
//! one background task fsyncs every queued partition once per round, so many batches share an fsync.

use std::sync::Arc;

use cairn_log::PartitionLog;
use tokio::sync::{mpsc, oneshot};

type Waiter = (Arc<PartitionLog>, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    pub fn start() -> Flusher {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut round = vec![first];
                // Everything that queued while the previous fsync ran joins this round.
                while let Ok(w) = rx.try_recv() {
                    round.push(w);
                }
                let round = tokio::task::spawn_blocking(move || {
                    let mut synced: Vec<(*const PartitionLog, Result<(), String>)> = Vec::new();
                    let mut results = Vec::with_capacity(round.len());
                    for (log, done) in round {
                        let key = Arc::as_ptr(&log);
                        let res = match synced.iter().find(|(k, _)| *k == key) {
                            Some((_, r)) => r.clone(),
                            None => {
                                let r = log.sync().map(|_| ()).map_err(|e| e.to_string());
                                synced.push((key, r.clone()));
                                r
                            }
                        };
                        results.push((done, res));
                    }
                    results
                })
                .await;
                match round {
                    Ok(results) => {
                        for (done, res) in results {
                            let _ = done.send(res);
                        }
                    }
                    Err(e) => tracing::error!("flusher task failed: {e}"),
                }
            }
        });
        Flusher { tx }
    }

    /// Queues `log` for the next fsync round at once; the returned future resolves when that
    /// round has synced it. Queueing before awaiting lets one request's partitions share a round.
    pub fn flush(
        &self,
        log: Arc<PartitionLog>,
    ) -> impl std::future::Future<Output = Result<(), String>> {
        let (done, wait) = oneshot::channel();
        let queued = self.tx.send((log, done)).is_ok();
        async move {
            if !queued {
                return Err("flusher stopped".to_string());
            }
            wait.await.map_err(|_| "flusher stopped".to_string())?
        }
    }
}
