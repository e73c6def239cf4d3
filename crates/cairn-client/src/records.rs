//! Building record batches for Produce and reading them back from Fetch.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

use crate::error::{Error, Result};

/// A record to be produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; the current time when `None`.
    pub timestamp: Option<i64>,
}

impl ProduceRecord {
    /// A record with a value and nothing else.
    pub fn new(value: impl Into<Bytes>) -> Self {
        ProduceRecord {
            value: Some(value.into()),
            ..Default::default()
        }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// A record read back from a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Encodes `records` as one v2 record batch without producer id (a plain,
/// non-idempotent producer). The broker assigns the real offsets.
pub fn encode_batch(records: &[ProduceRecord], compression: Compression) -> Result<Bytes> {
    if records.is_empty() {
        return Err(Error::Records(anyhow::anyhow!(
            "a batch needs at least one record"
        )));
    }
    let now = now_ms();
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset minus sequence
            // changes, so sequences advance with offsets; starting at -1
            // makes the batch's base sequence the "no sequence" marker.
            sequence: (i as i32).wrapping_sub(1),
            timestamp: r.timestamp.unwrap_or(now),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &encoded, &options).map_err(Error::Records)?;
    Ok(buf.freeze())
}

/// Size of the batch header fields before the batch length: base offset (8)
/// and the length itself (4).
const BATCH_PREFIX: usize = 12;
const MAGIC_OFFSET: usize = 16;

/// Splits fetched data into whole batches. A broker may cut the last batch
/// short to respect the fetch size; that tail is dropped, not an error.
pub fn split_batches(data: &Bytes) -> Result<Vec<Bytes>> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= BATCH_PREFIX {
        let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().expect("4 bytes"));
        if len < 0 {
            return Err(Error::Records(anyhow::anyhow!(
                "negative batch length {len}"
            )));
        }
        let end = pos + BATCH_PREFIX + len as usize;
        if end > data.len() {
            break;
        }
        if let Some(&magic) = data.get(pos + MAGIC_OFFSET) {
            if end > pos + MAGIC_OFFSET && magic != 2 {
                return Err(Error::Records(anyhow::anyhow!(
                    "message format v{magic} is not supported (only v2 batches)"
                )));
            }
        }
        batches.push(data.slice(pos..end));
        pos = end;
    }
    Ok(batches)
}

/// Decodes the whole batches in `data`, keeping data records at or after
/// `from_offset` (a fetch may start inside a batch) and skipping control
/// records such as transaction markers.
pub fn decode_records(data: &Bytes, from_offset: i64) -> Result<Vec<ConsumedRecord>> {
    let mut out = Vec::new();
    for mut batch in split_batches(data)? {
        let set = RecordBatchDecoder::decode(&mut batch).map_err(Error::Records)?;
        out.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control && r.offset >= from_offset)
                .map(|r| ConsumedRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    timestamp_type: r.timestamp_type,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, BufMut};

    fn sample() -> Vec<ProduceRecord> {
        vec![
            ProduceRecord::new("one")
                .with_key("k1")
                .with_timestamp(1000),
            ProduceRecord::new("two")
                .with_header("h", Some(Bytes::from_static(b"v")))
                .with_timestamp(1001),
            ProduceRecord::default().with_timestamp(1002),
        ]
    }

    #[test]
    fn encodes_one_batch_per_call() {
        let batch = encode_batch(&sample(), Compression::None).unwrap();
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        assert!(!buf.has_remaining(), "everything must be a single batch");
        assert_eq!(set.records.len(), 3);
        // Base sequence sits at byte 53 of the v2 header; -1 means none.
        let base_sequence = (&batch[53..57]).get_i32();
        assert_eq!(base_sequence, -1);
        let producer_id = (&batch[43..51]).get_i64();
        assert_eq!(producer_id, -1);
    }

    #[test]
    fn round_trips_and_filters_by_offset() {
        let batch = encode_batch(&sample(), Compression::None).unwrap();
        let mut rebased = BytesMut::from(&batch[..]);
        // Brokers rewrite the base offset; simulate offset 40.
        rebased[..8].copy_from_slice(&40i64.to_be_bytes());
        let data = rebased.freeze();

        let all = decode_records(&data, 0).unwrap();
        assert_eq!(
            all.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [40, 41, 42]
        );
        assert_eq!(all[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(all[0].value.as_deref(), Some(&b"one"[..]));
        assert_eq!(
            all[1].headers,
            vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
        );
        assert_eq!(all[2].value, None);
        assert_eq!(all[2].timestamp, 1002);

        let tail = decode_records(&data, 42).unwrap();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].offset, 42);
    }

    #[test]
    fn drops_truncated_trailing_batch() {
        let first = encode_batch(&sample()[..1], Compression::None).unwrap();
        let second = encode_batch(&sample()[1..], Compression::None).unwrap();
        let mut data = BytesMut::new();
        data.put_slice(&first);
        data.put_slice(&second[..second.len() - 5]);
        let data = data.freeze();
        assert_eq!(split_batches(&data).unwrap().len(), 1);
        assert_eq!(decode_records(&data, 0).unwrap().len(), 1);
    }

    #[test]
    fn rejects_legacy_magic() {
        let mut data = BytesMut::from(&encode_batch(&sample(), Compression::None).unwrap()[..]);
        data[MAGIC_OFFSET] = 1;
        assert!(split_batches(&data.freeze()).is_err());
    }
}
