//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: credentials
//! derived from a salted password, and one server exchange per authentication.
//!
//! Every message is capped at [`MAX_MESSAGE_BYTES`]: a SCRAM message carries a user name, two
//! nonces, a salt and a proof, so anything larger is an attack or a bug, not a login.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::plain::constant_time_eq;

/// Largest SCRAM message (either direction) accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Kafka's upper bound on iterations (`ScramMechanism.maxIterations`).
pub const MAX_ITERATIONS: i32 = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const MAX_ITERATIONS: i32 = MAX_ITERATIONS;

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The `Mechanism` field of Describe/AlterUserScramCredentials.
    pub fn kafka_code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_code(c: i8) -> Option<Self> {
        match c {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn min_iterations(self) -> i32 {
        4096
    }

    /// Length of the hash, hence of StoredKey, ServerKey, SaltedPassword and the proof.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // new_from_slice accepts keys of any length for HMAC, so it cannot fail.
        match self {
            ScramMechanism::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// What the broker keeps for a SCRAM user: never the password nor the salted password.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// What AlterUserScramCredentials carries: salt + SaltedPassword (Hi(password, salt, i)).
    /// Never keeps the salted password.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let salted = salted_password(mechanism, password, salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Checks a plain password (for HTTP Basic): recompute with the stored salt and iterations,
    /// compare in constant time. A credential that fails [`ScramCredential::validate`] never
    /// verifies (its iteration count could make the check arbitrarily slow).
    pub fn verify_password(&self, password: &str) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let other = Self::from_password(self.mechanism, password, &self.salt, self.iterations);
        // Both compared, so the time does not say which one differed.
        let stored = constant_time_eq(&other.stored_key, &self.stored_key);
        let server = constant_time_eq(&other.server_key, &self.server_key);
        stored & server
    }

    /// The rules a credential must meet to be stored or used: iterations within Kafka's range,
    /// keys as long as the mechanism's hash, a salt present and not absurdly long.
    pub fn validate(&self) -> Result<(), String> {
        let m = self.mechanism;
        if self.iterations < m.min_iterations() || self.iterations > MAX_ITERATIONS {
            return Err(format!(
                "iterations {} outside {}..={} for {}",
                self.iterations,
                m.min_iterations(),
                MAX_ITERATIONS,
                m.name()
            ));
        }
        if self.salt.is_empty() || self.salt.len() > MAX_SALT_BYTES {
            return Err(format!(
                "salt of {} bytes (must be 1..={MAX_SALT_BYTES})",
                self.salt.len()
            ));
        }
        for (what, key) in [
            ("stored key", &self.stored_key),
            ("server key", &self.server_key),
        ] {
            if key.len() != m.hash_len() {
                return Err(format!(
                    "{what} of {} bytes, {} needs {}",
                    key.len(),
                    m.name(),
                    m.hash_len()
                ));
            }
        }
        Ok(())
    }
}

/// Kafka's checks on an AlterUserScramCredentials upsertion (ScramControlManager's
/// validateUpsertion), with its messages for UNACCEPTABLE_CREDENTIAL. Kafka takes any salt;
/// here it must be 1..=[`MAX_SALT_BYTES`] bytes too, so that whatever is accepted is a
/// credential that [`ScramCredential::validate`] (and so loading the file) accepts.
pub fn validate_upsertion(
    mechanism: ScramMechanism,
    user: &str,
    salt: &[u8],
    iterations: i32,
) -> Result<(), String> {
    if user.is_empty() {
        return Err("Username must not be empty".into());
    }
    if iterations < mechanism.min_iterations() {
        return Err("Too few iterations".into());
    }
    if iterations > MAX_ITERATIONS {
        return Err("Too many iterations".into());
    }
    if salt.is_empty() || salt.len() > MAX_SALT_BYTES {
        return Err(format!("Salt must be 1 to {MAX_SALT_BYTES} bytes"));
    }
    Ok(())
}

/// Longest salt accepted from a client or a file; Kafka's own salts are about 26 bytes.
pub const MAX_SALT_BYTES: usize = 1024;

/// Hi(password, salt, i): PBKDF2 with the mechanism's HMAC. The password's UTF-8 bytes are used
/// as they are (Kafka does not apply SASLprep either). Iterations below 1 count as 1 so this
/// never panics; callers check the range first.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    let rounds = iterations.max(1) as u32;
    let mut out = vec![0u8; mechanism.hash_len()];
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, rounds, &mut out)
        }
    }
    out
}

