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
    /// A consumer-group member's epoch is not the one the coordinator expects: it must
    /// rejoin with epoch 0.
    FencedMemberEpoch,
    /// An offset commit or fetch with a member epoch that is not the member's.
    StaleMemberEpoch,
    /// A static member rejoined while its previous incarnation still holds the instance id.
    UnreleasedInstanceId,
    /// The member asked for a server assignor the broker does not offer.
    UnsupportedAssignor,
    /// `subscribed_topic_regex` is not a valid regular expression.
    InvalidRegularExpression(String),
    /// A consumer-group member committing with an OffsetCommit version older than 9.
    UnsupportedVersion,
    /// A request whose fields contradict each other (Kafka's INVALID_REQUEST), with why.
    InvalidRequest(String),
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
