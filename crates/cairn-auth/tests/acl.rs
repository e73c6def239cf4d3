use cairn_auth::acl::{CLUSTER_NAME, WILDCARD};
use cairn_auth::{
    AclBinding, AclFilter, Authorizer, Operation, PatternFilter, PatternType, Permission,
    ResourceType,
};
use Operation::*;
use ResourceType::*;

fn acl(
    rt: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    host: &str,
    op: Operation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        name: name.into(),
        pattern,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission: perm,
    }
}

fn allow(rt: ResourceType, name: &str, principal: &str, op: Operation) -> AclBinding {
    acl(
        rt,
        name,
        PatternType::Literal,
        principal,
        "*",
        op,
        Permission::Allow,
    )
}

fn deny(rt: ResourceType, name: &str, principal: &str, op: Operation) -> AclBinding {
    acl(
        rt,
        name,
        PatternType::Literal,
        principal,
        "*",
        op,
        Permission::Deny,
    )
}

fn prefixed(mut a: AclBinding) -> AclBinding {
    a.pattern = PatternType::Prefixed;
    a
}

const ALICE: &str = "User:alice";
const BOB: &str = "User:bob";
const HOST: &str = "10.0.0.1";

fn auth(acls: Vec<AclBinding>) -> Authorizer {
    Authorizer::new(vec!["User:admin".into()], false, acls)
}

#[test]
fn codes_and_names_are_kafkas() {
    assert_eq!(Topic.code(), 2);
    assert_eq!(User.code(), 7);
    assert_eq!(ResourceType::from_code(1), None); // ANY is a filter value
    assert_eq!(PatternType::Literal.code(), 3);
    assert_eq!(PatternType::Prefixed.code(), 4);
    assert_eq!(PatternType::from_code(2), None); // MATCH is a filter value
    assert_eq!(All.code(), 2);
    assert_eq!(DescribeTokens.code(), 14);
    assert_eq!(Operation::from_code(1), None);
    assert_eq!(Permission::Deny.code(), 2);
    assert_eq!(Permission::Allow.code(), 3);
    assert_eq!(Read.name(), "READ");
    assert_eq!(IdempotentWrite.name(), "IDEMPOTENT_WRITE");
    for op in Operation::ALL_VALUES {
        assert_eq!(Operation::from_code(op.code()), Some(*op));
        assert_eq!(Operation::from_name(op.name()), Some(*op));
    }
    for rt in ResourceType::ALL_VALUES {
        assert_eq!(ResourceType::from_code(rt.code()), Some(*rt));
    }
    for p in [
        PatternFilter::Any,
        PatternFilter::Match,
        PatternFilter::Literal,
        PatternFilter::Prefixed,
    ] {
        assert_eq!(PatternFilter::from_code(p.code()), Some(p));
    }
    assert_eq!(PatternFilter::from_code(0), None);
    // serde uses Kafka's names.
    let json = serde_json::to_string(&allow(TransactionalId, "t", ALICE, ClusterAction)).unwrap();
    assert!(
        json.contains("\"TRANSACTIONAL_ID\"") && json.contains("\"CLUSTER_ACTION\""),
        "{json}"
    );
}

#[test]
fn validation_follows_kafka() {
    assert!(allow(Topic, "t", ALICE, Read).validate().is_ok());
    assert!(allow(Cluster, CLUSTER_NAME, ALICE, Alter)
        .validate()
        .is_ok());
    assert_eq!(
        allow(Cluster, "my-cluster", ALICE, Alter)
            .validate()
            .unwrap_err(),
        "The only valid name for the CLUSTER resource is kafka-cluster"
    );
    assert_eq!(
        allow(Topic, "", ALICE, Read).validate().unwrap_err(),
        "Invalid empty resource name"
    );
    assert!(allow(Topic, "t", "alice", Read)
        .validate()
        .unwrap_err()
        .contains("no colon is present"));
    // Kafka accepts any principal type and an empty name after the colon.
    assert!(allow(Topic, "t", "Group:ops", Read).validate().is_ok());
}

#[test]
fn deny_beats_allow() {
    let a = auth(vec![
        allow(Topic, "t", ALICE, Read),
        deny(Topic, "t", ALICE, Read),
    ]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "t"));
    // A DENY of ALL denies everything; a wildcard-principal DENY covers alice too.
    let a = auth(vec![
        allow(Topic, "t", ALICE, All),
        deny(Topic, "t", ALICE, All),
    ]);
    assert!(!a.authorize(ALICE, HOST, Write, Topic, "t"));
    let a = auth(vec![
        allow(Topic, "t", ALICE, Read),
        deny(Topic, "*", "User:*", Read),
    ]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "t"));
    // A prefixed DENY beats a literal ALLOW.
    let a = auth(vec![
        allow(Topic, "secret-x", ALICE, Read),
        prefixed(deny(Topic, "secret-", ALICE, Read)),
    ]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "secret-x"));
}