/// A fresh 32-byte salt. Kafka's `ScramFormatter.secureRandomBytes` yields the UTF-8 of a
/// base-36 rendering of 130 random bits (about 26 bytes); 256 random bits are at least as strong.
pub fn random_salt() -> Vec<u8> {
    random_bytes(32)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // The OS random source failing is not something a broker can run without.
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// A nonce: printable, no comma (base64 of 24 random bytes, 192 bits).
fn random_nonce() -> String {
    B64.encode(random_bytes(24))
}

#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// Unknown user or wrong proof: one text for both, so users cannot be enumerated.
    #[error(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {0}"
    )]
    InvalidCredentials(&'static str),
    #[error("Invalid SCRAM message: {0}")]
    Malformed(String),
    #[error("SCRAM message of {0} bytes is larger than the {MAX_MESSAGE_BYTES} bytes allowed")]
    TooLarge(usize),
    #[error("Unsupported SCRAM extension: {0}")]
    UnsupportedExtension(String),
    #[error("Invalid client nonce in the final client message.")]
    NonceMismatch,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthzidMismatch,
    #[error("Channel binding is not supported")]
    ChannelBinding,
    #[error("Unexpected SCRAM message in state {0}")]
    OutOfOrder(&'static str),
    /// Client side: the server's signature does not match (the server does not know the password).
    #[error("Invalid server signature in the final server message")]
    BadServerSignature,
    /// Client side: the server answered `e=...`.
    #[error("SCRAM server error: {0}")]
    ServerError(String),
}

impl ScramError {
    /// The text Kafka sends back in SaslAuthenticate's error message: its SaslServerAuthenticator
    /// replaces every SaslException with the generic invalid-credentials text, and passes only
    /// SaslAuthenticationException messages (here: the authorization id one) through.
    pub fn client_message(&self, mechanism: ScramMechanism) -> String {
        match self {
            ScramError::AuthzidMismatch => self.to_string(),
            _ => ScramError::InvalidCredentials(mechanism.name()).to_string(),
        }
    }
}

fn check_size(msg: &[u8]) -> Result<&str, ScramError> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err(ScramError::TooLarge(msg.len()));
    }
    std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8".into()))
}

fn malformed(what: impl Into<String>) -> ScramError {
    ScramError::Malformed(what.into())
}

/// saslname -> user name: `=2C` is ',', `=3D` is '=', any other '=' is an error (RFC 5802 §5.1).
pub fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad '=' escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("empty user name"));
    }
    Ok(out)
}

/// user name -> saslname.
pub fn encode_saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parsed client-first message.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    authzid: Option<String>,
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

fn parse_client_first(msg: &str) -> Result<ClientFirst<'_>, ScramError> {
    // gs2-header = cbind-flag "," [ "a=" saslname ] ","
    let (flag, after_flag) = msg
        .split_once(',')
        .ok_or_else(|| malformed("missing GS2 header"))?;
    match flag {
        // "y": the client could bind but believes the server cannot; fine without -PLUS.
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(malformed("bad channel binding flag")),
    }
    let (authz, bare) = after_flag
        .split_once(',')
        .ok_or_else(|| malformed("missing GS2 header"))?;
    let authzid = if authz.is_empty() {
        None
    } else if let Some(a) = authz.strip_prefix("a=") {
        Some(decode_saslname(a)?)
    } else {
        return Err(malformed("bad authorization id"));
    };
    let gs2_header = &msg[..msg.len() - bare.len()];
    let mut attrs = bare.split(',');
    let mut first = attrs.next().unwrap_or("");
    if first.starts_with("m=") {
        // RFC 5802: a mandatory extension the server does not know fails the exchange.
        return Err(ScramError::UnsupportedExtension("m".into()));
    }
    let user = first
        .strip_prefix("n=")
        .ok_or_else(|| malformed("missing n="))?;
    let user = decode_saslname(user)?;
    first = attrs.next().unwrap_or("");
    let nonce = first
        .strip_prefix("r=")
        .ok_or_else(|| malformed("missing r="))?;
    if !valid_nonce(nonce) {
        return Err(malformed("bad nonce"));
    }
    // Extensions (Kafka: key=value after the nonce). Only tokenauth means something, and
    // delegation tokens are not supported; others are ignored as Kafka does.
    for ext in attrs {
        let (k, v) = ext
            .split_once('=')
            .ok_or_else(|| malformed("bad extension"))?;
        if k.is_empty() {
            return Err(malformed("bad extension"));
        }
        if k == "tokenauth" && v.eq_ignore_ascii_case("true") {
            return Err(ScramError::UnsupportedExtension("tokenauth".into()));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        bare,
        user,
        nonce,
    })
}

