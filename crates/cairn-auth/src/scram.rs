//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's SCRAM server speaks them:
//! credentials kept as salt, iterations, stored key and server key; the server's two rounds; and
//! a client, for tests and tools.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::plain::constant_time_eq;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    /// Kafka's upper bound on iterations.
    pub const MAX_ITERATIONS: i32 = 16384;

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
    /// The mechanism's code in DescribeUserScramCredentials / AlterUserScramCredentials.
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
    /// Kafka's lower bound on iterations, for both mechanisms.
    pub fn min_iterations(self) -> i32 {
        4096
    }
    /// Bytes of the mechanism's hash (and so of its keys).
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = <Hmac<Sha512>>::new_from_slice(key).expect("HMAC takes any key size");
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

/// SCRAM's Hi(): PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    let rounds = iterations.max(1) as u32;
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, rounds).to_vec()
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, rounds).to_vec()
        }
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // The operating system's generator; without it no credential or nonce is safe to make.
    getrandom::fill(&mut b).expect("the operating system's random source");
    b
}

/// A fresh salt for a new credential.
pub fn random_salt() -> Vec<u8> {
    random_bytes(32)
}

fn random_nonce() -> String {
    B64.encode(random_bytes(24))
}

/// What the broker keeps of a SCRAM password.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From what AlterUserScramCredentials carries: the salt and Hi(password, salt, i).
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

    /// Checks a plain password (HTTP Basic) against the credential.
    pub fn verify_password(&self, password: &str) -> bool {
        let again = Self::from_password(self.mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&again.stored_key, &self.stored_key)
    }
}

/// Why an exchange failed. Unknown users and wrong passwords read the same, so users cannot
/// be told apart from outside.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    Credentials(&'static str),
    #[error("Invalid SCRAM message: {0}")]
    Malformed(String),
    #[error("SCRAM extension {0} is not supported")]
    Extension(String),
    #[error("SCRAM message out of order")]
    OutOfOrder,
}

/// The longest SCRAM message accepted: names, nonces and proofs are short.
pub const MAX_MESSAGE: usize = 4096;

fn malformed(why: &str) -> ScramError {
    ScramError::Malformed(why.to_string())
}

/// `a=b` attributes of a message, in order.
fn attributes(msg: &str) -> Result<Vec<(char, &str)>, ScramError> {
    msg.split(',')
        .map(|a| {
            let mut chars = a.chars();
            let k = chars.next().ok_or_else(|| malformed("empty attribute"))?;
            let rest = chars.as_str();
            let v = rest
                .strip_prefix('=')
                .ok_or_else(|| malformed("attribute without '='"))?;
            if !k.is_ascii_alphabetic() {
                return Err(malformed("bad attribute name"));
            }
            Ok((k, v))
        })
        .collect()
}

