//! Kafka's consumer-group record codecs: round trips, Kafka's exact layout, hostile input.

use cairn_group::consumer::records::*;
use cairn_group::consumer::Assignment;

fn id(b: u8) -> [u8; 16] {
    [b; 16]
}

fn assignment(items: &[(u8, &[i32])]) -> Assignment {
    items
        .iter()
        .map(|(t, ps)| (id(*t), ps.iter().copied().collect()))
        .collect()
}

fn member() -> MemberMetadataValue {
    MemberMetadataValue {
        instance_id: Some("inst".into()),
        rack_id: None,
        client_id: "cid".into(),
        client_host: "/127.0.0.1".into(),
        subscribed_topic_names: vec!["a".into(), "bb".into()],
        subscribed_topic_regex: Some("t.*".into()),
        rebalance_timeout_ms: 30000,
        server_assignor: Some("uniform".into()),
        classic: None,
    }
}

fn current() -> CurrentMemberAssignmentValue {
    CurrentMemberAssignmentValue {
        member_epoch: 7,
        previous_member_epoch: 6,
        state: 1,
        assigned: assignment(&[(1, &[0, 2]), (2, &[5])]),
        pending_revocation: assignment(&[(3, &[1])]),
    }
}

/// Every valid encoding and its decoder, for the prefix and garbage tests.
type Case = (Vec<u8>, fn(&[u8]) -> bool);

fn cases() -> Vec<Case> {
    vec![
        (
            encode_group_metadata(&GroupMetadataValue { epoch: 9 }),
            |b| decode_group_metadata(b).is_ok(),
        ),
        (
            encode_partition_metadata(&PartitionMetadataValue {
                topics: vec![TopicMetadata {
                    id: id(4),
                    name: "t".into(),
                    partitions: 3,
                }],
            }),
            |b| decode_partition_metadata(b).is_ok(),
        ),
        (encode_member_metadata(&member()), |b| {
            decode_member_metadata(b).is_ok()
        }),
        (
            encode_target_metadata(&TargetAssignmentMetadataValue {
                assignment_epoch: 4,
            }),
            |b| decode_target_metadata(b).is_ok(),
        ),
        (
            encode_target_member(&TargetAssignmentMemberValue {
                partitions: assignment(&[(1, &[0, 1])]),
            }),
            |b| decode_target_member(b).is_ok(),
        ),
        (encode_current_assignment(&current()), |b| {
            decode_current_assignment(b).is_ok()
        }),
    ]
}

#[test]
fn keys_round_trip_and_other_types_are_not_ours() {
    let keys = [
        ConsumerKey::GroupMetadata { group: "g".into() },
        ConsumerKey::PartitionMetadata { group: "g".into() },
        ConsumerKey::MemberMetadata {
            group: "g".into(),
            member: "m".into(),
        },
        ConsumerKey::TargetAssignmentMetadata { group: "g".into() },
        ConsumerKey::TargetAssignmentMember {
            group: "g".into(),
            member: "m".into(),
        },
        ConsumerKey::CurrentMemberAssignment {
            group: "g".into(),
            member: "m".into(),
        },
    ];
    for (i, k) in keys.iter().enumerate() {
        let b = encode_key(k);
        assert_eq!(i16::from_be_bytes([b[0], b[1]]), 3 + i as i16);
        assert_eq!(decode_key(&b).unwrap().as_ref(), Some(k));
        assert_eq!(k.group(), "g");
        for n in 0..b.len() {
            assert!(decode_key(&b[..n]).is_err(), "prefix {n} of key {i}");
        }
    }
    // Kafka's layout: int16 type, int16-length group, int16-length member.
    assert_eq!(
        encode_key(&ConsumerKey::MemberMetadata {
            group: "gr".into(),
            member: "m".into()
        }),
        [0, 5, 0, 2, b'g', b'r', 0, 1, b'm']
    );
    assert_eq!(
        decode_key(&[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0]),
        Ok(None)
    );
    assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), Ok(None));
    assert_eq!(decode_key(&[0, 9, 0, 1, b'g']), Ok(None));
}

#[test]
fn values_round_trip() {
    let g = GroupMetadataValue { epoch: -3 };
    assert_eq!(decode_group_metadata(&encode_group_metadata(&g)), Ok(g));
    let p = PartitionMetadataValue {
        topics: vec![
            TopicMetadata {
                id: id(1),
                name: "a".into(),
                partitions: 3,
            },
            TopicMetadata {
                id: id(2),
                name: "".into(),
                partitions: 0,
            },
        ],
    };
    assert_eq!(
        decode_partition_metadata(&encode_partition_metadata(&p)),
        Ok(p)
    );
    let m = member();
    assert_eq!(decode_member_metadata(&encode_member_metadata(&m)), Ok(m));
    let empty = MemberMetadataValue::default();
    assert_eq!(
        decode_member_metadata(&encode_member_metadata(&empty)),
        Ok(empty)
    );
    let t = TargetAssignmentMetadataValue {
        assignment_epoch: 12,
    };
    assert_eq!(decode_target_metadata(&encode_target_metadata(&t)), Ok(t));
    let tm = TargetAssignmentMemberValue {
        partitions: assignment(&[(1, &[0, 3])]),
    };
    assert_eq!(
        decode_target_member(&encode_target_member(&tm)),
        Ok(tm.clone())
    );
    // A topic with no partitions is no part of an assignment: it is neither written nor read.
    let with_empty = TargetAssignmentMemberValue {
        partitions: assignment(&[(1, &[0, 3]), (9, &[])]),
    };
    assert_eq!(
        decode_target_member(&encode_target_member(&with_empty)),
        Ok(tm)
    );
    let c = current();
    assert_eq!(
        decode_current_assignment(&encode_current_assignment(&c)),
        Ok(c)
    );
}

