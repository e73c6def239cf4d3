//! The embedded consumer protocol carried in JoinGroup metadata and SyncGroup assignments
//! when `protocol_type = "consumer"`: an int16 version followed by a non-flexible struct.
//!
//! Decoding is tolerant on purpose: fields may only ever be appended, so versions above 3
//! are read as v3, and a blob that ends early keeps whatever was read before the end.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    pub user_data: Option<Vec<u8>>,
    pub owned_partitions: Vec<(String, Vec<i32>)>,
    pub generation_id: i32,
    pub rack_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub version: i16,
    pub partitions: Vec<(String, Vec<i32>)>,
    pub user_data: Option<Vec<u8>>,
}

impl Assignment {
    /// Flattened (topic, partition) pairs, in encoded order.
    pub fn topic_partitions(&self) -> Vec<(String, i32)> {
        self.partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Too short to hold even the version.
    Empty,
    NegativeVersion(i16),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// `None` from any read means "the blob ended here".
impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        let raw = self.take(n as usize)?;
        Some(Some(String::from_utf8_lossy(raw).into_owned()))
    }
    fn string(&mut self) -> Option<String> {
        Some(self.nullable_string()?.unwrap_or_default())
    }
    fn nullable_bytes(&mut self) -> Option<Option<Vec<u8>>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?.to_vec()))
    }
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let n = self.i32()?;
        let mut out = Vec::new();
        for _ in 0..n.max(0) {
            out.push(item(self)?);
        }
        Some(out)
    }
    fn topic_partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        self.array(|c| {
            let t = c.string()?;
            let ps = c.array(|c| c.i32())?;
            Some((t, ps))
        })
    }
}

fn version(c: &mut Cursor<'_>) -> Result<i16, ProtocolError> {
    let v = c.i16().ok_or(ProtocolError::Empty)?;
    if v < 0 {
        return Err(ProtocolError::NegativeVersion(v));
    }
    Ok(v)
}

pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription, ProtocolError> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let v = version(&mut c)?;
    let mut s = Subscription {
        version: v,
        generation_id: -1,
        ..Default::default()
    };
    // Each step stores its field only when fully read; an early end keeps the rest default.
    let _ = (|| -> Option<()> {
        s.topics = c.array(|c| c.string())?;
        s.user_data = c.nullable_bytes()?;
        if v >= 1 {
            s.owned_partitions = c.topic_partitions()?;
        }
        if v >= 2 {
            s.generation_id = c.i32()?;
        }
        if v >= 3 {
            s.rack_id = c.nullable_string()?;
        }
        Some(())
    })();
    Ok(s)
}

pub fn decode_assignment(bytes: &[u8]) -> Result<Assignment, ProtocolError> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let v = version(&mut c)?;
    let mut a = Assignment {
        version: v,
        ..Default::default()
    };
    let _ = (|| -> Option<()> {
        a.partitions = c.topic_partitions()?;
        a.user_data = c.nullable_bytes()?;
        Some(())
    })();
    Ok(a)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn put_topic_partitions(out: &mut Vec<u8>, tps: &[(String, Vec<i32>)]) {
    out.extend_from_slice(&(tps.len() as i32).to_be_bytes());
    for (t, ps) in tps {
        put_str(out, t);
        out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

/// Encodes an assignment. The layout is identical for v0–v3, so the version is only a label.
pub fn encode_assignment(a: &Assignment) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&a.version.max(0).to_be_bytes());
    put_topic_partitions(&mut out, &a.partitions);
    put_nullable_bytes(&mut out, a.user_data.as_deref());
    out
}