#[test]
fn deny_applies_to_its_operation_only() {
    // DENY READ does not deny DESCRIBE (no implication for DENY), nor WRITE.
    let a = auth(vec![
        allow(Topic, "t", ALICE, All),
        deny(Topic, "t", ALICE, Read),
    ]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "t"));
    assert!(a.authorize(ALICE, HOST, Describe, Topic, "t"));
    assert!(a.authorize(ALICE, HOST, Write, Topic, "t"));
}

#[test]
fn implied_operations() {
    for granted in [Read, Write, Delete, Alter, Describe] {
        let a = auth(vec![allow(Topic, "t", ALICE, granted)]);
        assert!(a.authorize(ALICE, HOST, Describe, Topic, "t"), "{granted}");
    }
    for granted in [Create, AlterConfigs, DescribeConfigs, ClusterAction] {
        let a = auth(vec![allow(Topic, "t", ALICE, granted)]);
        assert!(!a.authorize(ALICE, HOST, Describe, Topic, "t"), "{granted}");
    }
    let a = auth(vec![allow(Topic, "t", ALICE, AlterConfigs)]);
    assert!(a.authorize(ALICE, HOST, DescribeConfigs, Topic, "t"));
    assert!(!a.authorize(ALICE, HOST, AlterConfigs, Topic, "u"));
    let a = auth(vec![allow(Topic, "t", ALICE, DescribeConfigs)]);
    assert!(!a.authorize(ALICE, HOST, AlterConfigs, Topic, "t"));
    // READ does not imply WRITE; ALL implies everything.
    let a = auth(vec![allow(Topic, "t", ALICE, Read)]);
    assert!(!a.authorize(ALICE, HOST, Write, Topic, "t"));
    let a = auth(vec![allow(Topic, "t", ALICE, All)]);
    for op in Operation::ALL_VALUES {
        assert!(a.authorize(ALICE, HOST, *op, Topic, "t"), "{op}");
    }
}

#[test]
fn wildcards_principal_host_and_resource() {
    let a = auth(vec![allow(Topic, "t", "User:*", Read)]);
    assert!(a.authorize(ALICE, HOST, Read, Topic, "t"));
    assert!(a.authorize(BOB, HOST, Read, Topic, "t"));
    // "User:*" is Kafka's one wildcard principal; "Group:*" is just a name.
    let a = auth(vec![allow(Topic, "t", "Group:*", Read)]);
    assert!(!a.authorize("Group:ops", HOST, Read, Topic, "t"));

    let mut h = allow(Topic, "t", ALICE, Read);
    h.host = HOST.into();
    let a = auth(vec![h]);
    assert!(a.authorize(ALICE, HOST, Read, Topic, "t"));
    assert!(!a.authorize(ALICE, "10.0.0.2", Read, Topic, "t"));

    let a = auth(vec![allow(Topic, WILDCARD, ALICE, Read)]);
    assert!(a.authorize(ALICE, HOST, Read, Topic, "anything"));
    assert!(a.authorize(ALICE, HOST, Read, Topic, "*"));
    assert!(!a.authorize(ALICE, HOST, Read, Group, "anything"));
    assert!(!a.authorize(BOB, HOST, Read, Topic, "anything"));
}

#[test]
fn prefixed_patterns() {
    let a = auth(vec![prefixed(allow(Topic, "orders-", ALICE, Read))]);
    assert!(a.authorize(ALICE, HOST, Read, Topic, "orders-"));
    assert!(a.authorize(ALICE, HOST, Read, Topic, "orders-eu"));
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "orders"));
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "my-orders-eu"));
    // A literal ACL whose name is a prefix is not a prefixed one.
    let a = auth(vec![allow(Topic, "orders", ALICE, Read)]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "orders-eu"));
    // Several prefix lengths and multi-byte names.
    let a = auth(vec![
        prefixed(allow(Topic, "é", ALICE, Read)),
        prefixed(allow(Topic, "ab", BOB, Read)),
    ]);
    assert!(a.authorize(ALICE, HOST, Read, Topic, "été"));
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "e"));
    assert!(a.authorize(BOB, HOST, Read, Topic, "abc"));
    assert!(!a.authorize(BOB, HOST, Read, Topic, "a"));
    // A prefixed "*" is a literal prefix, not a wildcard.
    let a = auth(vec![prefixed(allow(Topic, "*", ALICE, Read))]);
    assert!(!a.authorize(ALICE, HOST, Read, Topic, "t"));
    assert!(a.authorize(ALICE, HOST, Read, Topic, "*t"));
}

