//! Kafka's ACL model and its StandardAuthorizer's rules: who may do which operation on which
//! resource, and the filters the ACL admin APIs select bindings with.

use std::collections::{HashMap, HashSet};

macro_rules! coded {
    ($(#[$m:meta])* $name:ident { $($v:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($v),* }
        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 { match self { $($name::$v => $code),* } }
            pub fn from_code(c: i8) -> Option<Self> { match c { $($code => Some($name::$v),)* _ => None } }
            /// Kafka's name for it.
            pub fn name(self) -> &'static str { match self { $($name::$v => $text),* } }
            pub fn from_name(s: &str) -> Option<Self> {
                $(if s.eq_ignore_ascii_case($text) { return Some($name::$v); })*
                None
            }
        }
    };
}

coded!(
    /// What an ACL is about. (Kafka's ANY = 1 is a filter value, not a type.)
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded!(
    /// How an ACL's resource name matches.
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded!(
    Operation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded!(
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name matching every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal matching every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

impl ResourceType {
    /// The operations that mean something on this type (Kafka's table), for the
    /// authorized-operations fields.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                CreateTokens,
                DescribeTokens,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*`.
    pub principal: String,
    /// An address or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's checks on a new ACL; the message becomes INVALID_REQUEST's.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => {}
            _ => {
                return Err(format!(
                    "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Err("Host should not be empty".into());
        }
        Ok(())
    }
}

/// How a filter selects resource patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type, the name (if given) exactly.
    Any,
    /// Every pattern that would apply to the named resource: the literal name, the literal
    /// wildcard and every prefix of it.
    Match,
    Literal,
    Prefixed,
}

/// A filter of the ACL admin APIs; `None` fields match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Matches everything.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let entry = self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission);
        entry && self.matches_resource(b)
    }

    fn matches_resource(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        let exact_type = match self.pattern {
            PatternFilter::Literal => Some(PatternType::Literal),
            PatternFilter::Prefixed => Some(PatternType::Prefixed),
            _ => None,
        };
        if exact_type.is_some_and(|t| t != b.pattern) {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern != PatternFilter::Match {
            return *name == b.name;
        }
        match b.pattern {
            PatternType::Literal => *name == b.name || b.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.name),
        }
    }
}

/// Whether an ACL's operation covers `op` for its permission (Kafka: a DENY only matches its
/// own operation or ALL; an ALLOW also implies DESCRIBE and DESCRIBE_CONFIGS).
fn covers(acl: Operation, perm: Permission, op: Operation) -> bool {
    if acl == Operation::All || acl == op {
        return true;
    }
    if perm == Permission::Deny {
        return false;
    }
    match op {
        Operation::Describe => matches!(
            acl,
            Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
        ),
        Operation::DescribeConfigs => acl == Operation::AlterConfigs,
        _ => false,
    }
}

/// Kafka's StandardAuthorizer decisions over a fixed set of ACLs (a change builds a new one).
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
    acls: Vec<AclBinding>,
    /// Literal bindings (the wildcard `*` included) by resource type and name.
    literal: HashMap<(ResourceType, String), Vec<usize>>,
    /// Prefixed bindings by resource type and prefix.
    prefixed: HashMap<(ResourceType, String), Vec<usize>>,
    /// Resource types with at least one prefixed binding (most checks skip the prefix walk).
    has_prefixed: HashSet<ResourceType>,
}

impl Authorizer {
    pub fn new(
        super_users: Vec<String>,
        allow_everyone_if_no_acl_found: bool,
        acls: Vec<AclBinding>,
    ) -> Self {
        let mut seen = HashSet::new();
        let acls: Vec<AclBinding> = acls
            .into_iter()
            .filter(|a| seen.insert(a.clone()))
            .collect();
        let mut literal: HashMap<(ResourceType, String), Vec<usize>> = HashMap::new();
        let mut prefixed: HashMap<(ResourceType, String), Vec<usize>> = HashMap::new();
        let mut has_prefixed = HashSet::new();
        for (i, a) in acls.iter().enumerate() {
            let key = (a.resource_type, a.name.clone());
            match a.pattern {
                PatternType::Literal => literal.entry(key).or_default().push(i),
                PatternType::Prefixed => {
                    has_prefixed.insert(a.resource_type);
                    prefixed.entry(key).or_default().push(i)
                }
            }
        }
        Authorizer {
            super_users: super_users.into_iter().collect(),
            allow_if_no_acl: allow_everyone_if_no_acl_found,
            acls,
            literal,
            prefixed,
            has_prefixed,
        }
    }

    pub fn acls(&self) -> &[AclBinding] {
        &self.acls
    }

    /// Every binding whose resource pattern applies to the resource.
    fn matching(&self, rt: ResourceType, name: &str) -> impl Iterator<Item = &AclBinding> {
        let mut idx: Vec<usize> = Vec::new();
        for n in [name, WILDCARD] {
            if let Some(v) = self.literal.get(&(rt, n.to_string())) {
                idx.extend(v);
            }
            if name == WILDCARD {
                break;
            }
        }
        if self.has_prefixed.contains(&rt) {
            for (i, _) in name.char_indices().skip(1).chain([(name.len(), ' ')]) {
                if let Some(v) = self.prefixed.get(&(rt, name[..i].to_string())) {
                    idx.extend(v);
                }
            }
        }
        idx.into_iter().map(move |i| &self.acls[i])
    }

    fn applies(a: &AclBinding, principal: &str, host: &str) -> bool {
        (a.principal == principal || a.principal == WILDCARD_PRINCIPAL)
            && (a.host == host || a.host == WILDCARD)
    }

    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for a in self.matching(rt, name) {
            any_for_resource = true;
            if !Self::applies(a, principal, host) || !covers(a.operation, a.permission, op) {
                continue;
            }
            match a.permission {
                Permission::Deny => return false,
                Permission::Allow => allowed = true,
            }
        }
        if !any_for_resource {
            return self.allow_if_no_acl;
        }
        allowed
    }

    /// Whether `op` could be allowed on at least one resource of type `rt` (Kafka's
    /// authorizeByResourceType): some ALLOW applies that no DENY of the same or a wider
    /// pattern cancels.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        rt: ResourceType,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let relevant: Vec<&AclBinding> = self
            .acls
            .iter()
            .filter(|a| a.resource_type == rt && Self::applies(a, principal, host))
            .filter(|a| covers(a.operation, a.permission, op))
            .collect();
        if self.allow_if_no_acl && !self.acls.iter().any(|a| a.resource_type == rt) {
            return true;
        }
        let denies = |name: &str, prefixed: bool| {
            relevant.iter().any(|d| {
                d.permission == Permission::Deny
                    && match d.pattern {
                        PatternType::Literal => d.name == WILDCARD || (!prefixed && d.name == name),
                        PatternType::Prefixed => name.starts_with(&d.name),
                    }
            })
        };
        relevant
            .iter()
            .filter(|a| a.permission == Permission::Allow)
            .any(|a| {
                !denies(
                    &a.name,
                    a.pattern == PatternType::Prefixed || a.name == WILDCARD,
                )
            })
    }

    /// The authorized-operations bit field (bit `1 << code`) of the resource for the principal.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: &str,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        rt.operations()
            .iter()
            .filter(|op| self.authorize(principal, host, **op, rt, name))
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    }

    pub fn describe(&self, f: &AclFilter) -> Vec<AclBinding> {
        self.acls.iter().filter(|a| f.matches(a)).cloned().collect()
    }

    /// The list with `add` included (bindings already present are not repeated).
    pub fn with_added(&self, add: &[AclBinding]) -> Vec<AclBinding> {
        let mut out = self.acls.clone();
        let mut seen: HashSet<AclBinding> = out.iter().cloned().collect();
        for a in add {
            if seen.insert(a.clone()) {
                out.push(a.clone());
            }
        }
        out
    }

    /// What each filter removes, and the list that remains.
    pub fn with_removed(&self, filters: &[AclFilter]) -> (Vec<Vec<AclBinding>>, Vec<AclBinding>) {
        let each = filters.iter().map(|f| self.describe(f)).collect();
        let rest = self
            .acls
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        (each, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        rt: ResourceType,
        name: &str,
        pat: PatternType,
        who: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern: pat,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }
    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn deny_beats_allow_and_allows_imply_describe() {
        let a = Authorizer::new(
            vec!["User:admin".into()],
            false,
            vec![
                b(Topic, "orders", Literal, "User:alice", Read, Allow),
                b(Topic, "orders", Literal, "User:alice", Write, Deny),
                b(Topic, "pay", Prefixed, "User:*", Write, Allow),
                b(Topic, "pay-secret", Literal, "User:bob", All, Deny),
                b(Topic, "cfg", Literal, "User:alice", AlterConfigs, Allow),
            ],
        );
        assert!(a.authorize("User:alice", "1.2.3.4", Read, Topic, "orders"));
        assert!(a.authorize("User:alice", "1.2.3.4", Describe, Topic, "orders"));
        assert!(!a.authorize("User:alice", "1.2.3.4", Write, Topic, "orders"));
        assert!(!a.authorize("User:bob", "1.2.3.4", Read, Topic, "orders"));
        assert!(a.authorize("User:bob", "h", Write, Topic, "payments"));
        assert!(a.authorize("User:bob", "h", Describe, Topic, "payments"));
        assert!(!a.authorize("User:bob", "h", Write, Topic, "pay-secret"));
        assert!(a.authorize("User:carol", "h", Write, Topic, "pay-secret"));
        assert!(!a.authorize("User:bob", "h", Write, Topic, "pa"));
        assert!(a.authorize("User:alice", "h", DescribeConfigs, Topic, "cfg"));
        assert!(!a.authorize("User:alice", "h", Describe, Topic, "cfg"));
        // A DENY of DESCRIBE does not deny READ, but a DENY of ALL denies everything.
        assert!(a.authorize("User:admin", "h", Delete, Cluster, CLUSTER_NAME));
        // No ACL on the resource: allow.everyone.if.no.acl.found decides.
        assert!(!a.authorize("User:alice", "h", Read, Topic, "other"));
        let open = Authorizer::new(vec![], true, a.acls().to_vec());
        assert!(open.authorize("User:alice", "h", Read, Topic, "other"));
        assert!(
            !open.authorize("User:bob", "h", Read, Topic, "orders"),
            "ACLs exist for it"
        );
    }

    #[test]
    fn hosts_wildcards_and_groups() {
        let mut acl = b(Group, "g1", Literal, "User:alice", Read, Allow);
        acl.host = "10.0.0.1".into();
        let a = Authorizer::new(
            vec![],
            false,
            vec![acl, b(Group, "*", Literal, "User:ops", Describe, Allow)],
        );
        assert!(a.authorize("User:alice", "10.0.0.1", Read, Group, "g1"));
        assert!(!a.authorize("User:alice", "10.0.0.2", Read, Group, "g1"));
        assert!(a.authorize("User:ops", "h", Describe, Group, "anything"));
        assert!(!a.authorize("User:ops", "h", Read, Group, "anything"));
        assert_eq!(
            a.authorized_operations("User:alice", "10.0.0.1", Group, "g1"),
            (1 << 3) | (1 << 8)
        );
    }

    #[test]
    fn authorize_any_follows_kafka() {
        let a = Authorizer::new(
            vec![],
            false,
            vec![
                b(Topic, "t", Literal, "User:alice", Write, Allow),
                b(Topic, "t", Literal, "User:bob", Write, Allow),
                b(Topic, "t", Literal, "User:bob", Write, Deny),
                b(Topic, "x", Prefixed, "User:carol", Write, Allow),
                b(Topic, "*", Literal, "User:carol", Write, Deny),
            ],
        );
        assert!(a.authorize_any("User:alice", "h", Write, Topic));
        assert!(!a.authorize_any("User:bob", "h", Write, Topic));
        assert!(!a.authorize_any("User:carol", "h", Write, Topic));
        assert!(!a.authorize_any("User:dave", "h", Write, Topic));
        assert!(!a.authorize_any("User:alice", "h", Write, Group));
        let open = Authorizer::new(vec![], true, vec![]);
        assert!(open.authorize_any("User:x", "h", Write, Topic));
    }

    #[test]
    fn filters_match_as_kafka() {
        let lit = b(Topic, "orders", Literal, "User:a", Read, Allow);
        let wild = b(Topic, "*", Literal, "User:a", Read, Allow);
        let pre = b(Topic, "ord", Prefixed, "User:a", Read, Allow);
        let other = b(Group, "orders", Literal, "User:b", Write, Deny);
        let mut f = AclFilter::any();
        assert!([&lit, &wild, &pre, &other].iter().all(|x| f.matches(x)));
        f.name = Some("orders".into());
        f.pattern = PatternFilter::Match;
        f.resource_type = Some(Topic);
        assert!(f.matches(&lit) && f.matches(&wild) && f.matches(&pre) && !f.matches(&other));
        f.pattern = PatternFilter::Any;
        assert!(f.matches(&lit) && !f.matches(&wild) && !f.matches(&pre));
        f.pattern = PatternFilter::Prefixed;
        f.name = Some("ord".into());
        assert!(f.matches(&pre) && !f.matches(&lit));
        let mut f = AclFilter::any();
        f.principal = Some("User:b".into());
        f.permission = Some(Deny);
        assert!(f.matches(&other) && !f.matches(&lit));
        let a = Authorizer::new(vec![], false, vec![lit.clone(), pre.clone(), lit.clone()]);
        assert_eq!(a.acls().len(), 2, "duplicates collapse");
        assert_eq!(a.with_added(&[lit.clone(), wild.clone()]).len(), 3);
        let (each, rest) = a.with_removed(&[AclFilter {
            pattern: PatternFilter::Literal,
            ..AclFilter::any()
        }]);
        assert_eq!(each, vec![vec![lit]]);
        assert_eq!(rest, vec![pre]);
    }

    #[test]
    fn new_bindings_are_validated() {
        let ok = b(Topic, "t", Literal, "User:a", Read, Allow);
        assert!(ok.validate().is_ok());
        assert!(b(Topic, "", Literal, "User:a", Read, Allow)
            .validate()
            .is_err());
        assert!(b(Topic, "t", Literal, "alice", Read, Allow)
            .validate()
            .is_err());
        assert!(b(Cluster, "c", Literal, "User:a", Alter, Allow)
            .validate()
            .is_err());
        assert!(b(Cluster, CLUSTER_NAME, Literal, "User:a", Alter, Allow)
            .validate()
            .is_ok());
        assert_eq!(Operation::from_code(1), None, "ANY is a filter value");
        assert_eq!(
            ResourceType::from_name("transactional_id"),
            Some(TransactionalId)
        );
    }
}
