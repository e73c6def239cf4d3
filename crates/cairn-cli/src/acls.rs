//! `cairn acls`: what kafka-acls.sh does, over CreateAcls, DescribeAcls and
//! DeleteAcls, with its options and its `--producer`/`--consumer` shortcuts.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use cairn_client::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_NAME,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::common::{describe_error, Common};
use crate::output::{print, print_json, Table};

const CLIENT_ID: &str = "cairn-acls";

#[derive(Args)]
pub struct AclsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AclsCommand,
}

#[derive(Subcommand)]
enum AclsCommand {
    /// List ACLs, all of them or those of some resources or of a principal.
    List(ListArgs),
    /// Allow or deny principals operations on resources.
    Add(ChangeArgs),
    /// Remove ACLs: the ones described by the options, or every ACL of the resources when no
    /// principal is given.
    Remove {
        #[command(flatten)]
        change: ChangeArgs,
        /// Show what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The resources an ACL command is about, as kafka-acls.sh names them.
#[derive(Args, Clone, Debug)]
pub struct Resources {
    /// A topic (repeatable); `*` means every topic.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// A consumer group (repeatable); `*` means every group.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The cluster itself.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (repeatable); `*` means every one.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_ids: Vec<String>,
    /// literal or prefixed; to list or remove also any (exact name, every pattern type) or
    /// match (every ACL that applies to the name).
    #[arg(long, value_name = "TYPE", default_value = "literal", value_parser = parse_pattern)]
    pub resource_pattern_type: PatternType,
}

#[derive(Args, Clone, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub resources: Resources,
    /// Only the ACLs of this principal (Type:name, e.g. User:alice).
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub resources: Resources,
    /// A principal to allow, Type:name (repeatable): User:alice, User:* for everyone.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    pub allow_principals: Vec<String>,
    /// A principal to deny, Type:name (repeatable).
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    pub deny_principals: Vec<String>,
    /// A host the allowed principals may come from (repeatable) [default: * with --allow-principal].
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// A host the denied principals are denied from (repeatable) [default: * with --deny-principal].
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_hosts: Vec<String>,
    /// An operation (repeatable): Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All [default: All].
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    pub operations: Vec<AclOperation>,
    /// What a producer needs: WRITE, DESCRIBE and CREATE on the topics (WRITE and DESCRIBE on
    /// transactional ids; IDEMPOTENT_WRITE on the cluster with --idempotent).
    #[arg(long)]
    pub producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster too.
    #[arg(long, requires = "producer")]
    pub idempotent: bool,
    /// What a consumer needs: READ and DESCRIBE on the topics, READ on the group.
    #[arg(long)]
    pub consumer: bool,
}

fn parse_pattern(s: &str) -> Result<PatternType, String> {
    PatternType::parse(s).ok_or_else(|| format!("'{s}' is not literal, prefixed, any or match"))
}

fn parse_operation(s: &str) -> Result<AclOperation, String> {
    AclOperation::parse(s)
        .filter(|o| *o != AclOperation::Any)
        .ok_or_else(|| format!("unknown operation '{s}'"))
}

/// A resource pattern (for add) or pattern filter (for list and remove).
type Pattern = (ResourceType, String, PatternType);

/// kafka-acls.sh's resource selection: one pattern per named resource.
fn resource_patterns(r: &Resources, pattern: PatternType) -> anyhow::Result<Vec<Pattern>> {
    let mut out = Vec::new();
    out.extend(
        r.topics
            .iter()
            .map(|t| (ResourceType::Topic, t.trim().to_string(), pattern)),
    );
    if r.cluster {
        if pattern == PatternType::Prefixed {
            bail!("--cluster cannot have --resource-pattern-type prefixed");
        }
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_string(), pattern));
    }
    out.extend(
        r.groups
            .iter()
            .map(|g| (ResourceType::Group, g.trim().to_string(), pattern)),
    );
    out.extend(
        r.transactional_ids
            .iter()
            .map(|x| (ResourceType::TransactionalId, x.to_string(), pattern)),
    );
    if out.iter().any(|(_, name, _)| name.is_empty()) {
        bail!("a resource name cannot be empty");
    }
    Ok(out)
}

fn check_principal(p: &str) -> anyhow::Result<String> {
    let p = p.trim();
    match p.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(p.to_string()),
        _ => bail!("principal '{p}' is not in Type:name form (e.g. User:alice)"),
    }
}

/// The operations Kafka accepts on each resource type (besides ALL).
fn supported(resource: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        _ => &[],
    }
}

