//! Who a client is and what it may do: SASL mechanisms (PLAIN, SCRAM-SHA-256/512), SCRAM
//! credentials, and Kafka's ACL model with its authorizer. No sockets, no clocks.

pub mod acl;
pub mod plain;
pub mod scram;
pub mod store;

pub use acl::{
    AclBinding, AclFilter, Authorizer, Operation, PatternFilter, PatternType, Permission,
    ResourceType,
};
pub use plain::{constant_time_eq, parse_jaas_users, parse_plain, PlainError};
pub use scram::{
    random_salt, salted_password, ScramClient, ScramCredential, ScramError, ScramMechanism,
    ScramServer,
};
pub use store::{load, save_acls, save_scram, SecurityState, StoreError};
