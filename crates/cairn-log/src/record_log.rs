//! A partition as a coordinator's record log (`cairn_runtime::RecordLog`): the embedded
//! store behind the group coordinator's shards.

use std::ops::ControlFlow;

use bytes::BytesMut;
use cairn_runtime::{BatchTag, LoadStats, LogFault, LogRecord, RecordLog, RecordSink};

use crate::batch::{self, encode_tagged, PlainRecord};
use crate::{LogError, PartitionLog};

/// How much one read takes while loading.
const LOAD_READ_BYTES: usize = 8 << 20;

fn fault(e: LogError) -> LogFault {
    match e {
        LogError::MessageTooLarge { size, max } => LogFault::TooLarge {
            size,
            max: max as usize,
        },
        e => LogFault::Storage(e.to_string()),
    }
}

/// One request's records as uncompressed batches stamped `now_ms`: one batch per run of
/// records with the same tag (a transactional producer's records, or a marker, carry that
/// producer's id and epoch as Kafka writes them).
pub fn encode_records(records: &[LogRecord], now_ms: i64) -> BytesMut {
    let mut buf = BytesMut::new();
    let mut start = 0;
    while start < records.len() {
        let tag = records[start].tag;
        let end = records[start..]
            .iter()
            .position(|r| r.tag != tag)
            .map_or(records.len(), |n| start + n);
        let plain: Vec<PlainRecord> = records[start..end]
            .iter()
            .map(|r| PlainRecord {
                key: Some(&r.key),
                value: r.value.as_deref(),
                timestamp: now_ms,
            })
            .collect();
        let (producer, control) = match tag {
            BatchTag::Plain => (None, false),
            BatchTag::Transactional {
                producer_id,
                producer_epoch,
            } => (Some((producer_id, producer_epoch)), false),
            BatchTag::Control {
                producer_id,
                producer_epoch,
            } => (Some((producer_id, producer_epoch)), true),
        };
        buf.extend_from_slice(&encode_tagged(&plain, producer, control));
        start = end;
    }
    buf
}

fn tag_of(producer_id: i64, producer_epoch: i16, transactional: bool, control: bool) -> BatchTag {
    match (transactional, control) {
        (_, true) => BatchTag::Control {
            producer_id,
            producer_epoch,
        },
        (true, false) => BatchTag::Transactional {
            producer_id,
            producer_epoch,
        },
        (false, false) => BatchTag::Plain,
    }
}

impl RecordLog for PartitionLog {
    fn append(&self, batches: &[Vec<LogRecord>], now_ms: i64) -> Result<i64, LogFault> {
        let mut buf = BytesMut::new();
        for b in batches.iter().filter(|b| !b.is_empty()) {
            buf.extend_from_slice(&encode_records(b, now_ms));
        }
        if buf.is_empty() {
            return Ok(self.log_end_offset());
        }
        // All batches in one append: one write, validated and placed as a whole.
        let info = self.append_internal(&buf, now_ms).map_err(fault)?;
        Ok(info.last_offset + 1)
    }

    fn sync(&self) -> Result<(), LogFault> {
        PartitionLog::sync(self).map(|_| ()).map_err(fault)
    }

    fn truncate(&self, offset: i64) -> Result<(), LogFault> {
        self.truncate_to(offset).map_err(fault)
    }

    fn end_offset(&self) -> i64 {
        self.log_end_offset()
    }

    fn max_batch_bytes(&self) -> usize {
        self.config().max_message_bytes as usize
    }

    fn load(&self, f: &mut RecordSink<'_>) -> Result<LoadStats, LogFault> {
        let mut stats = LoadStats::default();
        for d in self.damage() {
            stats.lost.push((d.first_offset, d.end_offset));
        }
        let mut reader = batch::RecordReader::new(self.config().max_uncompressed_bytes());
        let end = self.log_end_offset();
        let mut offset = self.log_start_offset();
        while offset < end {
            let read = match self.read(offset, LOAD_READ_BYTES) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(dir = %self.dir().display(), offsets_lost = %format!("{offset}..{end}"),
                        "cannot read, skipping the rest of the log: {e}");
                    stats.lost.push((offset, Some(end)));
                    break;
                }
            };
            if read.data.is_empty() {
                break;
            }
            let from = offset;
            let records = &mut stats.records;
            let mut lost = Vec::new();
            let walked = reader.read(
                &read.data,
                |r| {
                    if r.offset >= from {
                        if let Some(key) = r.key {
                            let tag =
                                tag_of(r.producer_id, r.producer_epoch, r.transactional, r.control);
                            f(r.offset, tag, key, r.value);
                            *records += 1;
                        }
                    }
                    ControlFlow::Continue(())
                },
                |view, e| {
                    let (first, after) = (view.base_offset(), view.next_offset());
                    tracing::error!(dir = %self.dir().display(), offsets_lost = %format!("{first}..{after}"),
                        "skipping an unreadable batch: {e}");
                    lost.push((first, Some(after)));
                },
            );
            stats.lost.extend(lost);
            match walked.next_offset {
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
        Ok(stats)
    }
}