/// Parsed client-final message.
struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    without_proof: &'a str,
    proof: Vec<u8>,
}

fn parse_client_final(msg: &str, hash_len: usize) -> Result<ClientFinal<'_>, ScramError> {
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("missing p="))?;
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed("proof is not base64"))?;
    if proof.len() != hash_len {
        return Err(malformed("proof of the wrong length"));
    }
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed("missing c="))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("missing r="))?;
    // Anything between the nonce and the proof is an extension; it is covered by the proof.
    for ext in attrs {
        if !ext.contains('=') {
            return Err(malformed("bad extension"));
        }
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

enum ServerState {
    ClientFirst,
    ClientFinal(Box<Pending>),
    Done,
}

struct Pending {
    /// For a user that does not exist, a decoy (made-up salt, random keys): the exchange goes
    /// on and fails at the proof after the same work, so neither the first step nor the time
    /// taken reveals which names exist.
    credential: ScramCredential,
    known: bool,
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// One server side exchange (RFC 5802/7677), as Kafka's ScramSaslServer:
/// client-first -> server-first -> client-final -> server-final. Any error ends the exchange:
/// later calls answer [`ScramError::OutOfOrder`].
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ServerState,
    fixed_nonce: Option<String>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            state: ServerState::ClientFirst,
            fixed_nonce: None,
        }
    }

    /// For tests (RFC test vectors): use this server nonce instead of a random one.
    #[doc(hidden)]
    pub fn with_nonce(mechanism: ScramMechanism, server_nonce: &str) -> Self {
        let mut s = Self::new(mechanism);
        s.fixed_nonce = Some(server_nonce.to_owned());
        s
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Parses client-first, looks up the credential with `lookup(username)` and returns
    /// server-first (`r=` client nonce + server nonce, `s=` salt, `i=` iterations).
    pub fn client_first(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ServerState::ClientFirst) {
            self.state = ServerState::Done;
            return Err(ScramError::OutOfOrder(
                "client-final expected or exchange over",
            ));
        }
        self.state = ServerState::Done;
        let text = check_size(msg)?;
        let first = parse_client_first(text)?;
        if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
            return Err(ScramError::AuthzidMismatch);
        }
        let credential =
            lookup(&first.user).filter(|c| c.mechanism == self.mechanism && c.validate().is_ok());
        let known = credential.is_some();
        let credential = credential.unwrap_or_else(|| ScramCredential {
            mechanism: self.mechanism,
            salt: decoy_salt(self.mechanism, &first.user),
            iterations: self.mechanism.min_iterations(),
            stored_key: random_bytes(self.mechanism.hash_len()),
            server_key: random_bytes(self.mechanism.hash_len()),
        });
        let (salt, iterations) = (&credential.salt, credential.iterations);
        let server_nonce = self.fixed_nonce.take().unwrap_or_else(random_nonce);
        let nonce = format!("{}{}", first.nonce, server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        self.state = ServerState::ClientFinal(Box::new(Pending {
            credential,
            known,
            user: first.user,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        }));
        Ok(server_first.into_bytes())
    }

    /// Verifies client-final (`c=` biws or the base64 of the GS2 header, `r=` the full nonce,
    /// `p=` the proof) and returns server-final (`v=` signature) and the authenticated user.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let pending = match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::ClientFinal(p) => p,
            _ => {
                return Err(ScramError::OutOfOrder(
                    "client-first expected or exchange over",
                ))
            }
        };
        let m = self.mechanism;
        let text = check_size(msg)?;
        let fin = parse_client_final(text, m.hash_len())?;
        let cb_ok = fin.channel_binding == B64.encode(pending.gs2_header.as_bytes())
            || fin.channel_binding == "biws";
        if !cb_ok {
            return Err(malformed("channel binding does not match the GS2 header"));
        }
        // Kafka checks only that the client's nonce ends with the one it was sent: librdkafka
        // 2.0 sends the client part twice (its own nonce, then the whole server nonce), and the
        // proof covers the message as sent either way.
        if !fin.nonce.ends_with(pending.nonce.as_str()) {
            return Err(ScramError::NonceMismatch);
        }
        let cred = &pending.credential;
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, fin.without_proof
        );
        let client_signature = m.hmac(&cred.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = fin
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !(constant_time_eq(&m.hash(&client_key), &cred.stored_key) & pending.known) {
            return Err(ScramError::InvalidCredentials(m.name()));
        }
        let server_signature = m.hmac(&cred.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", B64.encode(server_signature));
        Ok((server_final.into_bytes(), pending.user))
    }
}

