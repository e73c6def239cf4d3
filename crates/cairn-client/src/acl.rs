//! Security administration: ACLs (CreateAcls, DescribeAcls, DeleteAcls) and
//! SCRAM credentials (DescribeUserScramCredentials,
//! AlterUserScramCredentials), with Kafka's codes for resource types,
//! pattern types, operations and permissions.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::Client;
use crate::error::{within, Error, Result};
use crate::sasl::ScramHash;

const ADMIN_REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),+ }
            }

            /// From Kafka's wire code; `None` for UNKNOWN and codes from the future.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Kafka's name, as its tools print it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Kafka's name in any case, with or without `_` (so `IdempotentWrite`
            /// and `IDEMPOTENT_WRITE` both work).
            pub fn parse(s: &str) -> Option<Self> {
                let norm = |t: &str| t.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_uppercase();
                let want = norm(s.trim());
                [$($name::$variant),+].into_iter().find(|v| norm(v.name()) == want)
            }

            /// Every value, for help texts.
            pub fn all() -> &'static [$name] {
                &[$($name::$variant),+]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// Kafka's ResourceType.
    ResourceType {
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
);

kafka_enum!(
    /// Kafka's PatternType.
    PatternType {
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
);

kafka_enum!(
    /// Kafka's AclOperation.
    AclOperation {
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
);

kafka_enum!(
    /// Kafka's AclPermissionType.
    AclPermission {
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
);

kafka_enum!(
    /// Kafka's ScramMechanism, as the credential APIs number it.
    ScramMechanism {
        ScramSha256 = 1 => "SCRAM-SHA-256",
        ScramSha512 = 2 => "SCRAM-SHA-512",
    }
);

impl ScramMechanism {
    pub fn hash(self) -> ScramHash {
        match self {
            ScramMechanism::ScramSha256 => ScramHash::Sha256,
            ScramMechanism::ScramSha512 => ScramHash::Sha512,
        }
    }
}

/// One ACL: who may (or may not) do what, from where, on which resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Which ACLs to list or delete; `None` matches any value, as do the ANY
/// variants of the enums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// Matches every ACL.
    pub fn any() -> Self {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Matches exactly this ACL.
    pub fn exact(b: &AclBinding) -> Self {
        AclFilter {
            resource_type: b.resource_type,
            resource_name: Some(b.resource_name.clone()),
            pattern_type: b.pattern_type,
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: b.operation,
            permission: b.permission,
        }
    }
}

/// One user's SCRAM credentials as the broker describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserScramCredentials {
    pub user: String,
    /// (mechanism, iterations), never the secrets.
    pub credentials: Vec<(ScramMechanism, i32)>,
}

/// A SCRAM credential to create or replace: the salted password only, never
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramUpsertion {
    /// Salts and hashes `password` with a fresh random salt (SCRAM's Hi).
    pub fn new(user: &str, mechanism: ScramMechanism, iterations: u32, password: &str) -> Self {
        let salt = crate::sasl::random_salt();
        let salted_password = mechanism
            .hash()
            .salted_password(password, &salt, iterations);
        ScramUpsertion {
            user: user.to_string(),
            mechanism,
            iterations: iterations as i32,
            salt,
            salted_password,
        }
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn enum_of<T>(code: i8, what: &str, from: fn(i8) -> Option<T>) -> Result<T> {
    from(code).ok_or_else(|| Error::Protocol(format!("unknown {what} code {code} in an answer")))
}

fn binding(
    resource_type: i8,
    resource_name: &StrBytes,
    pattern_type: i8,
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> Result<AclBinding> {
    Ok(AclBinding {
        resource_type: enum_of(resource_type, "resource type", ResourceType::from_code)?,
        resource_name: resource_name.to_string(),
        pattern_type: enum_of(pattern_type, "pattern type", PatternType::from_code)?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: enum_of(operation, "operation", AclOperation::from_code)?,
        permission: enum_of(permission, "permission type", AclPermission::from_code)?,
    })
}

/// DescribeAcls and DeleteAcls v0 know literal patterns only (and filter
/// on them implicitly).
fn check_pattern_v0(version: i16, pattern: PatternType, what: &str) -> Result<()> {
    if version == 0 && !matches!(pattern, PatternType::Literal | PatternType::Any) {
        return Err(Error::Protocol(format!(
            "the broker's {what} v0 cannot carry the {pattern} pattern type"
        )));
    }
    Ok(())
}

impl Client {
    /// DescribeAcls: the ACLs matching `filter`.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let conn = self.bootstrap_connection().await?;
        let version = conn.version_for::<DescribeAclsRequest>()?;
        check_pattern_v0(version, filter.pattern_type, "DescribeAcls")?;
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(sb))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(sb))
            .with_host_filter(filter.host.as_deref().map(sb))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let resp = within(
            ADMIN_REQUEST_LIMIT,
            || "describe ACLs".to_string(),
            conn.send_versioned(req, version),
        )
        .await?;
        Error::check_code(resp.error_code, resp.error_message.as_deref(), || {
            "describe ACLs".to_string()
        })?;
        let mut out = Vec::new();
        for r in &resp.resources {
            // v0 has no pattern type: every ACL is literal there.
            let pattern = if version == 0 {
                PatternType::Literal.code()
            } else {
                r.pattern_type
            };
            for a in &r.acls {
                out.push(binding(
                    r.resource_type,
                    &r.resource_name,
                    pattern,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )?);
            }
        }
        Ok(out)
    }

    /// CreateAcls: one outcome per binding, in order.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        let conn = self.bootstrap_connection().await?;
        let version = conn.version_for::<CreateAclsRequest>()?;
        for b in bindings {
            check_pattern_v0(version, b.pattern_type, "CreateAcls")?;
        }
        let req = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(sb(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(sb(&b.principal))
                        .with_host(sb(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let resp = within(
            ADMIN_REQUEST_LIMIT,
            || "create ACLs".to_string(),
            conn.send_versioned(req, version),
        )
        .await?;
        if resp.results.len() != bindings.len() {
            return Err(Error::Protocol(format!(
                "CreateAcls answered {} results for {} ACLs",
                resp.results.len(),
                bindings.len()
            )));
        }
        Ok(resp
            .results
            .iter()
            .zip(bindings)
            .map(|(r, b)| {
                Error::check_code(r.error_code, r.error_message.as_deref(), || {
                    format!(
                        "create ACL {} {} {} on {} {}",
                        b.permission, b.principal, b.operation, b.resource_type, b.resource_name
                    )
                })
            })
            .collect())
    }

    /// DeleteAcls: for each filter, the ACLs it removed (or why it could not).
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Result<Vec<AclBinding>>>> {
        let conn = self.bootstrap_connection().await?;
        let version = conn.version_for::<DeleteAclsRequest>()?;
        for f in filters {
            check_pattern_v0(version, f.pattern_type, "DeleteAcls")?;
        }
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(f.resource_name.as_deref().map(sb))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(f.principal.as_deref().map(sb))
                        .with_host_filter(f.host.as_deref().map(sb))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let resp = within(
            ADMIN_REQUEST_LIMIT,
            || "delete ACLs".to_string(),
            conn.send_versioned(req, version),
        )
        .await?;
        if resp.filter_results.len() != filters.len() {
            return Err(Error::Protocol(format!(
                "DeleteAcls answered {} results for {} filters",
                resp.filter_results.len(),
                filters.len()
            )));
        }
        let mut out = Vec::new();
        for r in &resp.filter_results {
            let outcome = Error::check_code(r.error_code, r.error_message.as_deref(), || {
                "delete ACLs".to_string()
            })
            .and_then(|()| {
                r.matching_acls
                    .iter()
                    .map(|m| {
                        Error::check_code(m.error_code, m.error_message.as_deref(), || {
                            "delete ACL".to_string()
                        })?;
                        let pattern = if version == 0 {
                            PatternType::Literal.code()
                        } else {
                            m.pattern_type
                        };
                        binding(
                            m.resource_type,
                            &m.resource_name,
                            pattern,
                            &m.principal,
                            &m.host,
                            m.operation,
                            m.permission_type,
                        )
                    })
                    .collect()
            });
            out.push(outcome);
        }
        Ok(out)
    }

    /// DescribeUserScramCredentials for some users, or every user with
    /// credentials when `users` is `None`. A user asked about who has none
    /// comes back as an error (RESOURCE_NOT_FOUND), as in Kafka.
    pub async fn describe_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<Vec<Result<UserScramCredentials>>> {
        let conn = self.bootstrap_connection().await?;
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
            us.iter()
                .map(|u| UserName::default().with_name(sb(u)))
                .collect()
        }));
        let resp = within(
            ADMIN_REQUEST_LIMIT,
            || "describe SCRAM credentials".to_string(),
            conn.send(req),
        )
        .await?;
        Error::check_code(resp.error_code, resp.error_message.as_deref(), || {
            "describe SCRAM credentials".to_string()
        })?;
        resp.results
            .iter()
            .map(|r| {
                let outcome = Error::check_code(r.error_code, r.error_message.as_deref(), || {
                    format!("user '{}'", r.user)
                });
                match outcome {
                    Err(e) => Ok(Err(e)),
                    Ok(()) => {
                        let credentials = r
                            .credential_infos
                            .iter()
                            .map(|c| {
                                Ok((
                                    enum_of(
                                        c.mechanism,
                                        "SCRAM mechanism",
                                        ScramMechanism::from_code,
                                    )?,
                                    c.iterations,
                                ))
                            })
                            .collect::<Result<Vec<_>>>()?;
                        Ok(Ok(UserScramCredentials {
                            user: r.user.to_string(),
                            credentials,
                        }))
                    }
                }
            })
            .collect()
    }

    /// AlterUserScramCredentials: deletions and upsertions in one request;
    /// one outcome per user named, as the broker reports it.
    pub async fn alter_scram_credentials(
        &self,
        deletions: &[(String, ScramMechanism)],
        upsertions: &[ScramUpsertion],
    ) -> Result<Vec<(String, Result<()>)>> {
        let conn = self.controller_connection().await?;
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(
                deletions
                    .iter()
                    .map(|(user, m)| {
                        ScramCredentialDeletion::default()
                            .with_name(sb(user))
                            .with_mechanism(m.code())
                    })
                    .collect(),
            )
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(sb(&u.user))
                            .with_mechanism(u.mechanism.code())
                            .with_iterations(u.iterations)
                            .with_salt(Bytes::copy_from_slice(&u.salt))
                            .with_salted_password(Bytes::copy_from_slice(&u.salted_password))
                    })
                    .collect(),
            );
        let resp = within(
            ADMIN_REQUEST_LIMIT,
            || "alter SCRAM credentials".to_string(),
            conn.send(req),
        )
        .await?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                let outcome = Error::check_code(r.error_code, r.error_message.as_deref(), || {
                    format!("user '{user}'")
                });
                (user, outcome)
            })
            .collect())
    }
}

