//! Internal topics hold the broker's own state: `__consumer_offsets`, the group coordinator's
//! log, and `__transaction_state`, the transaction coordinator's. That state must be exactly the replay of the records the broker wrote
//! itself, and groups are placed on the partitions by a hash over the partition count. So
//! clients may read these topics but not append to them, create, grow, delete or reconfigure
//! them. Every path that changes a topic asks here first; the refusal becomes a Kafka error
//! code in `errors.rs`.

use std::fmt;

use crate::groups::OFFSETS_TOPIC;
use crate::txns::TXN_TOPIC;

/// Whether `name` is an internal topic. Decided by name, as Kafka's `Topic.isInternal` does, so
/// a topic of that name is internal however it came to exist (an older data directory may hold
/// one a client created).
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TXN_TOPIC
}

/// What a client asked to do to an internal topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Produce.
    Append,
    /// CreatePartitions.
    AddPartitions,
    /// DeleteTopics.
    Delete,
    /// CreateTopics (the broker creates its internal topics itself, with its own settings).
    Create,
    /// AlterConfigs and IncrementalAlterConfigs.
    AlterConfigs,
}

/// A refused change to an internal topic; its text is the message the client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub change: Change,
    pub topic: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.topic;
        match self.change {
            // Kafka's own words for this one.
            Change::Append => write!(f, "Cannot append to internal topic {t}"),
            Change::AddPartitions => write!(
                f,
                "Cannot add partitions to internal topic {t}: its records are placed on partitions \
                 by a hash over the partition count, so a new count would separate them from the \
                 state already stored"
            ),
            Change::Delete => write!(
                f,
                "Cannot delete internal topic {t}: it holds the broker's own state"
            ),
            Change::Create => write!(
                f,
                "Creation of internal topic {t} is prohibited: the broker creates it itself, \
                 with its own settings"
            ),
            Change::AlterConfigs => write!(
                f,
                "Cannot alter configs of internal topic {t}: the broker sets them"
            ),
        }
    }
}

impl std::error::Error for Refused {}

fn check(change: Change, topic: &str) -> Result<(), Refused> {
    if is_internal(topic) {
        return Err(Refused {
            change,
            topic: topic.to_string(),
        });
    }
    Ok(())
}

/// Produce from a client. The group coordinator writes to its log directly, not through here.
pub fn check_append(topic: &str) -> Result<(), Refused> {
    check(Change::Append, topic)
}

/// CreatePartitions.
pub fn check_add_partitions(topic: &str) -> Result<(), Refused> {
    check(Change::AddPartitions, topic)
}

/// DeleteTopics, by name or by id (resolve the id to its name first).
pub fn check_delete(topic: &str) -> Result<(), Refused> {
    check(Change::Delete, topic)
}

/// CreateTopics from a client, for a topic that does not exist yet.
pub fn check_create(topic: &str) -> Result<(), Refused> {
    check(Change::Create, topic)
}

/// Any change of a topic's config overrides. AlterConfigs and IncrementalAlterConfigs must call
/// it for every topic resource before validating the configs themselves.
pub fn check_config_change(topic: &str) -> Result<(), Refused> {
    check(Change::AlterConfigs, topic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{internal_topic_code, Code};

    #[test]
    fn only_the_coordinators_topics_are_internal() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        for name in [
            "orders",
            "__consumer_offsets2",
            "_consumer_offsets",
            "__Consumer_offsets",
        ] {
            assert!(!is_internal(name), "{name}");
            assert!(check_append(name).is_ok());
            assert!(check_add_partitions(name).is_ok());
            assert!(check_delete(name).is_ok());
            assert!(check_create(name).is_ok());
            assert!(check_config_change(name).is_ok());
        }
    }

    #[test]
    fn every_change_to_the_offsets_topic_is_refused_with_kafkas_code() {
        let t = "__consumer_offsets";
        let append = check_append(t).unwrap_err();
        assert_eq!(
            append.to_string(),
            "Cannot append to internal topic __consumer_offsets"
        );
        assert_eq!(
            internal_topic_code(&append),
            Code::InvalidTopicException.code()
        );
        for refused in [
            check_add_partitions(t),
            check_delete(t),
            check_config_change(t),
        ] {
            let e = refused.unwrap_err();
            assert!(e.to_string().contains(t), "{e}");
            assert_eq!(internal_topic_code(&e), Code::InvalidTopicException.code());
        }
        let create = check_create(t).unwrap_err();
        assert!(create
            .to_string()
            .starts_with("Creation of internal topic __consumer_offsets is prohibited"));
        assert_eq!(internal_topic_code(&create), Code::InvalidRequest.code());
    }
}
