//! Client quotas as Kafka defines them: which entities may carry a quota (a user, a client id,
//! the two together, or an IP address; each possibly the type's default), which keys each takes
//! and how their values are checked, how DescribeClientQuotas filters, which quota applies to a
//! request, and the sampled rates that turn use into throttle times.
//!
//! Knows nothing of sockets, files other than its own, Kafka's wire types or error codes.

use std::collections::BTreeMap;

pub mod manager;
pub mod rate;
pub mod store;

pub use manager::{QuotaKind, QuotaManager};
pub use rate::WindowConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    User,
    ClientId,
    Ip,
}

impl EntityType {
    pub fn name(self) -> &'static str {
        match self {
            EntityType::User => "user",
            EntityType::ClientId => "client-id",
            EntityType::Ip => "ip",
        }
    }
    pub fn parse(s: &str) -> Option<EntityType> {
        match s {
            "user" => Some(EntityType::User),
            "client-id" => Some(EntityType::ClientId),
            "ip" => Some(EntityType::Ip),
            _ => None,
        }
    }
}

/// A quota entity: each type at most once; a `None` name is the type's default entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity(BTreeMap<EntityType, Option<String>>);

/// A refused request, with Kafka's message; the broker answers INVALID_REQUEST unless noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("{0}")]
    Invalid(String),
    /// An entity type this broker does not know, in a filter (Kafka: UNSUPPORTED_VERSION).
    #[error("{0}")]
    UnsupportedEntityType(String),
}

fn invalid(msg: impl Into<String>) -> QuotaError {
    QuotaError::Invalid(msg.into())
}

impl Entity {
    /// Checks an entity as Kafka's controller does: known types, each once, no empty names, and
    /// an IP never combined with a user or client id.
    pub fn new<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Entity, QuotaError> {
        let mut map = BTreeMap::new();
        for (ty, name) in parts {
            let Some(t) = EntityType::parse(ty) else {
                return Err(invalid(format!("Unhandled client quota entity type: {ty}")));
            };
            if map.contains_key(&t) {
                return Err(invalid(format!(
                    "Invalid client quota entity, duplicate entity entry {ty}"
                )));
            }
            if name == Some("") {
                return Err(invalid(format!("Empty {ty} not supported")));
            }
            map.insert(t, name.map(str::to_owned));
        }
        if map.is_empty() {
            return Err(invalid("Invalid empty client quota entity"));
        }
        if let Some(ip) = map.get(&EntityType::Ip) {
            if map.len() > 1 {
                return Err(invalid(
                    "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
                ));
            }
            if let Some(ip) = ip {
                // Kafka also resolves host names here; an address literal is what is enforced.
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid(format!(
                        "{ip} is not a valid IP or resolvable host."
                    )));
                }
            }
        }
        Ok(Entity(map))
    }

    pub fn parts(&self) -> impl Iterator<Item = (EntityType, Option<&str>)> {
        self.0.iter().map(|(t, n)| (*t, n.as_deref()))
    }

    pub fn get(&self, t: EntityType) -> Option<Option<&str>> {
        self.0.get(&t).map(|n| n.as_deref())
    }

    fn is_ip(&self) -> bool {
        self.0.contains_key(&EntityType::Ip)
    }

    /// The key definitions an entity of this shape accepts.
    pub fn keys(&self) -> &'static [KeyDef] {
        if self.is_ip() {
            IP_KEYS
        } else {
            USER_CLIENT_KEYS
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (t, n) in self.parts() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match n {
                Some(n) => write!(f, "{}={n}", t.name())?,
                None => write!(f, "{}=<default>", t.name())?,
            }
        }
        Ok(())
    }
}

/// How a quota's value is typed (Kafka's ConfigDef types for these keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Long,
    Int,
    Double,
}

#[derive(Debug)]
pub struct KeyDef {
    pub name: &'static str,
    pub ty: ValueType,
    pub doc: &'static str,
}

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