/// Kafka's explanation of the errors these APIs answer with, for operators.
pub fn explain(error: ResponseError) -> Option<&'static str> {
    Some(match error {
        ResponseError::SecurityDisabled => {
            "the broker has no authorizer (authorizer.class.name is not set), so it keeps no ACLs"
        }
        ResponseError::ClusterAuthorizationFailed => {
            "this principal may not do that on the cluster (it needs ALTER or DESCRIBE on the cluster, or to be a super user)"
        }
        ResponseError::ResourceNotFound => "no such user or credential",
        ResponseError::UnacceptableCredential => {
            "the broker refused the credential (empty user name, iterations out of range, or the same user twice in one request)"
        }
        ResponseError::UnsupportedSaslMechanism => {
            "the broker does not offer this SASL mechanism"
        }
        ResponseError::SaslAuthenticationFailed => "wrong user name or password",
        ResponseError::InvalidRequest => "the broker rejected the request as invalid",
        ResponseError::DuplicateResource => "the same user is named twice",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for op in AclOperation::all() {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
            assert_eq!(AclOperation::parse(op.name()), Some(*op));
        }
        assert_eq!(
            AclOperation::parse("IdempotentWrite"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(AclOperation::parse("read"), Some(AclOperation::Read));
        assert_eq!(AclOperation::parse("reed"), None);
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclPermission::Allow.code(), 3);
        assert_eq!(
            ScramMechanism::parse("scram-sha-512"),
            Some(ScramMechanism::ScramSha512)
        );
        assert_eq!(ScramMechanism::from_code(0), None);
    }

    #[test]
    fn upsertion_carries_the_salted_password_only() {
        let u = ScramUpsertion::new("alice", ScramMechanism::ScramSha256, 4096, "pencil");
        assert_eq!(u.salt.len(), 32);
        assert_eq!(
            u.salted_password,
            ScramHash::Sha256.salted_password("pencil", &u.salt, 4096)
        );
        assert_eq!(u.salted_password.len(), 32);
        let other = ScramUpsertion::new("alice", ScramMechanism::ScramSha256, 4096, "pencil");
        assert_ne!(u.salt, other.salt, "every credential gets a fresh salt");
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("salt"), "{dbg}");
    }
}