#[test]
fn super_users_pass_everything() {
    let a = auth(vec![deny(Topic, "*", "User:*", All)]);
    assert!(a.authorize("User:admin", HOST, Delete, Topic, "t"));
    assert!(a.authorize("User:admin", HOST, ClusterAction, Cluster, CLUSTER_NAME));
    assert!(!a.authorize(ALICE, HOST, Delete, Topic, "t"));
    // Exact principal string: no case folding.
    assert!(!a.authorize("User:Admin", HOST, Delete, Topic, "t"));
}

#[test]
fn allow_everyone_if_no_acl_found_both_ways() {
    let acls = vec![allow(Topic, "guarded", BOB, Read)];
    let open = Authorizer::new(vec![], true, acls.clone());
    let closed = Authorizer::new(vec![], false, acls);
    // No ACL on "free": the flag decides.
    assert!(open.authorize(ALICE, HOST, Write, Topic, "free"));
    assert!(!closed.authorize(ALICE, HOST, Write, Topic, "free"));
    // Some ACL on "guarded" (even for another principal): no fallback.
    assert!(!open.authorize(ALICE, HOST, Read, Topic, "guarded"));
    assert!(!closed.authorize(ALICE, HOST, Read, Topic, "guarded"));
    assert!(open.authorize(BOB, HOST, Read, Topic, "guarded"));
    // An ACL on another resource type does not count.
    assert!(open.authorize(ALICE, HOST, Read, Group, "guarded"));
    // A prefixed or wildcard ACL counts as an ACL on the resource.
    let open = Authorizer::new(vec![], true, vec![prefixed(allow(Topic, "g", BOB, Read))]);
    assert!(!open.authorize(ALICE, HOST, Read, Topic, "guarded"));
    let open = Authorizer::new(vec![], true, vec![allow(Topic, "*", BOB, Read)]);
    assert!(!open.authorize(ALICE, HOST, Read, Topic, "x"));
}

#[test]
fn authorize_any_follows_kafkas_default() {
    // No ACLs, closed: no. Open: yes (through the made-up name).
    assert!(!auth(vec![]).authorize_any(ALICE, HOST, Write, Topic));
    assert!(Authorizer::new(vec![], true, vec![]).authorize_any(ALICE, HOST, Write, Topic));
    // Super user.
    assert!(auth(vec![]).authorize_any("User:admin", HOST, Write, Topic));
    // One literal ALLOW somewhere: yes; for another op or type: no.
    let a = auth(vec![allow(Topic, "t", ALICE, Write)]);
    assert!(a.authorize_any(ALICE, HOST, Write, Topic));
    assert!(!a.authorize_any(ALICE, HOST, Read, Topic));
    assert!(!a.authorize_any(ALICE, HOST, Write, Group));
    assert!(!a.authorize_any(BOB, HOST, Write, Topic));
    // ALL counts; implied operations do not (READ does not give DESCRIBE here).
    assert!(auth(vec![allow(Group, "g", ALICE, All)]).authorize_any(ALICE, HOST, Describe, Group));
    assert!(!auth(vec![allow(Group, "g", ALICE, Read)]).authorize_any(ALICE, HOST, Describe, Group));
    // The literal ALLOW denied literally: no; denied by a prefix of it: no.
    let a = auth(vec![
        allow(Topic, "t", ALICE, Write),
        deny(Topic, "t", ALICE, Write),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Write, Topic));
    let a = auth(vec![
        prefixed(allow(Topic, "team-a-", ALICE, Write)),
        prefixed(deny(Topic, "team-", ALICE, Write)),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Write, Topic));
    // A prefixed ALLOW with a longer prefixed DENY under it still allows some names.
    let a = auth(vec![
        prefixed(allow(Topic, "team-", ALICE, Write)),
        prefixed(deny(Topic, "team-a-", ALICE, Write)),
    ]);
    assert!(a.authorize_any(ALICE, HOST, Write, Topic));
    // Wildcard DENY refuses even with ALLOWs; wildcard ALLOW allows.
    let a = auth(vec![
        allow(Topic, "t", ALICE, Write),
        deny(Topic, "*", "User:*", Write),
    ]);
    assert!(!a.authorize_any(ALICE, HOST, Write, Topic));
    assert!(auth(vec![allow(Topic, "*", ALICE, Write)]).authorize_any(ALICE, HOST, Write, Topic));
    // Host must match.
    let mut h = allow(Topic, "t", ALICE, Write);
    h.host = "10.9.9.9".into();
    assert!(!auth(vec![h]).authorize_any(ALICE, HOST, Write, Topic));
}

