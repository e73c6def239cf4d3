//! Kafka's ACL model: bindings, filters (DescribeAcls / DeleteAcls) and the StandardAuthorizer's
//! decision rules, indexed so that a check looks only at the ACLs that can match the resource.

use std::collections::{BTreeSet, HashMap, HashSet};

/// The only name a CLUSTER resource has in Kafka.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name matching every resource of its type.
pub const WILDCARD: &str = "*";
/// A principal matching every principal (Kafka's `WILDCARD_KAFKA_PRINCIPAL`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }
        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant,)*];
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }
            /// None for codes Kafka gives to UNKNOWN, ANY, MATCH (filters) or does not define.
            pub fn from_code(c: i8) -> Option<Self> {
                match c { $($code => Some($name::$variant),)* _ => None }
            }
            /// The name as Kafka prints it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum!(
    /// ANY = 1 is a filter value (None in [`AclFilter`]).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded_enum!(
    /// ANY = 1 and MATCH = 2 are filter values ([`PatternFilter`]).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// ANY = 1 is a filter value (None in [`AclFilter`]).
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

coded_enum!(
    /// ANY = 1 is a filter value (None in [`AclFilter`]).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations Kafka reports in authorized-operations fields for this type
    /// (`AclEntry.supportedOperations`).
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
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
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// "User:alice"
    pub principal: String,
    /// "*" or an IP address
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's checks before an ACL is created (AclApis.handleCreateAcls, then
    /// AclControlManager.validateNewAcl; the enums cannot hold ANY/UNKNOWN here). The message
    /// is Kafka's; it becomes INVALID_REQUEST at the edge.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if self.name.is_empty() {
            return Err("Invalid empty resource name".into());
        }
        if !self.principal.contains(':') {
            return Err(format!(
                "Could not parse principal from `{}` (no colon is present separating the \
                 principal type from the principal name)",
                self.principal
            ));
        }
        Ok(())
    }

    fn principal_and_host_match(&self, principal: &str, host: &str) -> bool {
        // Addresses are compared as addresses: an ACL written for Kafka names IPv6 hosts in
        // Java's long form (0:0:0:0:0:0:0:1) where the broker sees ::1.
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == WILDCARD || self.host == host || same_address(&self.host, host))
    }
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(resource={}:{}:{}, principal={}, host={}, operation={}, permission={})",
            self.resource_type,
            self.pattern,
            self.name,
            self.principal,
            self.host,
            self.operation,
            self.permission
        )
    }
}

/// A filter's pattern type (Kafka's PatternType as a filter: ANY = 1, MATCH = 2, LITERAL = 3,
/// PREFIXED = 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternFilter {
    /// Any pattern type; a name then matches only exactly.
    Any,
    /// Every binding that would apply to the named resource: literal equal, literal "*", or
    /// prefixed with a prefix of the name.
    Match,
    Literal,
    Prefixed,
}

impl PatternFilter {
    pub fn code(self) -> i8 {
        match self {
            PatternFilter::Any => 1,
            PatternFilter::Match => 2,
            PatternFilter::Literal => 3,
            PatternFilter::Prefixed => 4,
        }
    }

