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

/// Who writes a batch, for idempotent and transactional producers: the
/// producer id and epoch from InitProducerId, the sequence of the batch's
/// first record in its partition, and whether it belongs to a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

/// Encodes `records` as one v2 record batch without producer id (a plain,
/// non-idempotent producer). The broker assigns the real offsets.
pub fn encode_batch(records: &[ProduceRecord], compression: Compression) -> Result<Bytes> {
    encode_batch_as(records, compression, None)
}

/// [`encode_batch`] for the producer `producer` (none: a plain producer).
pub fn encode_batch_as(
    records: &[ProduceRecord],
    compression: Compression,
    producer: Option<ProducerIdentity>,
) -> Result<Bytes> {
    if records.is_empty() {
        return Err(Error::Records(anyhow::anyhow!(
            "a batch needs at least one record"
        )));
    }
    let now = now_ms();
    // Without a producer the base sequence must be -1, the "no sequence" marker.
    let (producer_id, producer_epoch, base_sequence, transactional) = match producer {
        Some(p) => (
            p.producer_id,
            p.producer_epoch,
            p.base_sequence,
            p.transactional,
        ),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, -1, false),
    };
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset minus sequence
            // changes, so sequences advance with offsets; only the base
            // sequence goes on the wire.
            sequence: base_sequence.wrapping_add(i as i32),
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

/// Byte positions in a v2 batch header.
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;
const BATCH_HEADER_LEN: usize = 61;
const TRANSACTIONAL_FLAG: i16 = 1 << 4;
const CONTROL_FLAG: i16 = 1 << 5;

/// Rewrites the producer fields and transactional flag of one encoded batch
/// and recomputes its CRC, so a producer can send a pre-encoded batch again
/// under a new sequence without encoding its records again.
pub fn restamp_batch(batch: &[u8], producer: ProducerIdentity) -> Result<Bytes> {
    if batch.len() < BATCH_HEADER_LEN || batch[MAGIC_OFFSET] != 2 {
        return Err(Error::Records(anyhow::anyhow!(
            "not a single v2 record batch"
        )));
    }
    let mut out = BytesMut::from(batch);
    let attributes = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]]);
    if attributes & CONTROL_FLAG != 0 {
        return Err(Error::Records(anyhow::anyhow!(
            "control batches are written by the broker"
        )));
    }
    let attributes = if producer.transactional {
        attributes | TRANSACTIONAL_FLAG
    } else {
        attributes & !TRANSACTIONAL_FLAG
    };
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8]
        .copy_from_slice(&producer.producer_id.to_be_bytes());
    out[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer.producer_epoch.to_be_bytes());
    out[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&producer.base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

/// Number of records in an encoded v2 batch, from its header.
pub fn batch_record_count(batch: &[u8]) -> Option<i32> {
    let field = batch.get(RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4)?;
    Some(i32::from_be_bytes(field.try_into().ok()?))
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