pub const USER_CLIENT_KEYS: &[KeyDef] = &[
    KeyDef {
        name: PRODUCER_BYTE_RATE,
        ty: ValueType::Long,
        doc: "Bytes per second of produce requests a user or client may send before it is throttled.",
    },
    KeyDef {
        name: CONSUMER_BYTE_RATE,
        ty: ValueType::Long,
        doc: "Bytes per second of fetch responses a user or client may receive before it is throttled.",
    },
    KeyDef {
        name: REQUEST_PERCENTAGE,
        ty: ValueType::Double,
        doc: "Percentage of one request handler's time a user or client may use, per quota window.",
    },
    KeyDef {
        name: CONTROLLER_MUTATION_RATE,
        ty: ValueType::Double,
        doc: "Partitions per second a user or client may create or delete (stored; not enforced).",
    },
];

pub const IP_KEYS: &[KeyDef] = &[KeyDef {
    name: CONNECTION_CREATION_RATE,
    ty: ValueType::Int,
    doc: "Connections per second an IP address may open; more are closed after a wait.",
}];

/// Kafka's check of one quota value against the entity's keys.
pub fn validate(keys: &[KeyDef], key: &str, value: f64) -> Result<(), QuotaError> {
    let Some(def) = keys.iter().find(|d| d.name == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    // NaN would pass Kafka's `value <= 0` check; an infinite or NaN quota is never meant.
    if !value.is_finite() {
        return Err(invalid(format!("Quota {key} must be a finite number")));
    }
    if value <= 0.0 {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let integral = |max: f64, what: &str| {
        if value > max {
            return Err(invalid(format!(
                "Proposed value for {key} is too large for {what}."
            )));
        }
        if (value % 1.0).abs() > 1e-6 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
        Ok(())
    };
    match def.ty {
        ValueType::Double => Ok(()),
        ValueType::Int => integral(i32::MAX as f64, "an INT"),
        ValueType::Long => integral(i64::MAX as f64, "a LONG"),
    }
}

/// An entity's quotas, by key.
pub type Values = BTreeMap<String, f64>;

/// One change to a key: `Some(value)` sets it, `None` removes it.
pub type Op = (String, Option<f64>);

/// DescribeClientQuotas' match types.
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_SPECIFIED: i8 = 2;

/// One component of a DescribeClientQuotas filter.
#[derive(Clone, Debug)]
pub struct Component {
    pub entity_type: String,
    pub match_type: i8,
    pub value: Option<String>,
}

/// Every quota the broker holds, by entity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quotas {
    entries: BTreeMap<Entity, BTreeMap<String, f64>>,
}

impl Quotas {
    pub fn entries(&self) -> impl Iterator<Item = (&Entity, &BTreeMap<String, f64>)> {
        self.entries.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, entity: &Entity) -> Option<&BTreeMap<String, f64>> {
        self.entries.get(entity)
    }

    /// Inserts checked values (loading a file): every key must suit the entity.
    pub fn insert(
        &mut self,
        entity: Entity,
        values: BTreeMap<String, f64>,
    ) -> Result<(), QuotaError> {
        for (k, v) in &values {
            validate(entity.keys(), k, *v)?;
        }
        if !values.is_empty() {
            self.entries.insert(entity, values);
        }
        Ok(())
    }

    /// Applies AlterClientQuotas' entries in order, each on its own: a refused entry changes
    /// nothing, the others still apply (as Kafka's controller does). Returns one result per
    /// entry and whether anything changed.
    pub fn alter(
        &mut self,
        alterations: Vec<(Result<Entity, QuotaError>, Vec<Op>)>,
    ) -> (Vec<Result<(), QuotaError>>, bool) {
        let mut results = Vec::with_capacity(alterations.len());
        let mut seen = std::collections::BTreeSet::new();
        let mut changed = false;
        for (entity, ops) in alterations {
            let entity = match entity {
                Ok(e) => e,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            if !seen.insert(entity.clone()) {
                results.push(Err(invalid(format!("Ignoring duplicate entity {entity}"))));
                continue;
            }
            results.push(self.alter_one(&entity, ops, &mut changed));
        }
        (results, changed)
    }

    fn alter_one(
        &mut self,
        entity: &Entity,
        ops: Vec<Op>,
        changed: &mut bool,
    ) -> Result<(), QuotaError> {
        let mut wanted: BTreeMap<String, Option<f64>> = BTreeMap::new();
        for (key, value) in ops {
            if wanted.contains_key(&key) {
                return Err(invalid(format!(
                    "Duplicate quota key {key} not updating quota for this entity {entity}"
                )));
            }
            if let Some(v) = value {
                validate(entity.keys(), &key, v)?;
            }
            wanted.insert(key, value);
        }
        let mut values = self.entries.get(entity).cloned().unwrap_or_default();
        for (key, value) in wanted {
            match value {
                Some(v) => {
                    if values.insert(key, v) != Some(v) {
                        *changed = true;
                    }
                }
                None => {
                    if values.remove(&key).is_some() {
                        *changed = true;
                    }
                }
            }
        }
        if values.is_empty() {
            self.entries.remove(entity);
        } else {
            self.entries.insert(entity.clone(), values);
        }
        Ok(())
    }

    /// DescribeClientQuotas: the entities the filter matches. Without `strict`, an entity may
    /// have types the filter does not name; with it, exactly the named types.
    pub fn describe(
        &self,
        filter: &[Component],
        strict: bool,
    ) -> Result<Vec<(&Entity, &Values)>, QuotaError> {
        let mut exact: BTreeMap<EntityType, Option<&str>> = BTreeMap::new();
        let mut specified = std::collections::BTreeSet::new();
        for c in filter {
            if c.entity_type.is_empty() {
                return Err(invalid("Invalid empty entity type."));
            }
            let Some(t) = EntityType::parse(&c.entity_type) else {
                return Err(QuotaError::UnsupportedEntityType(format!(
                    "Unsupported entity type {}",
                    c.entity_type
                )));
            };
            if exact.contains_key(&t) || specified.contains(&t) {
                return Err(invalid(format!(
                    "Entity type {} cannot appear more than once in the filter.",
                    c.entity_type
                )));
            }
            match (c.match_type, c.value.as_deref()) {
                (MATCH_EXACT, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                    ))
                }
                (MATCH_EXACT, Some(v)) => {
                    exact.insert(t, Some(v));
                }
                (MATCH_DEFAULT, None) => {
                    exact.insert(t, None);
                }
                (MATCH_DEFAULT, Some(_)) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                    ))
                }
                (MATCH_SPECIFIED, None) => {
                    specified.insert(t);
                }
                (MATCH_SPECIFIED, Some(_)) => return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                )),
                (m, _) => return Err(invalid(format!("Unknown match type {m}"))),
            }
        }
        let named = |t: EntityType| exact.contains_key(&t) || specified.contains(&t);
        if named(EntityType::Ip) && (named(EntityType::User) || named(EntityType::ClientId)) {
            return Err(invalid(
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
            ));
        }
        Ok(self
            .entries
            .iter()
            .filter(|(e, _)| {
                (!strict || e.0.len() == exact.len() + specified.len())
                    && exact.iter().all(|(t, v)| e.get(*t) == Some(*v))
                    && specified.iter().all(|t| e.0.contains_key(t))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(parts: &[(&str, Option<&str>)]) -> Entity {
        Entity::new(parts.iter().copied()).unwrap()
    }

    #[test]
    fn entities_are_checked_as_kafka_checks_them() {
        let e =
            |p: &[(&str, Option<&str>)]| Entity::new(p.iter().copied()).unwrap_err().to_string();
        assert_eq!(e(&[]), "Invalid empty client quota entity");
        assert_eq!(
            e(&[("group", Some("g"))]),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            e(&[("user", Some("a")), ("user", Some("b"))]),
            "Invalid client quota entity, duplicate entity entry user"
        );
        assert_eq!(e(&[("user", Some(""))]), "Empty user not supported");
        assert!(e(&[("ip", Some("1.2.3.4")), ("user", None)]).contains("IP entity"));
        assert_eq!(
            e(&[("ip", Some("not-an-ip"))]),
            "not-an-ip is not a valid IP or resolvable host."
        );
        assert!(Entity::new([("ip", None)]).is_ok());
    }

    #[test]
    fn values_are_typed_by_key() {
        let k = USER_CLIENT_KEYS;
        assert!(validate(k, PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert_eq!(
            validate(k, PRODUCER_BYTE_RATE, 10.5)
                .unwrap_err()
                .to_string(),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            validate(k, PRODUCER_BYTE_RATE, 0.0)
                .unwrap_err()
                .to_string(),
            "Quota producer_byte_rate must be greater than 0"
        );
        assert!(validate(k, REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(validate(k, REQUEST_PERCENTAGE, f64::NAN).is_err());
        assert_eq!(
            validate(k, CONNECTION_CREATION_RATE, 5.0)
                .unwrap_err()
                .to_string(),
            "Invalid configuration key connection_creation_rate"
        );
        assert!(validate(IP_KEYS, CONNECTION_CREATION_RATE, 3e9).is_err());
    }

    #[test]
    fn alter_applies_each_entry_on_its_own() {
        let mut q = Quotas::default();
        let a = ent(&[("user", Some("alice"))]);
        let (res, changed) = q.alter(vec![
            (
                Ok(a.clone()),
                vec![(PRODUCER_BYTE_RATE.into(), Some(100.0))],
            ),
            (
                Ok(ent(&[("client-id", None)])),
                vec![("bogus".into(), Some(1.0))],
            ),
            (Ok(a.clone()), vec![(CONSUMER_BYTE_RATE.into(), Some(5.0))]),
        ]);
        assert!(changed);
        assert!(res[0].is_ok());
        assert!(res[1].is_err());
        assert_eq!(
            res[2].as_ref().unwrap_err().to_string(),
            "Ignoring duplicate entity user=alice"
        );
        assert_eq!(q.get(&a).unwrap().len(), 1);
        // Removing the last key removes the entity.
        let (res, changed) = q.alter(vec![(
            Ok(a.clone()),
            vec![(PRODUCER_BYTE_RATE.into(), None)],
        )]);
        assert!(res[0].is_ok() && changed);
        assert!(q.is_empty());
    }

    #[test]
    fn describe_filters_by_exact_default_and_specified() {
        let mut q = Quotas::default();
        for e in [
            ent(&[("user", Some("alice"))]),
            ent(&[("user", None)]),
            ent(&[("user", Some("alice")), ("client-id", Some("app"))]),
            ent(&[("client-id", None)]),
        ] {
            q.alter(vec![(Ok(e), vec![(PRODUCER_BYTE_RATE.into(), Some(1.0))])]);
        }
        let c = |t: &str, m: i8, v: Option<&str>| Component {
            entity_type: t.into(),
            match_type: m,
            value: v.map(Into::into),
        };
        let n = |f: &[Component], strict| q.describe(f, strict).unwrap().len();
        assert_eq!(n(&[], false), 4);
        assert_eq!(n(&[c("user", MATCH_EXACT, Some("alice"))], false), 2);
        assert_eq!(n(&[c("user", MATCH_EXACT, Some("alice"))], true), 1);
        assert_eq!(n(&[c("user", MATCH_DEFAULT, None)], false), 1);
        assert_eq!(n(&[c("user", MATCH_SPECIFIED, None)], false), 3);
        assert_eq!(n(&[c("client-id", MATCH_SPECIFIED, None)], true), 1);
        assert!(matches!(
            q.describe(&[c("group", MATCH_SPECIFIED, None)], false),
            Err(QuotaError::UnsupportedEntityType(_))
        ));
        assert!(q.describe(&[c("user", MATCH_EXACT, None)], false).is_err());
        assert!(q.describe(&[c("user", 7, None)], false).is_err());
        assert!(q
            .describe(
                &[
                    c("ip", MATCH_SPECIFIED, None),
                    c("user", MATCH_SPECIFIED, None)
                ],
                false
            )
            .is_err());
    }
}
