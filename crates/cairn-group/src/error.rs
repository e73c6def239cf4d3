//! Typed domain errors; the broker maps them to Kafka error codes at its edge.

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

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::MemberIdRequired { member_id } => {
                write!(f, "member id required: rejoin with {member_id}")
            }
            other => write!(f, "{other:?}"),
        }
    }
}

impl std::error::Error for GroupError {}
