//! Typed domain errors become Kafka error codes here, at the edge, and nowhere else.

use cairn_config::{ConfigError, DynamicError, OpError};
use cairn_group::GroupError;
use cairn_log::{LogError, StoreError};
use cairn_txn::TxnError;
pub use kafka_protocol::ResponseError as Code;

use crate::internal_topics::{Change, Refused};

pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::OffsetOutOfRange { .. } => Code::OffsetOutOfRange.code(),
        LogError::CorruptBatch(_) => Code::CorruptMessage.code(),
        LogError::InvalidRecord(_) => Code::InvalidRecord.code(),
        LogError::UnsupportedMagic(_) => Code::UnsupportedForMessageFormat.code(),
        // Kafka's code for a batch over the size limit; Java producers answer it by splitting
        // the batch and retrying, which is what a legitimate over-inflating batch needs.
        LogError::MessageTooLarge { .. } | LogError::InflatesTooLarge { .. } => {
            Code::MessageTooLarge.code()
        }
        LogError::Io(_) => Code::KafkaStorageError.code(),
        LogError::OutOfOrderSequence { .. } => Code::OutOfOrderSequenceNumber.code(),
        LogError::InvalidProducerEpoch { .. } => Code::InvalidProducerEpoch.code(),
        LogError::InvalidTxnState(_) => Code::InvalidTxnState.code(),
        LogError::PolicyViolation(_) => Code::PolicyViolation.code(),
    }
}

pub fn group_error_code(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownServerError => Code::UnknownServerError.code(),
        GroupError::UnknownTopicOrPartition => Code::UnknownTopicOrPartition.code(),
        GroupError::OffsetMetadataTooLarge => Code::OffsetMetadataTooLarge.code(),
        GroupError::CoordinatorLoadInProgress => Code::CoordinatorLoadInProgress.code(),
        GroupError::CoordinatorNotAvailable => Code::CoordinatorNotAvailable.code(),
        GroupError::NotCoordinator => Code::NotCoordinator.code(),
        GroupError::IllegalGeneration => Code::IllegalGeneration.code(),
        GroupError::InconsistentGroupProtocol => Code::InconsistentGroupProtocol.code(),
        GroupError::InvalidCommitOffsetSize => Code::InvalidCommitOffsetSize.code(),
        GroupError::InvalidGroupId => Code::InvalidGroupId.code(),
        GroupError::UnknownMemberId => Code::UnknownMemberId.code(),
        GroupError::InvalidSessionTimeout => Code::InvalidSessionTimeout.code(),
        GroupError::RebalanceInProgress => Code::RebalanceInProgress.code(),
        GroupError::NonEmptyGroup => Code::NonEmptyGroup.code(),
        GroupError::GroupIdNotFound => Code::GroupIdNotFound.code(),
        GroupError::MemberIdRequired { .. } => Code::MemberIdRequired.code(),
        GroupError::GroupMaxSizeReached => Code::GroupMaxSizeReached.code(),
        GroupError::FencedInstanceId => Code::FencedInstanceId.code(),
        GroupError::GroupSubscribedToTopic => Code::GroupSubscribedToTopic.code(),
        GroupError::FencedMemberEpoch => Code::FencedMemberEpoch.code(),
        GroupError::StaleMemberEpoch => Code::StaleMemberEpoch.code(),
        GroupError::UnreleasedInstanceId => Code::UnreleasedInstanceId.code(),
        GroupError::UnsupportedAssignor => Code::UnsupportedAssignor.code(),
        GroupError::InvalidRegularExpression(_) => Code::InvalidRegularExpression.code(),
        GroupError::InvalidRequest(_) => Code::InvalidRequest.code(),
        GroupError::UnsupportedVersion => Code::UnsupportedVersion.code(),
    }
}

/// The transaction coordinator's errors. `fenced_known`: the request version has
/// PRODUCER_FENCED (KIP-588); older versions get INVALID_PRODUCER_EPOCH for it, as in Kafka.
pub fn txn_error_code(e: TxnError, fenced_known: bool) -> i16 {
    match e {
        TxnError::NotCoordinator => Code::NotCoordinator.code(),
        TxnError::ConcurrentTransactions => Code::ConcurrentTransactions.code(),
        TxnError::InvalidProducerIdMapping => Code::InvalidProducerIdMapping.code(),
        TxnError::ProducerFenced if fenced_known => Code::ProducerFenced.code(),
        TxnError::ProducerFenced => Code::InvalidProducerEpoch.code(),
        TxnError::InvalidTxnState => Code::InvalidTxnState.code(),
        TxnError::InvalidTransactionTimeout => Code::InvalidTransactionTimeout.code(),
        TxnError::TransactionalIdNotFound => Code::TransactionalIdNotFound.code(),
    }
}

