//! The client side of SASL PLAIN (RFC 4616) and SCRAM (RFC 5802, with the
//! hashes of RFC 7677), as Kafka uses them: tokens carried in
//! SaslAuthenticate requests after a SaslHandshake v1.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::security::SaslMechanism;

/// Kafka's SCRAM refuses fewer iterations than this (and so does its client).
pub const SCRAM_MIN_ITERATIONS: u32 = 4096;
/// Kafka's upper bound for SCRAM iterations.
pub const SCRAM_MAX_ITERATIONS: u32 = 16384;

/// The single PLAIN message: no authorization id, the user, the password.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + password.len());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// SCRAM's hash choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn of(mechanism: SaslMechanism) -> Option<ScramHash> {
        match mechanism {
            SaslMechanism::ScramSha256 => Some(ScramHash::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramHash::Sha512),
            SaslMechanism::Plain => None,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// SCRAM's Hi(): PBKDF2 with this hash's HMAC, one block long.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A fresh random client nonce, printable and free of commas.
pub fn random_nonce() -> String {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).expect("the system's random source works");
    B64.encode(raw)
}

/// Random bytes for a new SCRAM credential's salt.
pub fn random_salt() -> Vec<u8> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the system's random source works");
    raw.to_vec()
}

/// `=` and `,` are escaped in SCRAM user names.
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// A SCRAM exchange as the client sees it: [`Self::client_first`], then
/// [`Self::client_final`] with the server's first message, then
/// [`Self::verify_server_final`].
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Self {
        Self::with_nonce(hash, username, password, random_nonce())
    }

    /// With a chosen nonce, for tests against published exchanges.
    pub fn with_nonce(hash: ScramHash, username: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", escape_name(username)),
            nonce,
            server_signature: None,
        }
    }

    /// `n,,n=user,r=nonce`: no channel binding, no authorization id.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answers the server's first message with the proof.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("e", v)) => return Err(format!("the broker refused: {v}")),
                Some(("m", _)) => return Err("the broker asks for an unknown extension".into()),
                _ => {}
            }
        }
        let nonce = nonce.ok_or("the broker's first SCRAM message has no nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the broker's SCRAM nonce does not extend ours".into());
        }
        let salt = B64
            .decode(salt.ok_or("the broker's first SCRAM message has no salt")?)
            .map_err(|e| format!("bad SCRAM salt: {e}"))?;
        let iterations: u32 = iterations
            .ok_or("the broker's first SCRAM message has no iteration count")?
            .parse()
            .map_err(|_| "bad SCRAM iteration count".to_string())?;
        if iterations < SCRAM_MIN_ITERATIONS {
            return Err(format!(
                "the broker asks for {iterations} SCRAM iterations, fewer than the minimum {SCRAM_MIN_ITERATIONS}"
            ));
        }
        let h = self.hash;
        let salted = h.salted_password(&self.password, &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        // "biws" is base64 of "n,,": the GS2 header of the first message.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks that the server knew the credential too.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        let expected = self
            .server_signature
            .as_ref()
            .ok_or("client_final was not called")?;
        for attr in server_final.split(',') {
            match attr.split_once('=') {
                Some(("e", v)) => return Err(format!("the broker refused: {v}")),
                Some(("v", v)) => {
                    let got = B64
                        .decode(v)
                        .map_err(|e| format!("bad server signature: {e}"))?;
                    return if &got == expected {
                        Ok(())
                    } else {
                        Err("the broker's SCRAM signature is wrong: it does not know this credential".into())
                    };
                }
                _ => {}
            }
        }
        Err("the broker's final SCRAM message has no signature".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_token_layout() {
        assert_eq!(plain_token("alice", "pw"), b"\0alice\0pw");
    }

    /// The SCRAM-SHA-256 exchange of RFC 7677, section 3.
    #[test]
    fn rfc7677_sha256_exchange() {
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
        assert!(c.verify_server_final("e=invalid-proof").is_err());
    }

    #[test]
    fn sha512_round_trip_against_a_server_computation() {
        // The server side, written out from RFC 5802's definitions.
        let h = ScramHash::Sha512;
        let salt = b"0123456789abcdef";
        let mut c = ScramClient::with_nonce(h, "a=b,c", "pw", "abc".into());
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=abc");
        let server_first = format!("r=abcXYZ,s={},i=4096", B64.encode(salt));
        let client_final = c.client_final(&server_first).unwrap();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let salted = h.salted_password("pw", salt, 4096);
        let stored_key = h.hash(&h.hmac(&salted, b"Client Key"));
        let auth = format!("n=a=3Db=2Cc,r=abc,{server_first},{without_proof}");
        let sig = h.hmac(&stored_key, auth.as_bytes());
        let client_key: Vec<u8> = B64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&sig)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(h.hash(&client_key), stored_key);
        let server_sig = h.hmac(&h.hmac(&salted, b"Server Key"), auth.as_bytes());
        c.verify_server_final(&format!("v={}", B64.encode(server_sig)))
            .unwrap();
    }

    #[test]
    fn bad_server_first_messages() {
        let mut c = ScramClient::with_nonce(ScramHash::Sha256, "u", "p", "abc".into());
        assert!(c.client_final("r=zzz,s=AAAA,i=4096").is_err());
        assert!(c.client_final("r=abc,s=AAAA,i=4096").is_err());
        assert!(c.client_final("r=abcd,s=AAAA,i=10").is_err());
        assert!(c.client_final("r=abcd,i=4096").is_err());
        assert!(c.client_final("e=unknown-user").is_err());
        assert!(c.client_final("r=abcd,s=AAAA,i=4096").is_ok());
    }
}