#[test]
fn authorized_operations_bits() {
    let a = auth(vec![
        allow(Topic, "t", ALICE, Read),
        allow(Topic, "t", ALICE, AlterConfigs),
    ]);
    let bits = a.authorized_operations(ALICE, HOST, Topic, "t");
    let want = (1 << Read.code())
        | (1 << Describe.code())
        | (1 << AlterConfigs.code())
        | (1 << DescribeConfigs.code());
    assert_eq!(bits, want);
    assert_eq!(a.authorized_operations(BOB, HOST, Topic, "t"), 0);
    // Super user: every supported op of the type, nothing else.
    let group_bits = a.authorized_operations("User:admin", HOST, Group, "g");
    assert_eq!(
        group_bits,
        (1 << Read.code()) | (1 << Describe.code()) | (1 << Delete.code())
    );
    let cluster = a.authorized_operations("User:admin", HOST, Cluster, CLUSTER_NAME);
    for op in [
        Create,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
        Alter,
        Describe,
    ] {
        assert!(cluster & (1 << op.code()) != 0, "{op}");
    }
    assert_eq!(cluster & (1 << All.code()), 0);
    assert_eq!(cluster & (1 << Read.code()), 0);
}

#[test]
fn duplicates_are_kept_once() {
    let b = allow(Topic, "t", ALICE, Read);
    let a = auth(vec![b.clone(), b.clone()]);
    assert_eq!(a.acls().len(), 1);
    let added = a.with_added(&[
        b.clone(),
        allow(Topic, "u", ALICE, Read),
        allow(Topic, "u", ALICE, Read),
    ]);
    assert_eq!(added, vec![b, allow(Topic, "u", ALICE, Read)]);
}

fn filter() -> AclFilter {
    AclFilter::any()
}

#[test]
fn filter_any_and_exact() {
    let lit = allow(Topic, "orders", ALICE, Read);
    let pre = prefixed(allow(Topic, "orders", ALICE, Read));
    let star = allow(Topic, "*", ALICE, Read);
    assert!(filter().matches(&lit) && filter().matches(&pre) && filter().matches(&star));
    // ANY with a name: exact name, either pattern type.
    let f = AclFilter {
        name: Some("orders".into()),
        ..filter()
    };
    assert!(f.matches(&lit) && f.matches(&pre) && !f.matches(&star));
    // LITERAL / PREFIXED: that pattern type, exact name.
    let f = AclFilter {
        name: Some("orders".into()),
        pattern: PatternFilter::Literal,
        ..filter()
    };
    assert!(f.matches(&lit) && !f.matches(&pre));
    let f = AclFilter {
        name: Some("orders".into()),
        pattern: PatternFilter::Prefixed,
        ..filter()
    };
    assert!(!f.matches(&lit) && f.matches(&pre));
    let f = AclFilter {
        name: Some("orders-eu".into()),
        pattern: PatternFilter::Prefixed,
        ..filter()
    };
    assert!(!f.matches(&pre));
    // Entry fields compare exactly: a filter for alice does not return User:* bindings.
    let any_user = allow(Topic, "orders", "User:*", Read);
    let f = AclFilter {
        principal: Some(ALICE.into()),
        ..filter()
    };
    assert!(f.matches(&lit) && !f.matches(&any_user));
    let f = AclFilter {
        host: Some(HOST.into()),
        ..filter()
    };
    assert!(!f.matches(&lit));
    let f = AclFilter {
        operation: Some(Write),
        ..filter()
    };
    assert!(!f.matches(&lit));
    let f = AclFilter {
        operation: Some(All),
        ..filter()
    };
    assert!(
        !f.matches(&lit),
        "ALL in a filter is the ALL operation, not ANY"
    );
    let f = AclFilter {
        permission: Some(Permission::Deny),
        ..filter()
    };
    assert!(!f.matches(&lit));
    let f = AclFilter {
        resource_type: Some(Group),
        ..filter()
    };
    assert!(!f.matches(&lit));
}

