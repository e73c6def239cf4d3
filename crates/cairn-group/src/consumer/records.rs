//! TEMP stub
use super::{Assignment, TopicId};
use crate::records::RecordError;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerKey {
    GroupMetadata { group: String },
    PartitionMetadata { group: String },
    MemberMetadata { group: String, member: String },
    TargetAssignmentMetadata { group: String },
    TargetAssignmentMember { group: String, member: String },
    CurrentMemberAssignment { group: String, member: String },
}
impl ConsumerKey { pub fn group(&self) -> &str { todo!() } }
pub fn encode_key(_k: &ConsumerKey) -> Vec<u8> { todo!() }
pub fn decode_key(_b: &[u8]) -> Result<Option<ConsumerKey>, RecordError> { todo!() }
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct GroupMetadataValue { pub epoch: i32 }
#[derive(Debug, Clone, PartialEq, Eq)] pub struct TopicMetadata { pub id: TopicId, pub name: String, pub partitions: i32 }
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct PartitionMetadataValue { pub topics: Vec<TopicMetadata> }
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct MemberMetadataValue {
    pub instance_id: Option<String>, pub rack_id: Option<String>, pub client_id: String, pub client_host: String,
    pub subscribed_topic_names: Vec<String>, pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32, pub server_assignor: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct TargetAssignmentMetadataValue { pub assignment_epoch: i32 }
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct TargetAssignmentMemberValue { pub partitions: Assignment }
#[derive(Debug, Clone, PartialEq, Eq, Default)] pub struct CurrentMemberAssignmentValue {
    pub member_epoch: i32, pub previous_member_epoch: i32, pub state: i8,
    pub assigned: Assignment, pub pending_revocation: Assignment,
}
pub fn encode_group_metadata(_v: &GroupMetadataValue) -> Vec<u8> { todo!() }
pub fn decode_group_metadata(_b: &[u8]) -> Result<GroupMetadataValue, RecordError> { todo!() }
pub fn encode_partition_metadata(_v: &PartitionMetadataValue) -> Vec<u8> { todo!() }
pub fn decode_partition_metadata(_b: &[u8]) -> Result<PartitionMetadataValue, RecordError> { todo!() }
pub fn encode_member_metadata(_v: &MemberMetadataValue) -> Vec<u8> { todo!() }
pub fn decode_member_metadata(_b: &[u8]) -> Result<MemberMetadataValue, RecordError> { todo!() }
pub fn encode_target_metadata(_v: &TargetAssignmentMetadataValue) -> Vec<u8> { todo!() }
pub fn decode_target_metadata(_b: &[u8]) -> Result<TargetAssignmentMetadataValue, RecordError> { todo!() }
pub fn encode_target_member(_v: &TargetAssignmentMemberValue) -> Vec<u8> { todo!() }
pub fn decode_target_member(_b: &[u8]) -> Result<TargetAssignmentMemberValue, RecordError> { todo!() }
pub fn encode_current_assignment(_v: &CurrentMemberAssignmentValue) -> Vec<u8> { todo!() }
pub fn decode_current_assignment(_b: &[u8]) -> Result<CurrentMemberAssignmentValue, RecordError> { todo!() }
