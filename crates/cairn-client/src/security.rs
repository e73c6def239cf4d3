//! How a connection secures itself: Kafka's `security.protocol`, TLS settings
//! and SASL credentials, read from a Kafka client properties file with the
//! property names of the Java client and of librdkafka.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Kafka's `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Result<Self, String> {
        // librdkafka accepts lower case; the Java client upper case.
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(format!(
                "security.protocol '{s}' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// The SASL mechanisms this client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(format!(
                "SASL mechanism '{s}' is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }

    /// The name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A SASL user and the mechanism to prove it with.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings, as file locations; [`Security::tls_config`] loads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA certificates to trust; the system's when `None`.
    pub ca_location: Option<PathBuf>,
    /// PEM certificate chain of the client, for brokers that ask for one.
    pub certificate_location: Option<PathBuf>,
    /// PEM private key of the client (may sit in the certificate's file).
    pub key_location: Option<PathBuf>,
    /// Whether the broker's certificate must name the host connected to
    /// (Kafka's `ssl.endpoint.identification.algorithm=https`, the default).
    pub verify_hostname: bool,
}

/// How every connection of a client secures itself. The default is
/// PLAINTEXT: no TLS and no SASL.
#[derive(Clone, Default)]
pub struct Security {
    pub protocol: SecurityProtocol,
    pub tls: TlsSettings,
    pub sasl: Option<SaslCredentials>,
    /// Built once, when the settings are checked, and shared by connections.
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// A properties file or value the client cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Client properties that are understood, or harmless to ignore (they matter
/// to other clients only), so they draw no warning.
const IGNORED_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.truststore.password",
    "ssl.keystore.password",
    "sasl.login.class",
];

impl Security {
    /// PLAINTEXT.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// Reads a Kafka client properties file (the file given to Kafka's tools
    /// as `--command-config`). Returns the settings and the keys that were
    /// not understood, for the caller to warn about.
    pub fn from_properties(path: &Path) -> Result<(Security, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let props = parse_properties(&text);
        Self::from_map(&props).map_err(|e| bad(format!("{}: {e}", path.display())))
    }

    /// Like [`Self::from_properties`], from parsed key/value pairs.
    pub fn from_map(
        props: &BTreeMap<String, String>,
    ) -> Result<(Security, Vec<String>), ConfigError> {
        let mut unknown = Vec::new();
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            Some(p) => SecurityProtocol::parse(p).map_err(bad)?,
            None => SecurityProtocol::Plaintext,
        };

        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let Some(t) = get(key) {
                if !t.eq_ignore_ascii_case("PEM") {
                    return Err(bad(format!(
                        "{key}={t} is not supported; only PEM files are (convert with openssl or keytool)"
                    )));
                }
            }
        }
        for key in [
            "ssl.keystore.key",
            "ssl.keystore.certificate.chain",
            "ssl.truststore.certificates",
        ] {
            if get(key).is_some() {
                return Err(bad(format!(
                    "{key}: inline PEM is not supported here; put it in a file and give its location"
                )));
            }
        }
        if get("ssl.key.password").is_some() {
            return Err(bad(
                "ssl.key.password: encrypted private keys are not supported; give an unencrypted PEM key",
            ));
        }
        let ca_location = get("ssl.ca.location")
            .or_else(|| get("ssl.truststore.location"))
            .map(PathBuf::from);
        let keystore = get("ssl.keystore.location").map(PathBuf::from);
        let certificate_location = get("ssl.certificate.location")
            .map(PathBuf::from)
            .or_else(|| keystore.clone());
        let key_location = get("ssl.key.location").map(PathBuf::from).or(keystore);
        if certificate_location.is_some() != key_location.is_some() {
            return Err(bad(
                "a client certificate needs both ssl.certificate.location and ssl.key.location (or ssl.keystore.location holding both)",
            ));
        }
        // Present but empty means "do not check the name", as in Kafka.
        let verify_hostname = match props.get("ssl.endpoint.identification.algorithm") {
            None => true,
            Some(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("none") => false,
            Some(v) if v.trim().eq_ignore_ascii_case("https") => true,
            Some(v) => {
                return Err(bad(format!(
                    "ssl.endpoint.identification.algorithm '{v}' is not 'https' or empty"
                )))
            }
        };
        let tls = TlsSettings {
            ca_location,
            certificate_location,
            key_location,
            verify_hostname,
        };

        let sasl = if protocol.uses_sasl() {
            Some(sasl_from(props)?)
        } else {
            None
        };

        for key in props.keys() {
            let known = KNOWN_KEYS.contains(&key.as_str()) || IGNORED_KEYS.contains(&key.as_str());
            if !known {
                unknown.push(key.clone());
            }
        }
        let security = Security::new(protocol, tls, sasl)?;
        Ok((security, unknown))
    }

    /// Checks the settings and loads the TLS files now, so that a bad file is
    /// reported before any connection is tried.
    pub fn new(
        protocol: SecurityProtocol,
        tls: TlsSettings,
        sasl: Option<SaslCredentials>,
    ) -> Result<Security, ConfigError> {
        if protocol.uses_sasl() && sasl.is_none() {
            return Err(bad(format!(
                "security.protocol={} needs SASL credentials",
                protocol.name()
            )));
        }
        let tls_config = if protocol.uses_tls() {
            Some(Arc::new(build_tls_config(&tls)?))
        } else {
            None
        };
        Ok(Security {
            protocol,
            tls,
            sasl: if protocol.uses_sasl() { sasl } else { None },
            tls_config,
        })
    }

    /// The TLS configuration, when the protocol uses TLS.
    pub fn tls_config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls_config.as_ref()
    }
}

