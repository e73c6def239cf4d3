//! Group → `__consumer_offsets` partition mapping, bit-compatible with Java clients and brokers.

/// Java's `String.hashCode`: over UTF-16 code units, with wrapping 32-bit arithmetic.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// The offsets-topic partition that owns `group_id`: `abs(hashCode) % num_partitions`.
///
/// Kafka's `Utils.abs` maps `i32::MIN` to 0 rather than overflowing, so we do the same.
/// A non-positive partition count is a caller bug; we answer 0 rather than panic.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hash_codes() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("abc"), 96354);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("console-consumer-12345"), 158_455_506);
        // Non-ASCII: é is one UTF-16 unit, the emoji is a surrogate pair (two units).
        assert_eq!(java_string_hash("héllo"), 103_094_734);
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn partitions() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 47);
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("😀", 50), 49);
        assert_eq!(partition_for("x", 0), 0);
    }

    #[test]
    fn min_value_maps_to_zero() {
        // A well-known string whose Java hashCode is exactly Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("polygenelubricants", 7), 0);
    }
}