/// Encodes a subscription at `s.version` (clamped to 0..=3). Used by tests and tools.
pub fn encode_subscription(s: &Subscription) -> Vec<u8> {
    let v = s.version.clamp(0, 3);
    let mut out = Vec::new();
    out.extend_from_slice(&v.to_be_bytes());
    out.extend_from_slice(&(s.topics.len() as i32).to_be_bytes());
    for t in &s.topics {
        put_str(&mut out, t);
    }
    put_nullable_bytes(&mut out, s.user_data.as_deref());
    if v >= 1 {
        put_topic_partitions(&mut out, &s.owned_partitions);
    }
    if v >= 2 {
        out.extend_from_slice(&s.generation_id.to_be_bytes());
    }
    if v >= 3 {
        match &s.rack_id {
            Some(r) => put_str(&mut out, r),
            None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    out
}

/// Groups (topic, partition) pairs into the per-topic shape, topics sorted, partitions sorted.
pub fn group_by_topic(pairs: impl IntoIterator<Item = (String, i32)>) -> Vec<(String, Vec<i32>)> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in pairs {
        m.entry(t).or_default().push(p);
    }
    m.into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            (t, ps)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(version: i16) -> Subscription {
        Subscription {
            version,
            topics: vec!["a".into(), "bb".into()],
            user_data: Some(vec![1, 2]),
            owned_partitions: if version >= 1 {
                vec![("a".into(), vec![0, 2])]
            } else {
                vec![]
            },
            generation_id: if version >= 2 { 5 } else { -1 },
            rack_id: if version >= 3 {
                Some("r1".into())
            } else {
                None
            },
        }
    }

    #[test]
    fn subscription_roundtrip_v0_to_v3() {
        for v in 0..=3 {
            let s = sub(v);
            assert_eq!(decode_subscription(&encode_subscription(&s)).unwrap(), s);
        }
    }

    #[test]
    fn subscription_v0_hand_bytes() {
        // kafkajs / kafka-python style: v0, topics ["t"], null user data.
        let b = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = decode_subscription(&b).unwrap();
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.user_data, None);
        assert_eq!(s.generation_id, -1);
    }

    #[test]
    fn higher_versions_read_as_v3() {
        let mut b = encode_subscription(&sub(3));
        b[1] = 7;
        b.extend_from_slice(&[1, 2, 3, 4]); // a future appended field
        let s = decode_subscription(&b).unwrap();
        assert_eq!(s.version, 7);
        assert_eq!(s.topics, sub(3).topics);
        assert_eq!(s.rack_id.as_deref(), Some("r1"));
    }

    #[test]
    fn short_blobs_keep_what_was_read() {
        let full = encode_subscription(&sub(3));
        // Cut inside the generation id: topics, user data and owned partitions survive.
        let cut = &full[..full.len() - 6];
        let s = decode_subscription(cut).unwrap();
        assert_eq!(s.topics, sub(3).topics);
        assert_eq!(s.owned_partitions, sub(3).owned_partitions);
        assert_eq!(s.generation_id, -1);
        assert_eq!(s.rack_id, None);
        // A v3 header with nothing after it yields an empty subscription.
        assert_eq!(
            decode_subscription(&[0, 3]).unwrap().topics,
            Vec::<String>::new()
        );
        assert_eq!(decode_subscription(&[0]), Err(ProtocolError::Empty));
        assert_eq!(
            decode_subscription(&[0xff, 0xff]),
            Err(ProtocolError::NegativeVersion(-1))
        );
    }

    #[test]
    fn assignment_roundtrip_and_bytes() {
        let a = Assignment {
            version: 0,
            partitions: vec![("t".into(), vec![1])],
            user_data: None,
        };
        let b = encode_assignment(&a);
        assert_eq!(
            b,
            vec![0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_assignment(&b).unwrap(), a);
        assert_eq!(a.topic_partitions(), vec![("t".to_string(), 1)]);
        // An empty assignment (what the coordinator fills in) decodes as nothing assigned.
        assert!(decode_assignment(&[0, 0]).unwrap().partitions.is_empty());
        assert!(decode_assignment(&[]).is_err());
    }

    #[test]
    fn huge_array_count_does_not_allocate_or_panic() {
        let b = [0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(decode_subscription(&b).unwrap().topics.is_empty());
    }
}