/// A salt for a user that does not exist: the same for the same name during this process's
/// life (a repeated probe sees a stable salt, as for a real user), unpredictable across names.
fn decoy_salt(mechanism: ScramMechanism, user: &str) -> Vec<u8> {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    let key = KEY.get_or_init(|| random_bytes(32));
    let mut s = ScramMechanism::Sha256.hmac(key, user.as_bytes());
    s.push(mechanism.kafka_code() as u8);
    ScramMechanism::Sha256.hash(&s)
}

enum ClientState {
    Initial,
    SentFirst,
    SentFinal {
        server_key: Vec<u8>,
        auth_message: String,
    },
    Done,
}

/// Client side of the exchange (for tests and tools that need one without a Kafka client).
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    state: ClientState,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        Self::with_nonce(mechanism, user, password, &random_nonce())
    }

    /// For tests (RFC test vectors): a fixed client nonce.
    #[doc(hidden)]
    pub fn with_nonce(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            mechanism,
            user: user.to_owned(),
            password: password.to_owned(),
            nonce: nonce.to_owned(),
            state: ClientState::Initial,
        }
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", encode_saslname(&self.user), self.nonce)
    }

    /// client-first.
    pub fn first(&mut self) -> Vec<u8> {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// server-first -> client-final.
    pub fn fin(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(ScramError::OutOfOrder("client-first not sent"));
        }
        self.state = ClientState::Done;
        let m = self.mechanism;
        let text = check_size(server_first)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let mut attrs = text.split(',');
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed("missing r="))?;
        let salt = attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .ok_or_else(|| malformed("missing s="))?;
        let iterations = attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .ok_or_else(|| malformed("missing i="))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() || !valid_nonce(nonce)
        {
            return Err(ScramError::NonceMismatch);
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| malformed("salt is not base64"))?;
        let iterations: i32 = iterations
            .parse()
            .map_err(|_| malformed("bad iteration count"))?;
        // A hostile server must not make us spin: Kafka's range only.
        if !(m.min_iterations()..=MAX_ITERATIONS).contains(&iterations) {
            return Err(malformed(format!(
                "iteration count {iterations} out of range"
            )));
        }
        let salted = salted_password(m, &self.password, &salt, iterations);
        let cred = ScramCredential::from_salted_password(m, &salt, &salted, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{},{}", self.first_bare(), text, without_proof);
        let client_signature = m.hmac(&cred.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.state = ClientState::SentFinal {
            server_key: cred.server_key,
            auth_message,
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server proves it knows the credential.
    pub fn verify(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let (server_key, auth_message) = match std::mem::replace(&mut self.state, ClientState::Done)
        {
            ClientState::SentFinal {
                server_key,
                auth_message,
            } => (server_key, auth_message),
            _ => return Err(ScramError::OutOfOrder("client-final not sent")),
        };
        let text = check_size(server_final)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let v = text
            .split(',')
            .next()
            .and_then(|a| a.strip_prefix("v="))
            .ok_or_else(|| malformed("missing v="))?;
        let v = B64
            .decode(v)
            .map_err(|_| malformed("signature is not base64"))?;
        let expected = self.mechanism.hmac(&server_key, auth_message.as_bytes());
        if constant_time_eq(&v, &expected) {
            Ok(())
        } else {
            Err(ScramError::BadServerSignature)
        }
    }
}
