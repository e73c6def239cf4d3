//! CreateAcls, DescribeAcls, DeleteAcls, DescribeUserScramCredentials and
//! AlterUserScramCredentials: the admin side of authorization and SCRAM users. Every change is
//! on disk before it is answered (and before it is enforced).

use std::collections::{BTreeMap, HashMap};

use cairn_auth::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    ScramCredential, ScramMechanism,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{sb, Ctx};
use crate::errors::Code;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

/// A filter's wire fields; `Err` is INVALID_REQUEST's message.
fn filter(
    rt: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, String> {
    let resource_type = match rt {
        1 => None,
        c => Some(ResourceType::from_code(c).ok_or_else(|| format!("unknown resource type {c}"))?),
    };
    let pattern = match pattern {
        1 => PatternFilter::Any,
        2 => PatternFilter::Match,
        3 => PatternFilter::Literal,
        4 => PatternFilter::Prefixed,
        c => return Err(format!("unknown pattern type {c}")),
    };
    let operation = match op {
        1 => None,
        c => Some(Operation::from_code(c).ok_or_else(|| format!("unknown operation {c}"))?),
    };
    let permission = match perm {
        1 => None,
        c => Some(Permission::from_code(c).ok_or_else(|| format!("unknown permission type {c}"))?),
    };
    Ok(AclFilter {
        resource_type,
        name: name.as_ref().map(|s| s.to_string()),
        pattern,
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation,
        permission,
    })
}

fn binding(c: &create_acls_request::AclCreation) -> Result<AclBinding, String> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| format!("invalid resource type {}", c.resource_type))?,
        name: c.resource_name.to_string(),
        pattern: PatternType::from_code(c.resource_pattern_type).ok_or_else(|| {
            format!(
                "invalid pattern type {} (LITERAL or PREFIXED)",
                c.resource_pattern_type
            )
        })?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("invalid operation {}", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| format!("invalid permission type {}", c.permission_type))?,
    };
    b.validate()?;
    Ok(b)
}

/// Runs a persisting change off the async threads (it fsyncs).
async fn persist<F>(ctx: &Ctx, f: F) -> anyhow::Result<()>
where
    F: FnOnce(&crate::security::Security) -> anyhow::Result<()> + Send + 'static,
{
    let state = ctx.state.clone();
    tokio::task::spawn_blocking(move || f(&state.security))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
}