const KNOWN_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.certificates",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
];

fn sasl_from(props: &BTreeMap<String, String>) -> Result<SaslCredentials, ConfigError> {
    let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    // Kafka's default mechanism is GSSAPI, which this client does not speak.
    let mechanism = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        .ok_or_else(|| {
            bad("sasl.mechanism is not set (Kafka's default, GSSAPI, is not supported); set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        })?;
    let mechanism = SaslMechanism::parse(mechanism).map_err(bad)?;
    let (username, password) = match (get("sasl.username"), get("sasl.jaas.config")) {
        (Some(user), _) => {
            let password = props.get("sasl.password").cloned().unwrap_or_default();
            (user.to_string(), password)
        }
        (None, Some(jaas)) => {
            let login = parse_jaas(jaas).map_err(|e| bad(format!("sasl.jaas.config: {e}")))?;
            let expected = match mechanism {
                SaslMechanism::Plain => "PlainLoginModule",
                _ => "ScramLoginModule",
            };
            if !login.module.ends_with(expected) {
                return Err(bad(format!(
                    "sasl.jaas.config: {} does not go with sasl.mechanism={} (expected ...{expected})",
                    login.module,
                    mechanism.name()
                )));
            }
            let user = login
                .options
                .get("username")
                .ok_or_else(|| bad("sasl.jaas.config has no username=\"...\""))?;
            let password = login
                .options
                .get("password")
                .ok_or_else(|| bad("sasl.jaas.config has no password=\"...\""))?;
            (user.clone(), password.clone())
        }
        (None, None) => {
            return Err(bad(
                "SASL needs sasl.username and sasl.password, or sasl.jaas.config",
            ))
        }
    };
    if username.is_empty() {
        return Err(bad("the SASL username is empty"));
    }
    Ok(SaslCredentials {
        mechanism,
        username,
        password,
    })
}

/// One login module entry of a JAAS configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JaasLogin {
    pub module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// Parses Kafka's `sasl.jaas.config` value: `CLASS FLAG key="value" ...;`.
pub fn parse_jaas(text: &str) -> Result<JaasLogin, String> {
    let mut chars = text.trim().chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    let module = word(&mut chars);
    if module.is_empty() {
        return Err("expected a login module class name".into());
    }
    let flag = word(&mut chars);
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!(
            "expected a control flag (required) after {module}, found '{flag}'"
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        let key = word(&mut chars);
        if key.is_empty() {
            match chars.next() {
                Some(';') => break,
                None => return Err("missing the closing ';'".into()),
                Some(c) => return Err(format!("unexpected '{c}'")),
            }
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after {key}"));
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of {key}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => v.push(c),
                        None => return Err(format!("unterminated quoted value of {key}")),
                    },
                    Some(c) => v.push(c),
                }
            }
            v
        } else {
            let v = word(&mut chars);
            if v.is_empty() {
                return Err(format!("no value for {key}"));
            }
            v
        };
        options.insert(key, value);
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err("only one login module is supported".into());
    }
    Ok(JaasLogin {
        module,
        flag,
        options,
    })
}

/// Parses Java properties text: `key=value`, `key: value` or `key value`,
/// `#`/`!` comments, lines continued with a trailing backslash, and the usual
/// backslash escapes.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with(['#', '!'])) {
            continue;
        }
        logical.push_str(trimmed);
        // An odd number of trailing backslashes continues the line.
        let trailing = logical.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            logical.pop();
            if lines.clone().next().is_some() {
                continue;
            }
        }
        let (key, value) = split_property(&logical);
        out.insert(key, value);
        logical.clear();
    }
    out
}

fn split_property(line: &str) -> (String, String) {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(unescape(n));
                }
            }
            '=' | ':' => break,
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('=') | Some(':')) {
                    chars.next();
                }
                break;
            }
            c => key.push(c),
        }
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                value.push(unescape(n));
            }
        } else {
            value.push(c);
        }
    }
    (key, value)
}