pub fn store_error_code(e: &StoreError) -> i16 {
    match e {
        StoreError::TopicExists(_) => Code::TopicAlreadyExists.code(),
        StoreError::UnknownTopic(_) => Code::UnknownTopicOrPartition.code(),
        StoreError::InvalidPartitions(_) => Code::InvalidPartitions.code(),
        StoreError::Log(l) => log_error_code(l),
        StoreError::Io(_) | StoreError::Corrupt(_) | StoreError::Locked(_) => {
            Code::KafkaStorageError.code()
        }
    }
}

/// Kafka answers a client's writes to an internal topic with INVALID_TOPIC_EXCEPTION ("Cannot
/// append to internal topic"; likewise for DeleteRecords), and its creation of a reserved one with
/// INVALID_REQUEST ("Creation of internal topic ... is prohibited"). Kafka leaves growing,
/// deleting and reconfiguring them to ACLs, which this broker does not have; those refusals take
/// the same code as appends, the one clients already treat as final for internal topics.
pub fn internal_topic_code(e: &Refused) -> i16 {
    match e.change {
        Change::Create => Code::InvalidRequest.code(),
        Change::Append | Change::AddPartitions | Change::Delete | Change::AlterConfigs => {
            Code::InvalidTopicException.code()
        }
    }
}

/// A refused topic config change: Kafka's controller answers INVALID_CONFIG for every one.
pub fn topic_config_error(e: &ConfigError) -> (i16, String) {
    let msg = match e {
        ConfigError::Unknown(k) => format!("Unknown topic config name: {k}"),
        other => other.to_string(),
    };
    (Code::InvalidConfig.code(), msg)
}

/// IncrementalAlterConfigs operations that cannot apply (unknown key, APPEND/SUBTRACT on a key
/// that is not a list): INVALID_CONFIG, as Kafka. `kind` is "topic" or "broker".
pub fn config_op_error(e: &OpError, kind: &str) -> (i16, String) {
    let msg = match e {
        OpError::Unknown(k) => format!("Unknown {kind} config name: {k}"),
        other => other.to_string(),
    };
    (Code::InvalidConfig.code(), msg)
}

/// A refused dynamic broker config: an unknown key is INVALID_CONFIG; a read-only key or a bad
/// value INVALID_REQUEST, which is what Kafka's broker-side validation answers (KAFKA-13609).
pub fn dynamic_config_error(e: &DynamicError) -> (i16, String) {
    let code = match e {
        DynamicError::Unknown(_) => Code::InvalidConfig,
        DynamicError::NotDynamic(_) | DynamicError::Invalid(_) => Code::InvalidRequest,
    };
    (code.code(), e.to_string())
}

/// A refused client-quota request: INVALID_REQUEST, or UNSUPPORTED_VERSION for an entity type
/// a filter names that the broker does not know (Kafka's answers).
pub fn quota_error(e: &cairn_quota::QuotaError) -> (i16, String) {
    let code = match e {
        cairn_quota::QuotaError::Invalid(_) => Code::InvalidRequest,
        cairn_quota::QuotaError::UnsupportedEntityType(_) => Code::UnsupportedVersion,
    };
    (code.code(), e.to_string())
}

/// Kafka's rule for topic names: 1-249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long, the maximum is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}

#[cfg(test)]
mod group_code_tests {
    use super::*;

    #[test]
    fn group_errors_take_kafkas_codes() {
        assert_eq!(group_error_code(&GroupError::UnknownServerError), -1);
        assert_eq!(group_error_code(&GroupError::NotCoordinator), 16);
        assert_eq!(group_error_code(&GroupError::IllegalGeneration), 22);
        assert_eq!(group_error_code(&GroupError::UnknownMemberId), 25);
        assert_eq!(group_error_code(&GroupError::InvalidCommitOffsetSize), 28);
        let required = GroupError::MemberIdRequired {
            member_id: "x".into(),
        };
        assert_eq!(group_error_code(&required), 79);
        assert_eq!(group_error_code(&GroupError::GroupSubscribedToTopic), 86);
    }
}