/// ConsumerGroupMemberMetadataValue v0, written out field by field as Kafka's schema lays it
/// out, with a ClassicMemberMetadata tag (0) and an unknown tag (5) that must be skipped.
fn kafka_member_bytes() -> Vec<u8> {
    let mut b = vec![0, 0]; // version 0
    b.extend([5, b'i', b'n', b's', b't']); // InstanceId "inst"
    b.push(0); // RackId null
    b.extend([4, b'c', b'i', b'd']); // ClientId
    b.push(11);
    b.extend(b"/127.0.0.1"); // ClientHost
    b.extend([3, 2, b'a', 3, b'b', b'b']); // SubscribedTopicNames ["a", "bb"]
    b.extend([4, b't', b'.', b'*']); // SubscribedTopicRegex
    b.extend(30000i32.to_be_bytes()); // RebalanceTimeoutMs
    b.extend([8]);
    b.extend(b"uniform"); // ServerAssignor
                          // Tagged fields: 2 of them.
    b.push(2);
    // tag 0 ClassicMemberMetadata { SessionTimeoutMs 45000, SupportedProtocols [("range", [1])] }
    let mut classic = 45000i32.to_be_bytes().to_vec();
    classic.extend([2, 6]);
    classic.extend(b"range");
    classic.extend([2, 1, 0]); // Metadata bytes [1], struct tags
    classic.push(0); // ClassicMemberMetadata tags
    b.push(0);
    b.push(classic.len() as u8);
    b.extend(classic);
    b.extend([5, 3, 9, 9, 9]); // unknown tag 5, 3 bytes
    b
}

#[test]
fn member_metadata_matches_kafkas_layout() {
    let bytes = kafka_member_bytes();
    let classic = ClassicMemberMetadata {
        session_timeout_ms: 45000,
        protocols: vec![("range".into(), vec![1])],
    };
    let want = MemberMetadataValue {
        classic: Some(classic),
        ..member()
    };
    assert_eq!(decode_member_metadata(&bytes), Ok(want.clone()));
    // Our encoding is Kafka's bytes without the unknown tag 5.
    let ours = encode_member_metadata(&want);
    // A member of the consumer protocol writes no tags at all.
    let mut plain = encode_member_metadata(&member());
    assert_eq!(plain.pop(), Some(0));
    assert_eq!(plain, bytes[..plain.len()]);
    assert_eq!(
        bytes[plain.len()],
        2,
        "Kafka's tag count follows the fields"
    );
    // With the classic metadata: one tag, then tag 0's bytes exactly as Kafka wrote them.
    assert_eq!(ours[..plain.len()], bytes[..plain.len()]);
    assert_eq!(ours[plain.len()], 1);
    assert_eq!(
        ours[plain.len() + 1..],
        bytes[plain.len() + 1..bytes.len() - 5]
    );
}

#[test]
fn current_assignment_matches_kafkas_layout() {
    let mut b = vec![0, 0];
    b.extend(7i32.to_be_bytes());
    b.extend(6i32.to_be_bytes());
    b.push(1); // State
               // AssignedPartitions: 2 topics
    b.push(3);
    b.extend(id(1));
    b.push(3);
    b.extend(0i32.to_be_bytes());
    b.extend(2i32.to_be_bytes());
    b.push(0);
    b.extend(id(2));
    b.push(2);
    b.extend(5i32.to_be_bytes());
    b.push(0);
    // PartitionsPendingRevocation: 1 topic
    b.push(2);
    b.extend(id(3));
    b.push(2);
    b.extend(1i32.to_be_bytes());
    b.push(0);
    b.push(0); // top-level tags
    assert_eq!(encode_current_assignment(&current()), b);
    assert_eq!(decode_current_assignment(&b), Ok(current()));

    // An unknown tag inside a topic struct and at the top level, and a newer value version.
    let mut t = b.clone();
    t[1] = 1;
    let last = t.len() - 1;
    t[last] = 1;
    t.extend([7, 2, 0xab, 0xcd]);
    assert_eq!(decode_current_assignment(&t), Ok(current()));
}

#[test]
fn every_prefix_and_garbage_fails_without_panicking() {
    for (i, (bytes, ok)) in cases().into_iter().enumerate() {
        assert!(ok(&bytes), "case {i}");
        for n in 0..bytes.len() {
            assert!(!ok(&bytes[..n]), "case {i} prefix {n}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(!ok(&extra), "case {i} trailing byte");
        // Flip every byte: must not panic (result may be either).
        for p in 0..bytes.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut g = bytes.clone();
                g[p] = v;
                let _ = ok(&g);
            }
        }
    }
    assert!(!cases()[2].1(&kafka_member_bytes()[..40]));
    // Huge counts and lengths are refused before allocating.
    let mut huge = vec![0, 0];
    huge.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_partition_metadata(&huge).is_err());
    assert!(decode_target_member(&huge).is_err());
    let mut huge_tag = vec![0, 0, 0, 0, 0, 1, 1, 0];
    huge_tag.extend([0xff; 9]);
    huge_tag.push(0x01);
    assert!(decode_group_metadata(&huge_tag).is_err());
    assert!(decode_group_metadata(&[0xff, 0xff, 0, 0, 0, 1, 0]).is_err());
}