fn unescape(c: char) -> char {
    match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'f' => '\x0c',
        c => c,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Well-known places of the system's CA bundle, for brokers whose
/// certificate comes from a public CA and no `ssl.ca.location` is given.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "{what} {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn build_tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    let ca_file = match &tls.ca_location {
        Some(p) => p.clone(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                SYSTEM_CA_FILES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| {
                bad("no CA certificates: set ssl.ca.location (or ssl.truststore.location) to a PEM file")
            })?,
    };
    for cert in load_certs(&ca_file, "CA file")? {
        roots
            .add(cert)
            .map_err(|e| bad(format!("CA file {}: {e}", ca_file.display())))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| bad(format!("CA file {}: {e}", ca_file.display())))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.verify_hostname {
        webpki
    } else {
        Arc::new(AnyNameVerifier(webpki))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.certificate_location, &tls.key_location) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("client certificate and key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Checks the chain against the trusted CAs but accepts any host name: what
/// Kafka does with an empty `ssl.endpoint.identification.algorithm`.
#[derive(Debug)]
struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_syntax() {
        let text = "# comment\n! also\n\na=1\nb : two words \nc three\n\
                    sasl.jaas.config=org.x.PlainLoginModule required \\\n   username=\"u\" \\\n   password=\"p\";\n\
                    esc\\=aped=x\\ty\nempty=\n";
        let p = parse_properties(text);
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "two words ");
        assert_eq!(p["c"], "three");
        assert_eq!(
            p["sasl.jaas.config"],
            "org.x.PlainLoginModule required username=\"u\" password=\"p\";"
        );
        assert_eq!(p["esc=aped"], "x\ty");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn jaas_plain_and_scram() {
        let l = parse_jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"a \\\"b\\\";c\";",
        )
        .unwrap();
        assert!(l.module.ends_with("PlainLoginModule"));
        assert_eq!(l.flag, "required");
        assert_eq!(l.options["username"], "alice");
        assert_eq!(l.options["password"], "a \"b\";c");
        let l = parse_jaas("x.ScramLoginModule required username=bob password=\"s\" ;").unwrap();
        assert_eq!(l.options["username"], "bob");
        assert!(parse_jaas("x.Plain required username=\"a\"").is_err());
        assert!(parse_jaas("x.Plain username=\"a\";").is_err());
        assert!(parse_jaas("x.Plain required username=\"a;").is_err());
    }

    #[test]
    fn sasl_from_librdkafka_and_java_names() {
        let (s, unknown) = Security::from_map(&map(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.username", "alice"),
            ("sasl.password", "secret"),
            ("linger.ms", "5"),
        ]))
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        let c = s.sasl.unwrap();
        assert_eq!(c.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "secret")
        );
        assert_eq!(unknown, ["linger.ms"]);

        let (s, unknown) = Security::from_map(&map(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bob\" password=\"pw\";",
            ),
        ]))
        .unwrap();
        assert!(unknown.is_empty());
        let c = s.sasl.unwrap();
        assert_eq!(
            (c.mechanism, c.username.as_str()),
            (SaslMechanism::Plain, "bob")
        );
        assert_eq!(c.password, "pw");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = |pairs: &[(&str, &str)]| Security::from_map(&map(pairs)).unwrap_err().0;
        assert!(err(&[("security.protocol", "TLS")]).contains("security.protocol"));
        assert!(err(&[("security.protocol", "SASL_PLAINTEXT")]).contains("sasl.mechanism"));
        assert!(err(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "GSSAPI")
        ])
        .contains("GSSAPI"));
        assert!(err(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN")
        ])
        .contains("sasl.username"));
        assert!(err(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\" password=\"b\";"
            ),
        ])
        .contains("ScramLoginModule"));
        assert!(err(&[("ssl.truststore.type", "JKS")]).contains("PEM"));
        assert!(err(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", "/nonexistent/ca.pem")
        ])
        .contains("/nonexistent/ca.pem"));
        assert!(err(&[("ssl.endpoint.identification.algorithm", "http")])
            .contains("endpoint.identification"));
    }

    #[test]
    fn the_readme_example_parses() {
        let text = "# client.properties. Values: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.\n\
            security.protocol=SASL_PLAINTEXT\n\
            # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.\n\
            sasl.mechanism=SCRAM-SHA-256\n\
            sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    username=\"alice\" password=\"alice-secret\";\n\
            # Or, librdkafka's way: sasl.username=alice and sasl.password=alice-secret.\n";
        let (s, unknown) = Security::from_map(&parse_properties(text)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let c = s.sasl.unwrap();
        assert_eq!(c.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "alice-secret")
        );
        let err = Security::from_map(&map(&[("ssl.keystore.key", "-----BEGIN")])).unwrap_err();
        assert!(err.0.contains("inline PEM"), "{err}");
    }

    #[test]
    fn hostname_verification_follows_kafka() {
        let v = |pairs: &[(&str, &str)]| {
            Security::from_map(&map(pairs))
                .unwrap()
                .0
                .tls
                .verify_hostname
        };
        assert!(v(&[]));
        assert!(v(&[("ssl.endpoint.identification.algorithm", "https")]));
        assert!(!v(&[("ssl.endpoint.identification.algorithm", "")]));
    }
}