    pub fn from_code(c: i8) -> Option<Self> {
        match c {
            1 => Some(PatternFilter::Any),
            2 => Some(PatternFilter::Match),
            3 => Some(PatternFilter::Literal),
            4 => Some(PatternFilter::Prefixed),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AclFilter {
    /// None = ANY
    pub resource_type: Option<ResourceType>,
    /// None = any name
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    /// None = ANY
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Matches every binding.
    pub fn any() -> Self {
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

    /// Kafka's AclBindingFilter.matches: ResourcePatternFilter.matches and
    /// AccessControlEntryFilter.matches (principal and host compared exactly: a filter for
    /// "User:alice" does not return "User:*" bindings).
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.pattern_matches(b) && self.entry_matches(b)
    }

    fn pattern_matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        let same_type = match self.pattern {
            PatternFilter::Any | PatternFilter::Match => true,
            PatternFilter::Literal => b.pattern == PatternType::Literal,
            PatternFilter::Prefixed => b.pattern == PatternType::Prefixed,
        };
        if !same_type {
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

    fn entry_matches(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// Kafka's StandardAuthorizer decisions over a fixed set of ACLs (a change builds a new one).
#[derive(Clone, Debug)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_everyone_if_no_acl_found: bool,
    acls: Vec<AclBinding>,
    /// type -> literal name ("*" included) -> indexes into `acls`.
    literal: HashMap<ResourceType, HashMap<String, Vec<usize>>>,
    /// Per type: the prefixes by name, and the distinct prefix lengths (so a check looks up
    /// only lengths some ACL has, not every prefix of the name).
    prefixed: HashMap<ResourceType, PrefixIndex>,
}

#[derive(Clone, Debug, Default)]
struct PrefixIndex {
    by_name: HashMap<String, Vec<usize>>,
    lengths: BTreeSet<usize>,
}

/// Operations an ALLOW for `granted` also allows (Kafka's IMPLIES_DESCRIBE and
/// IMPLIES_DESCRIBE_CONFIGS; DENY never implies).
fn allow_covers(granted: Operation, asked: Operation) -> bool {
    use Operation::*;
    granted == All
        || granted == asked
        || (asked == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (asked == DescribeConfigs && granted == AlterConfigs)
}

impl Authorizer {
    /// Duplicated bindings are kept once.
    pub fn new(
        super_users: Vec<String>,
        allow_everyone_if_no_acl_found: bool,
        acls: Vec<AclBinding>,
    ) -> Self {
        let mut seen = HashSet::with_capacity(acls.len());
        let acls: Vec<AclBinding> = acls
            .into_iter()
            .filter(|a| seen.insert(a.clone()))
            .collect();
        let mut literal: HashMap<ResourceType, HashMap<String, Vec<usize>>> = HashMap::new();
        let mut prefixed: HashMap<ResourceType, PrefixIndex> = HashMap::new();
        for (i, a) in acls.iter().enumerate() {
            match a.pattern {
                PatternType::Literal => literal
                    .entry(a.resource_type)
                    .or_default()
                    .entry(a.name.clone())
                    .or_default()
                    .push(i),
                PatternType::Prefixed => {
                    let p = prefixed.entry(a.resource_type).or_default();
                    p.by_name.entry(a.name.clone()).or_default().push(i);
                    p.lengths.insert(a.name.len());
                }
            }
        }
        Authorizer {
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found,
            acls,
            literal,
            prefixed,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    pub fn allow_everyone_if_no_acl_found(&self) -> bool {
        self.allow_everyone_if_no_acl_found
    }

    /// Calls `f` on every ACL whose resource pattern applies to (rt, name): literal equal,
    /// literal "*", prefixed by a prefix of the name. Stops when `f` returns false.
    fn for_each_applicable(
        &self,
        rt: ResourceType,
        name: &str,
        mut f: impl FnMut(&AclBinding) -> bool,
    ) {
        if let Some(by_name) = self.literal.get(&rt) {
            let exact = by_name.get(name).into_iter();
            let wildcard = (name != WILDCARD)
                .then(|| by_name.get(WILDCARD))
                .flatten()
                .into_iter();
            for &i in exact.chain(wildcard).flatten() {
                if !f(&self.acls[i]) {
                    return;
                }
            }
        }
        if let Some(p) = self.prefixed.get(&rt) {
            for &len in p.lengths.range(..=name.len()) {
                let Some(prefix) = name.get(..len) else {
                    continue; // not a char boundary: no prefix of this length
                };
                if let Some(ix) = p.by_name.get(prefix) {
                    for &i in ix {
                        if !f(&self.acls[i]) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Kafka's StandardAuthorizer: super users may do everything; a matching DENY (its exact
    /// operation or ALL) wins over any ALLOW; an ALLOW matches its operation, ALL, or an
    /// operation it implies; principals match exactly or through "User:*", hosts exactly or
    /// through "*". When no ACL at all applies to the resource (whatever its principal or
    /// operation), the answer is `allow.everyone.if.no.acl.found`.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let mut any_acl = false;
        let mut allowed = false;
        let mut denied = false;
        self.for_each_applicable(rt, name, |a| {
            any_acl = true;
            if !a.principal_and_host_match(principal, host) {
                return true;
            }
            match a.permission {
                Permission::Deny => {
                    if a.operation == Operation::All || a.operation == op {
                        denied = true;
                        return false;
                    }
                }
                Permission::Allow => {
                    if allow_covers(a.operation, op) {
                        allowed = true;
                    }
                }
            }
            true
        });
        if denied {
            false
        } else if any_acl {
            allowed
        } else {
            self.allow_everyone_if_no_acl_found
        }
    }

    /// Kafka's `Authorizer.authorizeByResourceType` default: may the principal be allowed `op`
    /// on at least one resource of type `rt`? First a check on a made-up literal name (so super
    /// users, and `allow.everyone.if.no.acl.found` with no ACL for that name, pass whatever
    /// DENY exists); then, over the ACLs of that type for this principal (or "User:*") and host
    /// with the operation itself or ALL (no implied operations here): a literal "*" DENY
    /// refuses; a literal "*" ALLOW allows; otherwise some ALLOW whose name is neither denied
    /// literally (literal ALLOWs only) nor covered by a prefixed DENY allows.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: Operation,
        rt: ResourceType,
    ) -> bool {
        if self.authorize(principal, host, op, rt, "hardcode") {
            return true;
        }
        let mut deny_literal: HashSet<&str> = HashSet::new();
        let mut deny_prefixed: HashSet<&str> = HashSet::new();
        let mut allow: Vec<&AclBinding> = Vec::new();
        let mut wildcard_allow = false;
        for a in self.acls.iter().filter(|a| a.resource_type == rt) {
            if !a.principal_and_host_match(principal, host) {
                continue;
            }
            if a.operation != op && a.operation != Operation::All {
                continue;
            }
            match (a.permission, a.pattern) {
                (Permission::Deny, PatternType::Literal) => {
                    if a.name == WILDCARD {
                        return false;
                    }
                    deny_literal.insert(&a.name);
                }
                (Permission::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(&a.name);
                }
                (Permission::Allow, PatternType::Literal) if a.name == WILDCARD => {
                    wildcard_allow = true;
                }
                (Permission::Allow, _) => allow.push(a),
            }
        }
        if wildcard_allow {
            return true;
        }
        allow.iter().any(|a| {
            if a.pattern == PatternType::Literal && deny_literal.contains(a.name.as_str()) {
                return false;
            }
            // A prefixed DENY on any prefix of this ALLOW's name dominates it.
            !a.name
                .char_indices()
                .map(|(i, c)| &a.name[..i + c.len_utf8()])
                .any(|p| deny_prefixed.contains(p))
        })
    }

    /// The authorized-operations bitfield: bit (1 << code) for each operation Kafka lists for
    /// `rt` that [`Authorizer::authorize`] allows.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: &str,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        rt.supported_operations()
            .iter()
            .filter(|op| self.authorize(principal, host, **op, rt, name))
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    }

    pub fn acls(&self) -> &[AclBinding] {
        &self.acls
    }

    pub fn describe(&self, f: &AclFilter) -> Vec<AclBinding> {
        self.acls.iter().filter(|a| f.matches(a)).cloned().collect()
    }

    /// The full list with `add` appended, duplicates (of existing or of each other) ignored,
    /// so the caller can persist it before building the new authorizer.
    pub fn with_added(&self, add: &[AclBinding]) -> Vec<AclBinding> {
        let mut seen: HashSet<&AclBinding> = self.acls.iter().collect();
        let mut out = self.acls.clone();
        for a in add {
            if seen.insert(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// The bindings each filter removes (a binding matched by two filters is reported by
    /// both, as Kafka does), and the remaining list.
    pub fn with_removed(&self, filters: &[AclFilter]) -> (Vec<Vec<AclBinding>>, Vec<AclBinding>) {
        let removed: Vec<Vec<AclBinding>> = filters.iter().map(|f| self.describe(f)).collect();
        let remaining = self
            .acls
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        (removed, remaining)
    }
}

/// Two spellings of one IP address.
fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
