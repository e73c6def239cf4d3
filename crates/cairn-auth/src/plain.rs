//! SASL PLAIN (RFC 4616) and the JAAS text Kafka configures its users with.

/// Why a PLAIN token was refused. The messages are Kafka's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    Tokens(usize),
    #[error("Authentication failed: username not specified")]
    NoUser,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthzId,
    #[error("Invalid SASL/PLAIN response: not UTF-8")]
    NotUtf8,
}

/// `[authzid] NUL authcid NUL passwd` → (user, password).
pub fn parse_plain(token: &[u8]) -> Result<(String, String), PlainError> {
    let text = std::str::from_utf8(token).map_err(|_| PlainError::NotUtf8)?;
    let parts: Vec<&str> = text.split('\0').collect();
    if parts.len() != 3 {
        return Err(PlainError::Tokens(parts.len()));
    }
    let (authz, user, password) = (parts[0], parts[1], parts[2]);
    if user.is_empty() {
        return Err(PlainError::NoUser);
    }
    if password.is_empty() {
        return Err(PlainError::NoPassword);
    }
    if !authz.is_empty() && authz != user {
        return Err(PlainError::AuthzId);
    }
    Ok((user.to_string(), password.to_string()))
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const FLAGS: &[&str] = &["required", "requisite", "sufficient", "optional"];

/// The `user_NAME="PASSWORD"` options of a JAAS value
/// (`<LoginModule> <flag> key=value ... ;`, one or more modules), as Kafka's PLAIN server reads
/// them. `username`/`password` are the broker's own client identity and are not users.
pub fn parse_jaas_users(jaas: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = Jaas {
        s: jaas.as_bytes(),
        i: 0,
    };
    let mut users = Vec::new();
    let mut modules = 0;
    loop {
        p.skip_ws();
        if p.i >= p.s.len() {
            break;
        }
        let module = p.word().ok_or("expected a login module class name")?;
        let flag = p
            .word()
            .ok_or_else(|| format!("{module}: expected a control flag"))?;
        if !FLAGS.contains(&flag.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{module}: control flag {flag:?} is not one of required, requisite, sufficient, optional"
            ));
        }
        if module != PLAIN_MODULE && module != SCRAM_MODULE {
            return Err(format!(
                "login module {module} is not supported (PlainLoginModule or ScramLoginModule)"
            ));
        }
        loop {
            p.skip_ws();
            match p.peek() {
                Some(b';') => {
                    p.i += 1;
                    break;
                }
                None => return Err(format!("{module}: missing ';' at the end")),
                _ => {}
            }
            let key = p
                .word()
                .ok_or_else(|| format!("{module}: expected an option name"))?;
            p.skip_ws();
            if p.peek() != Some(b'=') {
                return Err(format!("{module}: option {key} has no '=' value"));
            }
            p.i += 1;
            p.skip_ws();
            let value = p
                .value()
                .map_err(|e| format!("{module}: option {key}: {e}"))?;
            if module == PLAIN_MODULE {
                if let Some(user) = key.strip_prefix("user_") {
                    if user.is_empty() {
                        return Err(format!("{module}: option user_ needs a user name"));
                    }
                    users.push((user.to_string(), value));
                }
            }
        }
        modules += 1;
    }
    if modules == 0 {
        return Err("no login module given".into());
    }
    Ok(users)
}

struct Jaas<'a> {
    s: &'a [u8],
    i: usize,
}

impl Jaas<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    /// A bare token: letters, digits and `._-$`.
    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"._-$".contains(&c))
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    /// A quoted value (`\` escapes the next character) or a bare token.
    fn value(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return self.word().ok_or_else(|| "expected a value".to_string());
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted value".into()),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or("unterminated escape")?;
                    out.push(c);
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "value is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens() {
        assert_eq!(
            parse_plain(b"\0alice\0secret"),
            Ok(("alice".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0secret"),
            Ok(("alice".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"bob\0alice\0secret"), Err(PlainError::AuthzId));
        assert_eq!(parse_plain(b"\0\0secret"), Err(PlainError::NoUser));
        assert_eq!(parse_plain(b"\0alice\0"), Err(PlainError::NoPassword));
        assert_eq!(parse_plain(b"alice"), Err(PlainError::Tokens(1)));
        assert_eq!(parse_plain(b"\0a\0b\0c"), Err(PlainError::Tokens(4)));
        assert_eq!(parse_plain(b"\0a\0\xff"), Err(PlainError::NotUtf8));
    }

    #[test]
    fn jaas_users() {
        let j = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
            username="admin" password="admin-secret"
            user_admin="admin-secret" user_alice="al\"ice" user_bob=bare;"#;
        assert_eq!(
            parse_jaas_users(j).unwrap(),
            vec![
                ("admin".to_string(), "admin-secret".to_string()),
                ("alice".to_string(), "al\"ice".to_string()),
                ("bob".to_string(), "bare".to_string()),
            ]
        );
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        assert_eq!(parse_jaas_users(scram).unwrap(), vec![]);
        for bad in [
            "",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"x\"",
            "org.apache.kafka.common.security.plain.PlainLoginModule always;",
            "com.example.Other required;",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"x;",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a;",
        ] {
            assert!(parse_jaas_users(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
