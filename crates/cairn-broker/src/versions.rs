//! The one table of API versions this broker serves. Advertised exactly; anything outside is refused.

use kafka_protocol::messages::ApiKey;

/// (api key, min, max). Produce advertises 0 as its minimum, as Kafka 4.x does, because older
/// librdkafka disables compression when it sees a higher minimum; v0-2 are still refused on use.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // KIP-848's consumer group protocol; left out of ApiVersions when
    // group.coordinator.rebalance.protocols does not name `consumer`.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // v6 is unstable in Kafka and beyond what the protocol crate decodes.
    (ApiKey::InitProducerId, 0, 5),
    // The original transaction protocol. AddPartitionsToTxn v4 is the brokers' batched form
    // (with KIP-890's verify-only check); its v5 and EndTxn and TxnOffsetCommit v5 belong to
    // transaction version 2 (KIP-890 part 2), which this broker does not finalize, so clients
    // stay on the original protocol.
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    // v2 of ListTransactions filters by a Java regular expression, not served.
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 1),
    // SaslHandshake v0 is followed by bare SASL tokens (no SaslAuthenticate), and librdkafka
    // 2.0 authenticates only if v0 is in the advertised range. Kafka 4 removed the ACL APIs' v0.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Topic and broker configs (KIP-339, KIP-226). ListConfigResources v0 is Kafka 4.0's
    // ListClientMetricsResources under the same key; v1 (Kafka 4.1) lists any resource type.
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListConfigResources, 0, 1),
    // Client quotas (KIP-546).
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// The version range served for `key`, if any. Produce's decodable range starts at 3.
pub fn served(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(k, lo, hi)| {
            if *k == ApiKey::Produce {
                (3, *hi)
            } else {
                (*lo, *hi)
            }
        })
}