/// The ACLs that `add` creates (and `remove` removes when principals are
/// given), following kafka-acls.sh: principals x hosts x operations per
/// resource, or the producer/consumer sets.
pub fn bindings(args: &ChangeArgs) -> anyhow::Result<Vec<AclBinding>> {
    let pattern = args.resources.resource_pattern_type;
    let r = &args.resources;
    if args.producer || args.consumer {
        if !args.operations.is_empty() {
            bail!("--operation does not go with --producer or --consumer, which choose the operations");
        }
        if args.producer && r.topics.is_empty() {
            bail!("with --producer, give a --topic");
        }
        if args.consumer && (r.topics.is_empty() || r.groups.is_empty()) {
            bail!("with --consumer, give a --topic and a --group");
        }
        if !args.producer && (r.cluster || !r.transactional_ids.is_empty()) {
            bail!("--consumer takes no --cluster or --transactional-id");
        }
        if args.producer && !args.consumer && !r.groups.is_empty() {
            bail!("--producer takes no --group (add --consumer for a group)");
        }
    }
    let mut per_resource: Vec<(Pattern, Vec<AclOperation>)> = Vec::new();
    if !args.producer && !args.consumer {
        let ops = if args.operations.is_empty() {
            vec![AclOperation::All]
        } else {
            args.operations.clone()
        };
        for p in resource_patterns(r, pattern)? {
            per_resource.push((p, ops.clone()));
        }
    }
    if args.producer {
        use AclOperation::*;
        for t in &r.topics {
            per_resource.push((
                (ResourceType::Topic, t.trim().to_string(), pattern),
                vec![Write, Describe, Create],
            ));
        }
        for x in &r.transactional_ids {
            per_resource.push((
                (ResourceType::TransactionalId, x.clone(), pattern),
                vec![Write, Describe],
            ));
        }
        if args.idempotent {
            per_resource.push((
                (
                    ResourceType::Cluster,
                    CLUSTER_NAME.to_string(),
                    PatternType::Literal,
                ),
                vec![IdempotentWrite],
            ));
        }
    }
    if args.consumer {
        use AclOperation::*;
        for t in &r.topics {
            per_resource.push((
                (ResourceType::Topic, t.trim().to_string(), pattern),
                vec![Read, Describe],
            ));
        }
        for g in &r.groups {
            per_resource.push((
                (ResourceType::Group, g.trim().to_string(), pattern),
                vec![Read],
            ));
        }
    }
    if per_resource.is_empty() {
        bail!("give at least one resource: --topic, --group, --cluster or --transactional-id");
    }

    let allow = principals_and_hosts(&args.allow_principals, &args.allow_hosts)?;
    let deny = principals_and_hosts(&args.deny_principals, &args.deny_hosts)?;
    let mut out = BTreeSet::new();
    for ((resource_type, name, pattern_type), ops) in per_resource {
        for op in &ops {
            if *op != AclOperation::All && !supported(resource_type).contains(op) {
                bail!(
                    "{resource_type} supports only the operations {} (and ALL), not {op}",
                    supported(resource_type)
                        .iter()
                        .map(|o| o.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (permission, (principals, hosts)) in
                [(AclPermission::Allow, &allow), (AclPermission::Deny, &deny)]
            {
                for principal in principals {
                    for host in hosts {
                        out.insert(AclBinding {
                            resource_type,
                            resource_name: name.clone(),
                            pattern_type,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *op,
                            permission,
                        });
                    }
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

type PrincipalsHosts = (Vec<String>, Vec<String>);

fn principals_and_hosts(
    principals: &[String],
    hosts: &[String],
) -> anyhow::Result<PrincipalsHosts> {
    let principals = principals
        .iter()
        .map(|p| check_principal(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // A host without a principal is ignored, as kafka-acls.sh does; a
    // principal without a host may come from anywhere.
    let hosts = if hosts.is_empty() {
        vec!["*".to_string()]
    } else {
        hosts.iter().map(|h| h.trim().to_string()).collect()
    };
    Ok((principals, hosts))
}

/// What `add` sends: the bindings, which must name a principal.
pub fn add_request(args: &ChangeArgs) -> anyhow::Result<Vec<AclBinding>> {
    if args.allow_principals.is_empty() && args.deny_principals.is_empty() {
        bail!("give --allow-principal or --deny-principal to add ACLs");
    }
    let b = bindings(args)?;
    check_add_pattern(args.resources.resource_pattern_type)?;
    Ok(b)
}

fn check_add_pattern(p: PatternType) -> anyhow::Result<()> {
    if matches!(p, PatternType::Any | PatternType::Match) {
        bail!("ACLs are added with --resource-pattern-type literal or prefixed, not {p}");
    }
    Ok(())
}

/// What `remove` sends: without principals, every ACL of each resource;
/// with them, exactly the ACLs `add` would have created.
pub fn remove_request(args: &ChangeArgs) -> anyhow::Result<Vec<AclFilter>> {
    if args.allow_principals.is_empty() && args.deny_principals.is_empty() {
        if !args.operations.is_empty() || args.producer || args.consumer {
            bail!("give --allow-principal or --deny-principal with --operation, --producer or --consumer");
        }
        let patterns = resource_patterns(&args.resources, args.resources.resource_pattern_type)?;
        if patterns.is_empty() {
            bail!("give at least one resource: --topic, --group, --cluster or --transactional-id");
        }
        return Ok(patterns
            .into_iter()
            .map(|(resource_type, name, pattern_type)| AclFilter {
                resource_type,
                resource_name: Some(name),
                pattern_type,
                ..AclFilter::any()
            })
            .collect());
    }
    Ok(bindings(args)?.iter().map(AclFilter::exact).collect())
}

/// What `list` asks for: one filter per resource, or every ACL.
pub fn list_request(args: &ListArgs) -> anyhow::Result<Vec<AclFilter>> {
    let principal = args.principal.as_deref().map(check_principal).transpose()?;
    let patterns = resource_patterns(&args.resources, args.resources.resource_pattern_type)?;
    if patterns.is_empty() {
        return Ok(vec![AclFilter {
            principal,
            ..AclFilter::any()
        }]);
    }
    Ok(patterns
        .into_iter()
        .map(|(resource_type, name, pattern_type)| AclFilter {
            resource_type,
            resource_name: Some(name),
            pattern_type,
            principal: principal.clone(),
            ..AclFilter::any()
        })
        .collect())
}

#[derive(Serialize)]
struct AclView {
    resource_type: &'static str,
    resource_name: String,
    pattern_type: &'static str,
    principal: String,
    host: String,
    operation: &'static str,
    permission: &'static str,
}

fn view(b: &AclBinding) -> AclView {
    AclView {
        resource_type: b.resource_type.name(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.name(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.name(),
        permission: b.permission.name(),
    }
}

pub fn render(bindings: &[AclBinding]) -> String {
    let mut t = Table::new(&[
        "RESOURCE_TYPE",
        "NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]);
    for b in bindings {
        t.row(vec![
            b.resource_type.name().to_string(),
            b.resource_name.clone(),
            b.pattern_type.name().to_string(),
            b.principal.clone(),
            b.host.clone(),
            b.operation.name().to_string(),
            b.permission.name().to_string(),
        ]);
    }
    t.render()
}

fn show(common: &Common, bindings: &[AclBinding], empty: &str) -> anyhow::Result<()> {
    if common.json() {
        return print_json(&bindings.iter().map(view).collect::<Vec<_>>());
    }
    if bindings.is_empty() {
        return print(&format!("{empty}\n"));
    }
    print(&render(bindings))
}

pub async fn run(args: AclsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    // Check the options before connecting, so mistakes are reported first.
    match args.command {
        AclsCommand::List(l) => {
            let filters = list_request(&l)?;
            let client = common.connect(CLIENT_ID).await?;
            let mut found = BTreeSet::new();
            for f in &filters {
                let acls = client
                    .describe_acls(f)
                    .await
                    .map_err(|e| anyhow!("cannot list ACLs: {}", describe_error(&e)))?;
                found.extend(acls);
            }
            show(common, &found.into_iter().collect::<Vec<_>>(), "No ACLs.")
        }
        AclsCommand::Add(a) => {
            let bindings = add_request(&a)?;
            let client = common.connect(CLIENT_ID).await?;
            let outcomes = client
                .create_acls(&bindings)
                .await
                .map_err(|e| anyhow!("cannot add ACLs: {}", describe_error(&e)))?;
            let failed: Vec<String> = outcomes
                .iter()
                .filter_map(|o| o.as_ref().err().map(describe_error))
                .collect();
            if !failed.is_empty() {
                bail!("cannot add ACLs: {}", failed.join("; "));
            }
            show(common, &bindings, "No ACLs.")
        }
        AclsCommand::Remove { change, dry_run } => {
            let filters = remove_request(&change)?;
            let client = common.connect(CLIENT_ID).await?;
            let mut removed = BTreeSet::new();
            if dry_run {
                for f in &filters {
                    let acls = client
                        .describe_acls(f)
                        .await
                        .map_err(|e| anyhow!("cannot list ACLs: {}", describe_error(&e)))?;
                    removed.extend(acls);
                }
            } else {
                let outcomes = client
                    .delete_acls(&filters)
                    .await
                    .map_err(|e| anyhow!("cannot remove ACLs: {}", describe_error(&e)))?;
                let mut failed = Vec::new();
                for o in outcomes {
                    match o {
                        Ok(acls) => removed.extend(acls),
                        Err(e) => failed.push(describe_error(&e)),
                    }
                }
                if !failed.is_empty() {
                    bail!("cannot remove ACLs: {}", failed.join("; "));
                }
            }
            let removed: Vec<AclBinding> = removed.into_iter().collect();
            if !common.json() && !removed.is_empty() {
                print(if dry_run {
                    "Would remove:\n"
                } else {
                    "Removed:\n"
                })?;
            }
            show(common, &removed, "No matching ACLs.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AclsCommand,
    }

    fn parse(args: &str) -> AclsCommand {
        let argv = std::iter::once("acls").chain(args.split_whitespace());
        Cli::try_parse_from(argv).unwrap().command
    }

    fn filters_text(filters: &[AclFilter]) -> String {
        filters
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} principal={} host={} {} {}\n",
                    f.resource_type,
                    f.resource_name.as_deref().unwrap_or("<any>"),
                    f.pattern_type,
                    f.principal.as_deref().unwrap_or("<any>"),
                    f.host.as_deref().unwrap_or("<any>"),
                    f.operation,
                    f.permission
                )
            })
            .collect()
    }

    fn add(args: &str) -> anyhow::Result<Vec<AclBinding>> {
        match parse(&format!("add {args}")) {
            AclsCommand::Add(a) => add_request(&a),
            _ => unreachable!(),
        }
    }

    fn remove(args: &str) -> anyhow::Result<Vec<AclFilter>> {
        match parse(&format!("remove {args}")) {
            AclsCommand::Remove { change, .. } => remove_request(&change),
            _ => unreachable!(),
        }
    }

    fn list(args: &str) -> anyhow::Result<Vec<AclFilter>> {
        match parse(&format!("list {args}")) {
            AclsCommand::List(l) => list_request(&l),
            _ => unreachable!(),
        }
    }

    #[test]
    fn add_plain_operations() {
        let b = add("--allow-principal User:alice --allow-principal User:bob --operation Read --operation describe --topic orders --group billing --resource-pattern-type prefixed --allow-host 10.0.0.1").unwrap();
        insta::assert_snapshot!(render(&b));
    }

    #[test]
    fn add_producer_and_consumer_shortcuts() {
        let b = add("--allow-principal User:alice --producer --idempotent --consumer --topic orders --group billing --transactional-id tx").unwrap();
        insta::assert_snapshot!(render(&b));
    }

    #[test]
    fn add_deny_defaults_to_every_host_and_all() {
        let b = add("--deny-principal User:mallory --cluster").unwrap();
        insta::assert_snapshot!(render(&b));
    }

    #[test]
    fn add_mistakes_are_refused() {
        let msg = |a: &str| add(a).unwrap_err().to_string();
        assert!(msg("--topic t").contains("--allow-principal"));
        assert!(msg("--allow-principal alice --topic t").contains("Type:name"));
        assert!(msg("--allow-principal User:a").contains("at least one resource"));
        assert!(
            msg("--allow-principal User:a --operation IdempotentWrite --topic t")
                .contains("supports only")
        );
        assert!(msg("--allow-principal User:a --consumer --topic t").contains("--group"));
        assert!(msg("--allow-principal User:a --producer --group g").contains("--topic"));
        assert!(
            msg("--allow-principal User:a --producer --topic t --operation Read")
                .contains("--operation")
        );
        assert!(
            msg("--allow-principal User:a --topic t --resource-pattern-type match")
                .contains("literal or prefixed")
        );
        assert!(
            msg("--allow-principal User:a --cluster --resource-pattern-type prefixed")
                .contains("--cluster")
        );
        assert!(Cli::try_parse_from(["acls", "add", "--operation", "Fly"]).is_err());
    }

    #[test]
    fn remove_whole_resources_or_exact_acls() {
        let f = remove("--topic orders --group billing --resource-pattern-type any").unwrap();
        let exact =
            remove("--allow-principal User:alice --operation Write --topic orders").unwrap();
        insta::assert_snapshot!(format!("{}---\n{}", filters_text(&f), filters_text(&exact)));
        assert!(remove("").is_err());
        assert!(remove("--operation Read --topic t").is_err());
    }

    #[test]
    fn list_filters() {
        let all = list("").unwrap();
        let mine = list("--principal User:alice").unwrap();
        let some = list("--topic orders --cluster --resource-pattern-type match").unwrap();
        insta::assert_snapshot!(format!(
            "{}---\n{}---\n{}",
            filters_text(&all),
            filters_text(&mine),
            filters_text(&some)
        ));
        assert!(list("--principal alice").is_err());
    }
}
