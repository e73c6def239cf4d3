//! Produce v0-2: advertised (older librdkafka turns compression off when Produce's minimum version
//! is above 0) but not served. Kafka 4 answers them with UNSUPPORTED_VERSION for every partition
//! rather than dropping the connection, so a client sees why; so does this broker. The crate's
//! types start at v3, so the request is read and the answer written here, by hand.

use bytes::{BufMut, Bytes, BytesMut};

/// Kafka's UNSUPPORTED_VERSION error code (the wire layer names no error types).
const UNSUPPORTED_VERSION: i16 = 35;

/// A bounds-checked reader: any short or negative length is `None`, and the caller closes the
/// connection, as for any request it cannot parse.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A string or bytes field with an `i16` length (-1: null).
    fn short_bytes(&mut self) -> Option<&'a [u8]> {
        match self.i16()? {
            -1 => Some(&[]),
            n if n >= 0 => self.take(n as usize),
            _ => None,
        }
    }
    /// A count or length field: -1 (null) reads as 0.
    fn count(&mut self) -> Option<usize> {
        match self.i32()? {
            -1 => Some(0),
            n if n >= 0 => Some(n as usize),
            _ => None,
        }
    }
}

/// The answer to a Produce request of version 0-2 (`frame` without its size prefix), or `None`
/// when it cannot be parsed or asks for no answer (acks=0): the connection is then closed, which
/// is how Kafka tells an acks=0 producer of an error.
pub fn refuse(frame: &Bytes, version: i16, correlation_id: i32) -> Option<BytesMut> {
    let mut r = Reader(frame.get(8..)?);
    r.short_bytes()?; // client id
    let acks = r.i16()?;
    r.i32()?; // timeout
    let topics = r.count()?;
    // Every entry takes at least 6 bytes of the request, so the answer stays a small multiple
    // of the frame.
    let mut answer: Vec<(&[u8], Vec<i32>)> = Vec::with_capacity(topics.min(frame.len() / 6));
    for _ in 0..topics {
        let name = r.short_bytes()?;
        let partitions = r.count()?;
        let mut indexes = Vec::with_capacity(partitions.min(frame.len() / 8));
        for _ in 0..partitions {
            indexes.push(r.i32()?);
            let len = r.count()?;
            r.take(len)?;
        }
        answer.push((name, indexes));
    }
    if acks == 0 {
        return None;
    }
    let mut out = BytesMut::with_capacity(frame.len() * 2 + 64);
    out.put_i32(0); // size, filled in below
    out.put_i32(correlation_id);
    out.put_i32(answer.len() as i32);
    for (name, indexes) in &answer {
        out.put_i16(name.len() as i16);
        out.put_slice(name);
        out.put_i32(indexes.len() as i32);
        for index in indexes {
            out.put_i32(*index);
            out.put_i16(UNSUPPORTED_VERSION);
            out.put_i64(-1); // base offset
            if version >= 2 {
                out.put_i64(-1); // log append time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle time
    }
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: i16, acks: i16) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i16(version);
        b.put_i32(77);
        b.put_i16(2);
        b.put_slice(b"id");
        b.put_i16(acks);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        for p in [0, 5] {
            b.put_i32(p);
            b.put_i32(3);
            b.put_slice(b"abc");
        }
        b.freeze()
    }

    #[test]
    fn every_partition_is_refused_with_unsupported_version() {
        let out = refuse(&request(2, 1), 2, 77).unwrap();
        let mut want = BytesMut::new();
        want.put_i32(77);
        want.put_i32(1);
        want.put_i16(1);
        want.put_slice(b"t");
        want.put_i32(2);
        for p in [0, 5] {
            want.put_i32(p);
            want.put_i16(35);
            want.put_i64(-1);
            want.put_i64(-1);
        }
        want.put_i32(0);
        assert_eq!(&out[4..], &want[..]);
        assert_eq!(
            i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize,
            out.len() - 4
        );
        // v0 has neither the log append time nor the throttle time.
        assert_eq!(
            refuse(&request(0, -1), 0, 77).unwrap().len(),
            out.len() - 2 * 8 - 4
        );
    }

    #[test]
    fn acks_zero_and_truncated_requests_get_no_answer() {
        assert!(refuse(&request(1, 0), 1, 77).is_none());
        let full = request(1, 1);
        for cut in 0..full.len() {
            assert!(refuse(&full.slice(..cut), 1, 77).is_none(), "cut at {cut}");
        }
    }
}
