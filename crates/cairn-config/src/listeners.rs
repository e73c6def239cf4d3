//! Kafka's listener model: `listeners` names endpoints, `listener.security.protocol.map` gives
//! each name its security protocol, `advertised.listeners` says what clients are told per name,
//! and `listener.name.<name>.<key>` overrides a security setting for one listener.

use std::collections::BTreeMap;

use crate::{parse_listener, BrokerConfig, ConfigError, Listener};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener the broker binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Upper case, as Kafka normalizes listener names.
    pub name: String,
    /// Empty means every interface.
    pub host: String,
    pub port: u16,
    pub protocol: SecurityProtocol,
}

impl ListenerSpec {
    /// The address to bind (IPv6 hosts in brackets).
    pub fn bind_address(&self) -> String {
        let h = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if h.contains(':') {
            format!("[{h}]:{}", self.port)
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(v: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, proto) = item
            .split_once(':')
            .ok_or_else(|| format!("{item:?}: expected NAME:PROTOCOL"))?;
        let proto = SecurityProtocol::parse(proto)
            .ok_or_else(|| format!("{item:?}: unknown security protocol {proto:?}"))?;
        if map
            .insert(name.trim().to_ascii_uppercase(), proto)
            .is_some()
        {
            return Err(format!("listener {name:?} is mapped twice"));
        }
    }
    Ok(map)
}

/// Every entry of a listener list (empty entries dropped, as Kafka's CSV parsing does).
pub fn parse_listener_list(v: &str) -> Result<Vec<Listener>, String> {
    v.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(parse_listener)
        .collect()
}

impl BrokerConfig {
    fn protocol_map(&self) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
        let v = self
            .get("listener.security.protocol.map")
            .unwrap_or_default();
        parse_protocol_map(&v).map_err(|reason| ConfigError::InvalidValue {
            key: "listener.security.protocol.map".into(),
            value: v,
            reason,
        })
    }

    fn resolve(&self, key: &str, value: &str) -> Result<Vec<ListenerSpec>, ConfigError> {
        let bad = |reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let map = self.protocol_map()?;
        let list = parse_listener_list(value).map_err(bad)?;
        if list.is_empty() {
            return Err(bad("no listener given".into()));
        }
        let mut out: Vec<ListenerSpec> = Vec::new();
        for l in list {
            // An unnamed `host:port` (Cairn's simple form) is a PLAINTEXT listener whatever the map says.
            let (name, protocol) = match l.name.as_deref() {
                None => ("PLAINTEXT".to_string(), SecurityProtocol::Plaintext),
                Some(n) => {
                    let name = n.to_ascii_uppercase();
                    let protocol = *map.get(&name).ok_or_else(|| {
                        bad(format!(
                            "no security protocol for listener {name}: add it to listener.security.protocol.map"
                        ))
                    })?;
                    (name, protocol)
                }
            };
            if out.iter().any(|o| o.name == name) {
                return Err(bad(format!("listener {name} is given twice")));
            }
            if l.port != 0 && out.iter().any(|o| o.port == l.port && o.host == l.host) {
                return Err(bad(format!("two listeners use port {}", l.port)));
            }
            out.push(ListenerSpec {
                name,
                host: l.host,
                port: l.port,
                protocol,
            });
        }
        Ok(out)
    }

    /// The listeners to bind: `listen` (the command line's `--listen`, Kafka's form or a bare
    /// `host:port`) when given, else `listeners`, else PLAINTEXT on 127.0.0.1:9092.
    pub fn listeners(&self, listen: Option<&str>) -> Result<Vec<ListenerSpec>, ConfigError> {
        match (listen, self.get("listeners")) {
            (Some(l), _) => self.resolve("--listen", l),
            (None, Some(l)) => self.resolve("listeners", &l),
            (None, None) => self.resolve("listeners", "PLAINTEXT://127.0.0.1:9092"),
        }
    }

    /// `advertised.listeners`, resolved the same way; each name must be one of `listeners`
    /// (checked by the broker against what it binds).
    pub fn advertised_listeners(&self) -> Result<Vec<ListenerSpec>, ConfigError> {
        match self.get("advertised.listeners") {
            Some(v) => self.resolve("advertised.listeners", &v),
            None => Ok(Vec::new()),
        }
    }

    /// A security setting for one listener: `listener.name.<name>.<key>` first, then `<key>`.
    pub fn listener_value(&self, listener: &str, key: &str) -> Option<String> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.listener_overrides
            .get(&prefixed)
            .cloned()
            .or_else(|| self.get(key))
    }

    /// Only the listener's own `listener.name.<name>.<key>`, no global fallback.
    pub fn listener_value_own(&self, listener: &str, key: &str) -> Option<String> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.listener_overrides.get(&prefixed).cloned()
    }

    /// The JAAS text for a SASL mechanism on a listener:
    /// `listener.name.<name>.<mechanism>.sasl.jaas.config`, then `listener.name.<name>.sasl.jaas.config`.
    pub fn jaas_config(&self, listener: &str, mechanism: &str) -> Option<String> {
        let l = listener.to_ascii_lowercase();
        let m = mechanism.to_ascii_lowercase();
        self.listener_overrides
            .get(&format!("listener.name.{l}.{m}.sasl.jaas.config"))
            .or_else(|| {
                self.listener_overrides
                    .get(&format!("listener.name.{l}.sasl.jaas.config"))
            })
            .cloned()
    }
}
