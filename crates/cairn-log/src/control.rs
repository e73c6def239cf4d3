//! Transaction markers: Kafka's control record key (int16 version 0, int16 type: 0 ABORT,
//! 1 COMMIT) and value (int16 version 0, int32 coordinator epoch).

/// The outcome a marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// The kind of a control record from its key; `None` for other control records (Kafka has
    /// some for its own replication) or a key too short to be one.
    pub fn decode(key: &[u8]) -> Option<MarkerKind> {
        if key.len() < 4 {
            return None;
        }
        match i16::from_be_bytes([key[2], key[3]]) {
            0 => Some(MarkerKind::Abort),
            1 => Some(MarkerKind::Commit),
            _ => None,
        }
    }
}

/// The key and value of a marker record.
pub fn encode_marker(kind: MarkerKind, coordinator_epoch: i32) -> (Vec<u8>, Vec<u8>) {
    let ty: i16 = match kind {
        MarkerKind::Abort => 0,
        MarkerKind::Commit => 1,
    };
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&ty.to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    (key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let (key, value) = encode_marker(kind, 7);
            assert_eq!(MarkerKind::decode(&key), Some(kind));
            assert_eq!(value, vec![0, 0, 0, 0, 0, 7]);
        }
        assert_eq!(MarkerKind::decode(&[0, 0, 0]), None);
        assert_eq!(MarkerKind::decode(&[0, 0, 0, 5]), None);
    }
}