#[test]
fn filter_match() {
    let lit = allow(Topic, "orders-eu", ALICE, Read);
    let other = allow(Topic, "orders", ALICE, Read);
    let pre = prefixed(allow(Topic, "orders-", ALICE, Read));
    let pre_longer = prefixed(allow(Topic, "orders-eu-1", ALICE, Read));
    let star = allow(Topic, "*", ALICE, Read);
    let f = AclFilter {
        name: Some("orders-eu".into()),
        pattern: PatternFilter::Match,
        ..filter()
    };
    assert!(f.matches(&lit));
    assert!(!f.matches(&other));
    assert!(f.matches(&pre));
    assert!(!f.matches(&pre_longer));
    assert!(f.matches(&star));
    // MATCH without a name matches every pattern.
    let f = AclFilter {
        pattern: PatternFilter::Match,
        ..filter()
    };
    assert!(f.matches(&lit) && f.matches(&pre) && f.matches(&star));
}

#[test]
fn describe_and_remove() {
    let acls = vec![
        allow(Topic, "a", ALICE, Read),
        allow(Topic, "b", ALICE, Read),
        allow(Group, "g", BOB, Read),
    ];
    let a = auth(acls.clone());
    let f_alice = AclFilter {
        principal: Some(ALICE.into()),
        ..filter()
    };
    let f_topic_a = AclFilter {
        name: Some("a".into()),
        resource_type: Some(Topic),
        ..filter()
    };
    assert_eq!(a.describe(&f_alice), acls[..2].to_vec());
    let (removed, remaining) = a.with_removed(&[f_alice, f_topic_a]);
    assert_eq!(removed, vec![acls[..2].to_vec(), vec![acls[0].clone()]]);
    assert_eq!(remaining, vec![acls[2].clone()]);
    // No filter: nothing removed.
    let (removed, remaining) = a.with_removed(&[]);
    assert!(removed.is_empty());
    assert_eq!(remaining, acls);
}

/// The index must agree with a plain scan of every ACL (the rule written directly).
#[test]
fn index_agrees_with_a_scan() {
    let names = ["a", "ab", "abc", "b", "*", "é", "éa"];
    let principals = [ALICE, BOB, "User:*"];
    let ops = [Read, Write, Describe, All, AlterConfigs, DescribeConfigs];
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for _ in 0..200 {
        let mut acls = Vec::new();
        for _ in 0..next(8) {
            acls.push(acl(
                [Topic, Group][next(2)],
                names[next(names.len())],
                [PatternType::Literal, PatternType::Prefixed][next(2)],
                principals[next(3)],
                ["*", HOST, "10.0.0.2"][next(3)],
                ops[next(ops.len())],
                [Permission::Allow, Permission::Deny][next(2)],
            ));
        }
        let flag = next(2) == 0;
        let a = Authorizer::new(vec![], flag, acls.clone());
        for name in ["a", "abc", "b", "éa", "*", "z"] {
            for p in [ALICE, BOB] {
                for op in [Read, Write, Describe, DescribeConfigs] {
                    let applies = |b: &&AclBinding| {
                        b.resource_type == Topic
                            && match b.pattern {
                                PatternType::Literal => b.name == name || b.name == "*",
                                PatternType::Prefixed => name.starts_with(&b.name),
                            }
                    };
                    let on_resource: Vec<&AclBinding> = acls.iter().filter(applies).collect();
                    let mine = |b: &&&AclBinding| {
                        (b.principal == p || b.principal == "User:*")
                            && (b.host == "*" || b.host == HOST)
                    };
                    let denied = on_resource.iter().filter(mine).any(|b| {
                        b.permission == Permission::Deny
                            && (b.operation == op || b.operation == All)
                    });
                    let allowed = on_resource.iter().filter(mine).any(|b| {
                        b.permission == Permission::Allow
                            && (b.operation == op
                                || b.operation == All
                                || (op == Describe
                                    && matches!(
                                        b.operation,
                                        Read | Write | Operation::Delete | Alter
                                    ))
                                || (op == DescribeConfigs && b.operation == AlterConfigs))
                    });
                    let want = if denied {
                        false
                    } else if on_resource.is_empty() {
                        flag
                    } else {
                        allowed
                    };
                    assert_eq!(
                        a.authorize(p, HOST, op, Topic, name),
                        want,
                        "{acls:?} {p} {op} {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn hosts_are_compared_as_addresses() {
    let mut a = allow(Topic, "t", "User:alice", Read);
    a.host = "0:0:0:0:0:0:0:1".into();
    let z = auth(vec![a]);
    assert!(z.authorize("User:alice", "::1", Read, Topic, "t"));
    assert!(!z.authorize("User:alice", "::2", Read, Topic, "t"));
    assert!(!z.authorize("User:alice", "127.0.0.1", Read, Topic, "t"));
}