/// RFC 5802's saslname: `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest
            .get(i..i + 3)
            .ok_or_else(|| malformed("bad '=' escape in user name"))?;
        match esc {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(malformed("bad '=' escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

fn text(msg: &[u8]) -> Result<&str, ScramError> {
    if msg.len() > MAX_MESSAGE {
        return Err(malformed("message too long"));
    }
    std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))
}

enum ServerStep {
    First,
    Final {
        user: String,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
        credential: ScramCredential,
    },
    Done,
}

/// The server's side of one exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    step: ServerStep,
    server_nonce: Option<String>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            step: ServerStep::First,
            server_nonce: None,
        }
    }

    /// A fixed server nonce, for test vectors.
    #[doc(hidden)]
    pub fn with_nonce(mut self, nonce: &str) -> Self {
        self.server_nonce = Some(nonce.to_string());
        self
    }

    fn invalid(&self) -> ScramError {
        ScramError::Credentials(self.mechanism.name())
    }

    /// client-first → server-first.
    pub fn client_first(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.step, ServerStep::First) {
            return Err(ScramError::OutOfOrder);
        }
        self.step = ServerStep::Done;
        let msg = text(msg)?;
        // gs2-header: a channel-binding flag, an optional authzid, then the bare message.
        let mut parts = msg.splitn(3, ',');
        let cb = parts.next().unwrap_or("");
        let authz = parts.next().ok_or_else(|| malformed("no gs2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| malformed("no client-first-message-bare"))?;
        match cb {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(malformed("channel binding is not supported")),
            _ => return Err(malformed("bad channel binding flag")),
        }
        let authzid = match authz {
            "" => None,
            a => Some(decode_saslname(
                a.strip_prefix("a=")
                    .ok_or_else(|| malformed("bad authzid"))?,
            )?),
        };
        let attrs = attributes(bare)?;
        if attrs.first().map(|a| a.0) == Some('m') {
            return Err(malformed("mandatory extensions are not supported"));
        }
        let (Some(('n', user)), Some(('r', nonce))) =
            (attrs.first().copied(), attrs.get(1).copied())
        else {
            return Err(malformed("expected n=user,r=nonce"));
        };
        for (k, v) in &attrs[2..] {
            // Kafka's extensions; delegation tokens (tokenauth) are not served.
            if *k == 't' && v.eq_ignore_ascii_case("true") {
                return Err(ScramError::Extension("tokenauth".into()));
            }
        }
        let user = decode_saslname(user)?;
        if user.is_empty()
            || nonce.is_empty()
            || !nonce.chars().all(|c| c.is_ascii_graphic() && c != ',')
        {
            return Err(malformed("empty user name or bad nonce"));
        }
        if authzid.as_deref().is_some_and(|a| a != user) {
            return Err(malformed("authorization id differs from the user name"));
        }
        let credential = lookup(&user)
            .filter(|c| {
                c.mechanism == self.mechanism && c.iterations >= self.mechanism.min_iterations()
            })
            .ok_or_else(|| self.invalid())?;
        let server_nonce = self.server_nonce.take().unwrap_or_else(random_nonce);
        let nonce = format!("{nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.step = ServerStep::Final {
            user,
            gs2_header: format!("{cb},{authz},"),
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            credential,
        };
        Ok(server_first.into_bytes())
    }

    /// client-final → (server-final, the authenticated user).
    pub fn client_final(&mut self, msg: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let ServerStep::Final {
            user,
            gs2_header,
            nonce,
            client_first_bare,
            server_first,
            credential,
        } = std::mem::replace(&mut self.step, ServerStep::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let msg = text(msg)?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let attrs = attributes(without_proof)?;
        let (Some(('c', binding)), Some(('r', r))) =
            (attrs.first().copied(), attrs.get(1).copied())
        else {
            return Err(malformed("expected c=...,r=...,p=..."));
        };
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(malformed("channel binding does not match the gs2 header"));
        }
        if r != nonce {
            return Err(malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let m = self.mechanism;
        if proof.len() != m.hash_len() {
            return Err(self.invalid());
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(self.invalid());
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((
            format!("v={}", B64.encode(server_signature)).into_bytes(),
            user,
        ))
    }
}

/// The client's side of one exchange.
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce: random_nonce(),
            client_first_bare: String::new(),
            server_signature: None,
        }
    }

    /// A fixed client nonce, for test vectors.
    #[doc(hidden)]
    pub fn with_nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_string();
        self
    }

    pub fn first(&mut self) -> Vec<u8> {
        self.client_first_bare = format!("n={},r={}", encode_saslname(&self.user), self.nonce);
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// server-first → client-final.
    pub fn fin(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let sf = text(server_first)?;
        let attrs = attributes(sf)?;
        let get = |k: char| attrs.iter().find(|a| a.0 == k).map(|a| a.1);
        let (Some(r), Some(s), Some(i)) = (get('r'), get('s'), get('i')) else {
            return Err(malformed("expected r=,s=,i="));
        };
        if !r.starts_with(&self.nonce) || r.len() == self.nonce.len() {
            return Err(malformed("server nonce does not extend ours"));
        }
        let salt = B64.decode(s).map_err(|_| malformed("salt is not base64"))?;
        let iterations: i32 = i.parse().map_err(|_| malformed("bad iteration count"))?;
        if !(1..=1_000_000).contains(&iterations) {
            return Err(malformed("iteration count out of range"));
        }
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{sf},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server knew the credential too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let sf = text(server_final)?;
        let v = sf
            .strip_prefix("v=")
            .ok_or_else(|| malformed("expected v="))?;
        let got = B64
            .decode(v)
            .map_err(|_| malformed("signature is not base64"))?;
        match &self.server_signature {
            Some(want) if constant_time_eq(want, &got) => Ok(()),
            _ => Err(ScramError::Credentials(self.mechanism.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3.
    #[test]
    fn rfc7677_test_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let mut server =
            ScramServer::new(ScramMechanism::Sha256).with_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let mut client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil")
            .with_nonce("rOprNGfwEbeRWgbNEkqO");
        let first = client.first();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let sf = server
            .client_first(&first, |u| (u == "user").then(|| cred.clone()))
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&sf).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let cf = client.fin(&sf).unwrap();
        assert_eq!(
            std::str::from_utf8(&cf).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let (fin, user) = server.client_final(&cf).unwrap();
        assert_eq!(
            std::str::from_utf8(&fin).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(user, "user");
        client.verify(&fin).unwrap();
    }

    fn exchange(
        m: ScramMechanism,
        stored: &str,
        tried: &str,
        user: &str,
    ) -> Result<String, ScramError> {
        let cred = ScramCredential::from_password(m, stored, &random_salt(), 4096);
        let mut server = ScramServer::new(m);
        let mut client = ScramClient::new(m, user, tried);
        let sf =
            server.client_first(&client.first(), |u| (u == "alice,=x").then(|| cred.clone()))?;
        let cf = client.fin(&sf)?;
        let (fin, user) = server.client_final(&cf)?;
        client.verify(&fin)?;
        Ok(user)
    }

    #[test]
    fn round_trips_and_refusals() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            assert_eq!(exchange(m, "pw", "pw", "alice,=x").unwrap(), "alice,=x");
            let wrong = exchange(m, "pw", "nope", "alice,=x").unwrap_err();
            let unknown = exchange(m, "pw", "pw", "bob").unwrap_err();
            assert_eq!(wrong, unknown, "the same answer for both");
            assert_eq!(wrong, ScramError::Credentials(m.name()));
        }
        let c = ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt", 4096);
        assert!(c.verify_password("pw"));
        assert!(!c.verify_password("pw2"));
        // A credential for the other mechanism is no credential.
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        assert!(s.client_first(b"n,,n=a,r=x", |_| Some(c.clone())).is_err());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let cred = ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"s", 4096);
        for msg in [
            &b""[..],
            b"n",
            b"n,,",
            b"p=tls-unique,,n=a,r=b",
            b"n,,m=ext,n=a,r=b",
            b"n,,n=a,r=b,t=true",
            b"n,,r=b,n=a",
            b"n,,n=a=zz,r=b",
            b"x,,n=a,r=b",
            b"n,a=other,n=a,r=b",
            b"n,,n=,r=b",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            assert!(
                s.client_first(msg, |_| Some(cred.clone())).is_err(),
                "{msg:?}"
            );
        }
        let long = vec![b'a'; MAX_MESSAGE + 1];
        assert!(ScramServer::new(ScramMechanism::Sha256)
            .client_first(&long, |_| Some(cred.clone()))
            .is_err());
        // Steps out of order.
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        assert_eq!(
            s.client_final(b"c=biws,r=x,p=AA=="),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small seeded fuzz loop over both steps.
        let cred = ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"s", 4096);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"n,=ra pcvi0123=2C=3D+/AZbiws\x00\xff";
        for _ in 0..5000 {
            let len = (next() % 64) as usize;
            let msg: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            if s.client_first(&msg, |_| Some(cred.clone())).is_ok() {
                let _ = s.client_final(&msg);
            }
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            let _ = s.client_first(b"n,,n=u,r=abc", |_| Some(cred.clone()));
            let _ = s.client_final(&msg);
        }
    }
}
