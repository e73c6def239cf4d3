//! `__transaction_state` records in Kafka's formats.
//!
//! Key: int16 version 0, then the transactional id (int16 length + UTF-8). Value: int16
//! version, then producer id (int64), producer epoch (int16), transaction timeout (int32),
//! status (int8), partitions (a nullable array of topic + int32 partition array), last update
//! and start timestamps (int64). Version 0 is written; version 1 (flexible: compact lengths
//! and tagged fields, which may carry the previous producer id) is read too, so a log written
//! by a newer writer loads. A tombstone removes an expired transactional id.

use std::collections::BTreeSet;

use crate::coordinator::{TopicPartition, TxnMeta, TxnState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: &str) -> Result<T, RecordError> {
    Err(RecordError(what.to_string()))
}

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Transactional ids and topic names are far below 32 KiB (the wire caps them).
    let len = s.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

pub fn decode_key(key: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader::new(key);
    let version = r.i16()?;
    if version != 0 {
        return err(&format!("unknown transaction log key version {version}"));
    }
    r.string()
}

pub fn encode_value(m: &TxnMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&m.producer_id.to_be_bytes());
    out.extend_from_slice(&m.producer_epoch.to_be_bytes());
    out.extend_from_slice(&m.timeout_ms.to_be_bytes());
    out.push(m.state.code() as u8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &m.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (t, ps) in topics {
        put_string(&mut out, t);
        out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&m.last_update_ms.to_be_bytes());
    out.extend_from_slice(&m.start_ms.to_be_bytes());
    out
}

/// The stored part of a transaction's metadata.
pub fn decode_value(transactional_id: &str, value: &[u8]) -> Result<TxnMeta, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        v => return err(&format!("unknown transaction log value version {v}")),
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let code = r.i8()?;
    let Some(state) = TxnState::from_code(code) else {
        return err(&format!("unknown transaction status {code}"));
    };
    let mut partitions = BTreeSet::new();
    let topics = r.array_len(flexible)?;
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            r.compact_string()?
        } else {
            r.string()?
        };
        let n = r.array_len(flexible)?.unwrap_or(0);
        for _ in 0..n {
            partitions.insert(TopicPartition::new(&topic, r.i32()?));
        }
        if flexible {
            r.skip_tags(|_, _| Ok(()))?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut prev_producer_id = -1;
    if flexible {
        r.skip_tags(|tag, data| {
            if tag == 0 && data.len() == 8 {
                prev_producer_id = i64::from_be_bytes(data.try_into().expect("8 bytes"));
            }
            Ok(())
        })?;
    }
    Ok(TxnMeta {
        transactional_id: transactional_id.to_string(),
        producer_id,
        prev_producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return err("record ends early");
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn varint(&mut self) -> Result<u32, RecordError> {
        let mut v = 0u32;
        for i in 0..5 {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint too long")
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return err("null string");
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec()).or_else(|_| err("string is not UTF-8"))
    }

    fn compact_string(&mut self) -> Result<String, RecordError> {
        let len = self.varint()?;
        if len == 0 {
            return err("null string");
        }
        let b = self.take(len as usize - 1)?;
        String::from_utf8(b.to_vec()).or_else(|_| err("string is not UTF-8"))
    }

    /// An array's length (`None` for null); each element takes at least 4 bytes, so a count
    /// beyond what is left is refused before anything is allocated for it.
    fn array_len(&mut self, flexible: bool) -> Result<Option<usize>, RecordError> {
        let n = if flexible {
            let n = self.varint()?;
            if n == 0 {
                return Ok(None);
            }
            (n - 1) as i64
        } else {
            self.i32()? as i64
        };
        if n < 0 {
            return Ok(None);
        }
        if n as usize > self.buf.len() / 4 + 1 {
            return err("array count beyond the record");
        }
        Ok(Some(n as usize))
    }

    fn skip_tags(
        &mut self,
        mut f: impl FnMut(u32, &[u8]) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        let n = self.varint()?;
        for _ in 0..n {
            let tag = self.varint()?;
            let len = self.varint()? as usize;
            let data = self.take(len)?;
            f(tag, data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips() {
        let mut m = TxnMeta::new("t", 42, 30_000, 1000);
        m.producer_epoch = 3;
        m.state = TxnState::Ongoing;
        m.partitions.insert(TopicPartition::new("a", 1));
        m.partitions.insert(TopicPartition::new("a", 0));
        m.partitions.insert(TopicPartition::new("b", 7));
        m.start_ms = 2000;
        m.last_update_ms = 2500;
        let v = encode_value(&m);
        let mut back = decode_value("t", &v).unwrap();
        back.last_producer_epoch = m.last_producer_epoch;
        assert_eq!(back, m);
        assert_eq!(decode_key(&encode_key("t")).unwrap(), "t");
    }

    #[test]
    fn truncated_and_hostile_values_are_refused() {
        let m = TxnMeta::new("t", 1, 1000, 0);
        let v = encode_value(&m);
        for cut in 0..v.len() {
            assert!(decode_value("t", &v[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = v[..17].to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_value("t", &huge).is_err());
    }
}
