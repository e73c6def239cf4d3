//! Typed domain errors; the broker picks the Kafka error code at the edge via [`GroupError::kafka_code`].

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// Kafka's answer when a group's state could not be written because its record is larger
    /// than the offsets topic accepts (`appendGroupMetadataErrorToResponseError` maps
    /// MESSAGE_TOO_LARGE and RECORD_LIST_TOO_LARGE to it).
    UnknownServerError,
    UnknownTopicOrPartition,
    OffsetMetadataTooLarge,
    CoordinatorLoadInProgress,
    CoordinatorNotAvailable,
    NotCoordinator,
    IllegalGeneration,
    InconsistentGroupProtocol,
    /// An offset commit whose records are larger than the offsets topic accepts.
    InvalidCommitOffsetSize,
    InvalidGroupId,
    UnknownMemberId,
    InvalidSessionTimeout,
    RebalanceInProgress,
    NonEmptyGroup,
    GroupIdNotFound,
    /// The coordinator generated `member_id`; the client must join again with it.
    MemberIdRequired {
        member_id: String,
    },
    GroupMaxSizeReached,
    FencedInstanceId,
    GroupSubscribedToTopic,
}

impl GroupError {
    /// The Kafka protocol error code for this error.
    pub fn kafka_code(&self) -> i16 {
        match self {
            GroupError::UnknownServerError => -1,
            GroupError::UnknownTopicOrPartition => 3,
            GroupError::OffsetMetadataTooLarge => 12,
            GroupError::CoordinatorLoadInProgress => 14,
            GroupError::CoordinatorNotAvailable => 15,
            GroupError::NotCoordinator => 16,
            GroupError::IllegalGeneration => 22,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::InvalidCommitOffsetSize => 28,
            GroupError::InvalidGroupId => 24,
            GroupError::UnknownMemberId => 25,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::RebalanceInProgress => 27,
            GroupError::NonEmptyGroup => 68,
            GroupError::GroupIdNotFound => 69,
            GroupError::MemberIdRequired { .. } => 79,
            GroupError::GroupMaxSizeReached => 81,
            GroupError::FencedInstanceId => 82,
            GroupError::GroupSubscribedToTopic => 86,
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::MemberIdRequired { member_id } => {
                write!(f, "member id required: rejoin with {member_id}")
            }
            other => write!(f, "{other:?} (kafka error {})", other.kafka_code()),
        }
    }
}

impl std::error::Error for GroupError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(GroupError::UnknownMemberId.kafka_code(), 25);
        assert_eq!(GroupError::IllegalGeneration.kafka_code(), 22);
        assert_eq!(
            GroupError::MemberIdRequired {
                member_id: "x".into()
            }
            .kafka_code(),
            79
        );
        assert_eq!(GroupError::GroupSubscribedToTopic.kafka_code(), 86);
        assert_eq!(GroupError::UnknownServerError.kafka_code(), -1);
    }
}