pub async fn create_acls(ctx: &Ctx, req: CreateAclsRequest) -> CreateAclsResponse {
    let each = |code: i16, msg: Option<String>| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    let sec = &ctx.state.security;
    if !sec.authorizer_enabled() {
        return CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| each(Code::SecurityDisabled.code(), Some(NO_AUTHORIZER.into())))
                .collect(),
        );
    }
    if !ctx.allowed_cluster(Operation::Alter) {
        return CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| each(Code::ClusterAuthorizationFailed.code(), None))
                .collect(),
        );
    }
    let parsed: Vec<Result<AclBinding, String>> = req.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let saved = if valid.is_empty() {
        Ok(())
    } else {
        persist(ctx, move |s| s.replace_acls(|a| a.with_added(&valid))).await
    };
    let results = parsed
        .into_iter()
        .map(|r| match (r, &saved) {
            (Err(msg), _) => each(Code::InvalidRequest.code(), Some(msg)),
            (Ok(_), Ok(())) => each(0, None),
            (Ok(_), Err(e)) => {
                tracing::warn!("cannot save ACLs: {e:#}");
                each(
                    Code::UnknownServerError.code(),
                    Some(format!("cannot save ACLs: {e}")),
                )
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn describe_acls(ctx: &Ctx, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let err = |code: i16, msg: Option<String>| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    let Some(authz) = ctx.state.security.authorizer() else {
        return err(Code::SecurityDisabled.code(), Some(NO_AUTHORIZER.into()));
    };
    if !ctx.allowed_cluster(Operation::Describe) {
        return err(Code::ClusterAuthorizationFailed.code(), None);
    }
    let f = match filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(msg) => return err(Code::InvalidRequest.code(), Some(msg)),
    };
    // One entry per resource pattern, its ACLs under it, as Kafka groups them.
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in authz.describe(&f) {
        by_resource
            .entry((b.resource_type.code(), b.name.clone(), b.pattern.code()))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(b.principal))
                    .with_host(sb(b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt)
                    .with_resource_name(sb(name))
                    .with_pattern_type(pt)
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub async fn delete_acls(ctx: &Ctx, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let each = |code: i16, msg: Option<String>| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    let sec = &ctx.state.security;
    if !sec.authorizer_enabled() {
        return DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| each(Code::SecurityDisabled.code(), Some(NO_AUTHORIZER.into())))
                .collect(),
        );
    }
    if !ctx.allowed_cluster(Operation::Alter) {
        return DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| each(Code::ClusterAuthorizationFailed.code(), None))
                .collect(),
        );
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let removed = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let out = removed.clone();
    let saved = persist(ctx, move |s| {
        s.replace_acls(|a| {
            let (each, rest) = a.with_removed(&valid);
            *out.lock() = each;
            rest
        })
    })
    .await;
    let mut removed = std::mem::take(&mut *removed.lock()).into_iter();
    let results = parsed
        .into_iter()
        .map(|r| match (r, &saved) {
            (Err(msg), _) => each(Code::InvalidRequest.code(), Some(msg)),
            (Ok(_), Err(e)) => {
                tracing::warn!("cannot save ACLs: {e:#}");
                each(
                    Code::UnknownServerError.code(),
                    Some(format!("cannot save ACLs: {e}")),
                )
            }
            (Ok(_), Ok(())) => each(0, None).with_matching_acls(
                removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(sb(b.name))
                            .with_pattern_type(b.pattern.code())
                            .with_principal(sb(b.principal))
                            .with_host(sb(b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

pub async fn describe_scram(
    ctx: &Ctx,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    let all = ctx.state.security.scram_users();
    let info = |creds: &Vec<ScramCredential>| {
        creds
            .iter()
            .map(|c| {
                CredentialInfo::default()
                    .with_mechanism(c.mechanism.kafka_code())
                    .with_iterations(c.iterations)
            })
            .collect::<Vec<_>>()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        // No users named: every user with a credential.
        None => all
            .iter()
            .map(|(user, creds)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(sb(user.clone()))
                    .with_credential_infos(info(creds))
            })
            .collect(),
        Some(users) => {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_default() += 1;
            }
            users
                .iter()
                .map(|u| {
                    let name = u.name.to_string();
                    let r = DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
                    if seen.get(&name).copied().unwrap_or(0) > 1 {
                        r.with_error_code(Code::DuplicateResource.code())
                            .with_error_message(Some(sb(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                            ))))
                    } else {
                        match all.get(&name) {
                            Some(creds) if !creds.is_empty() => r.with_credential_infos(info(creds)),
                            _ => r
                                .with_error_code(Code::ResourceNotFound.code())
                                .with_error_message(Some(sb(format!(
                                    "Attempt to describe a user credential that does not exist: {name}"
                                )))),
                        }
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One change a request asks for, checked.
enum Change {
    Delete(String, ScramMechanism),
    Upsert(String, ScramCredential),
}

/// A change, or the error code and message refusing it.
type Checked = Result<Change, (i16, String)>;

pub async fn alter_scram(
    ctx: &Ctx,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let result = |user: &StrBytes, code: i16, msg: Option<String>| {
        AlterUserScramCredentialsResult::default()
            .with_user(user.clone())
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    let users: Vec<&StrBytes> = req
        .deletions
        .iter()
        .map(|d| &d.name)
        .chain(req.upsertions.iter().map(|u| &u.name))
        .collect();
    if !ctx.allowed_cluster(Operation::Alter) {
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .iter()
                .map(|u| result(u, Code::ClusterAuthorizationFailed.code(), None))
                .collect(),
        );
    }
    // A (user, mechanism) altered twice in one request is refused, as Kafka does.
    let mut count: HashMap<(String, i8), usize> = HashMap::new();
    for (u, m) in req
        .deletions
        .iter()
        .map(|d| (&d.name, d.mechanism))
        .chain(req.upsertions.iter().map(|u| (&u.name, u.mechanism)))
    {
        *count.entry((u.to_string(), m)).or_default() += 1;
    }
    let current = ctx.state.security.scram_users();
    let mut checked: Vec<(StrBytes, Checked)> = Vec::new();
    for d in &req.deletions {
        let name = d.name.to_string();
        let r = if count[&(name.clone(), d.mechanism)] > 1 {
            Err((
                Code::DuplicateResource.code(),
                format!("A user credential cannot be altered twice in the same request: {name}"),
            ))
        } else if let Some(m) = ScramMechanism::from_kafka_code(d.mechanism) {
            if current
                .get(&name)
                .is_some_and(|c| c.iter().any(|c| c.mechanism == m))
            {
                Ok(Change::Delete(name, m))
            } else {
                Err((
                    Code::ResourceNotFound.code(),
                    format!("Attempt to delete a user credential that does not exist: {name}"),
                ))
            }
        } else {
            Err((
                Code::UnsupportedSaslMechanism.code(),
                format!("Unknown SCRAM mechanism {}", d.mechanism),
            ))
        };
        checked.push((d.name.clone(), r));
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        let r = if count[&(name.clone(), u.mechanism)] > 1 {
            Err((
                Code::DuplicateResource.code(),
                format!("A user credential cannot be altered twice in the same request: {name}"),
            ))
        } else if let Some(m) = ScramMechanism::from_kafka_code(u.mechanism) {
            match cairn_auth::scram::validate_upsertion(m, &name, &u.salt, u.iterations) {
                Err(msg) => Err((Code::UnacceptableCredential.code(), msg)),
                Ok(()) if u.salted_password.len() != m.hash_len() => Err((
                    Code::UnacceptableCredential.code(),
                    format!(
                        "The salted password must be {} bytes for {}",
                        m.hash_len(),
                        m.name()
                    ),
                )),
                Ok(()) => Ok(Change::Upsert(
                    name,
                    ScramCredential::from_salted_password(
                        m,
                        &u.salt,
                        &u.salted_password,
                        u.iterations,
                    ),
                )),
            }
        } else {
            Err((
                Code::UnsupportedSaslMechanism.code(),
                format!("Unknown SCRAM mechanism {}", u.mechanism),
            ))
        };
        checked.push((u.name.clone(), r));
    }
    let changes: Vec<Change> = checked
        .iter_mut()
        .filter_map(|(_, r)| match r {
            Ok(Change::Delete(u, m)) => Some(Change::Delete(u.clone(), *m)),
            Ok(Change::Upsert(u, c)) => Some(Change::Upsert(u.clone(), c.clone())),
            Err(_) => None,
        })
        .collect();
    let saved = if changes.is_empty() {
        Ok(())
    } else {
        persist(ctx, move |s| {
            s.replace_scram(|cur| {
                let mut next = cur.clone();
                for c in changes {
                    match c {
                        Change::Delete(u, m) => {
                            if let Some(list) = next.get_mut(&u) {
                                list.retain(|c| c.mechanism != m);
                                if list.is_empty() {
                                    next.remove(&u);
                                }
                            }
                        }
                        Change::Upsert(u, cred) => {
                            let list = next.entry(u).or_default();
                            list.retain(|c| c.mechanism != cred.mechanism);
                            list.push(cred);
                        }
                    }
                }
                next
            })
        })
        .await
    };
    let results = checked
        .into_iter()
        .map(|(user, r)| match (r, &saved) {
            (Err((code, msg)), _) => result(&user, code, Some(msg)),
            (Ok(_), Ok(())) => result(&user, 0, None),
            (Ok(_), Err(e)) => {
                tracing::warn!("cannot save SCRAM credentials: {e:#}");
                result(
                    &user,
                    Code::UnknownServerError.code(),
                    Some(format!("cannot save credentials: {e}")),
                )
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
