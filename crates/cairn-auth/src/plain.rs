//! SASL/PLAIN (RFC 4616) as Kafka's PlainSaslServer checks it, and the users of Kafka's JAAS
//! property (`...PlainLoginModule required user_alice="secret";`).

/// Largest PLAIN token accepted: two names and a password.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    Tokens(usize),
    #[error("Invalid SASL/PLAIN response: not UTF-8")]
    NotUtf8,
    #[error("Invalid SASL/PLAIN response: {0} bytes is larger than the {MAX_TOKEN_BYTES} allowed")]
    TooLarge(usize),
    #[error("Authentication failed: username not specified")]
    NoUser,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthzidMismatch,
    /// What the broker answers for an unknown user or a wrong password (Kafka's text).
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
}

/// RFC 4616 token: `[authzid] NUL authcid NUL passwd`. Kafka refuses an authzid that differs
/// from the user, and an empty user or password.
pub fn parse_plain(token: &[u8]) -> Result<(String, String), PlainError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(PlainError::TooLarge(token.len()));
    }
    let text = std::str::from_utf8(token).map_err(|_| PlainError::NotUtf8)?;
    let parts: Vec<&str> = text.split('\0').collect();
    if parts.len() != 3 {
        return Err(PlainError::Tokens(parts.len()));
    }
    let (authzid, user, password) = (parts[0], parts[1], parts[2]);
    if user.is_empty() {
        return Err(PlainError::NoUser);
    }
    if password.is_empty() {
        return Err(PlainError::NoPassword);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthzidMismatch);
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// Checks a PLAIN token against a user list (from [`parse_jaas_users`]) and returns the user.
/// The password is compared in constant time, and an unknown user costs the same comparison.
pub fn authenticate_plain(token: &[u8], users: &[(String, String)]) -> Result<String, PlainError> {
    let (user, password) = parse_plain(token)?;
    let expected = users.iter().find(|(u, _)| *u == user).map(|(_, p)| p);
    let ok = match expected {
        Some(p) => constant_time_eq(p.as_bytes(), password.as_bytes()),
        None => {
            let _ = constant_time_eq(password.as_bytes(), password.as_bytes());
            false
        }
    };
    if ok {
        Ok(user)
    } else {
        Err(PlainError::InvalidCredentials)
    }
}

/// Equal contents, in time that depends only on the lengths (never on where they differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for (i, x) in a.iter().enumerate() {
        let y = if b.is_empty() { 0 } else { b[i % b.len()] };
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Semi,
    Eq,
}

impl Tok {
    fn text(&self) -> Option<&str> {
        match self {
            Tok::Word(s) | Tok::Quoted(s) => Some(s),
            _ => None,
        }
    }
}

/// Splits a JAAS value the way Kafka's JaasConfig sets up Java's StreamTokenizer: bytes up to
/// ' ' are blanks; ';' and '=' stand alone; '"' and '\'' quote (with Java's escapes); '/' starts a
/// comment (`//`, `/* */`, or a lone '/' to the end of the line); everything else forms words.
fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c as u32) <= 0x20 {
            i += 1;
        } else if c == ';' {
            out.push(Tok::Semi);
            i += 1;
        } else if c == '=' {
            out.push(Tok::Eq);
            i += 1;
        } else if c == '/' {
            if chars.get(i + 1) == Some(&'*') {
                let mut j = i + 2;
                loop {
                    if j + 1 >= chars.len() {
                        return Err("unterminated /* comment".into());
                    }
                    if chars[j] == '*' && chars[j + 1] == '/' {
                        break;
                    }
                    j += 1;
                }
                i = j + 2;
            } else {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
        } else if c == '"' || c == '\'' {
            let (value, next) = quoted(&chars, i)?;
            out.push(Tok::Quoted(value));
            i = next;
        } else {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    (c as u32) > 0x20 && !matches!(c, ';' | '=' | '/' | '"' | '\'')
}

/// A quoted string starting at `chars[open]`; returns its value and the index after it.
/// StreamTokenizer's escapes: \a \b \f \n \r \t \v, octal up to \377, and `\x` for any other x.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), String> {
    let q = chars[open];
    let mut value = String::new();
    let mut i = open + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!(
                "unterminated quoted value starting {q}{}",
                prefix(&value)
            ));
        };
        if c == '\n' || c == '\r' {
            return Err(format!(
                "line break inside quoted value {q}{}",
                prefix(&value)
            ));
        }
        if c == q {
            return Ok((value, i + 1));
        }
        if c != '\\' {
            value.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&e) = chars.get(i) else {
            return Err("quoted value ends with a backslash".into());
        };
        i += 1;
        let ch = match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '0'..='7' => {
                let mut n = e as u32 - '0' as u32;
                // Up to three digits when the first is 0-3, two otherwise (as Java).
                let max = if e <= '3' { 2 } else { 1 };
                for _ in 0..max {
                    match chars.get(i) {
                        Some(&d @ '0'..='7') => {
                            n = n * 8 + (d as u32 - '0' as u32);
                            i += 1;
                        }
                        _ => break,
                    }
                }
                char::from_u32(n).unwrap_or('\u{fffd}')
            }
            other => other,
        };
        value.push(ch);
    }
}

/// The first characters of a value, for an error message that does not print a whole password.
fn prefix(v: &str) -> String {
    let p: String = v.chars().take(8).collect();
    if p.len() < v.len() {
        format!("{p}...")
    } else {
        p
    }
}

/// One login module entry: class, control flag, options in order.
struct Entry {
    module: String,
    options: Vec<(String, String)>,
}

fn parse_entries(jaas: &str) -> Result<Vec<Entry>, String> {
    let toks = tokenize(jaas)?;
    let mut it = toks.into_iter().peekable();
    let mut entries = Vec::new();
    while let Some(t) = it.next() {
        let module = match t {
            Tok::Word(w) => w,
            other => {
                return Err(format!(
                    "expected a login module class name, found {other:?}"
                ))
            }
        };
        let flag = it
            .next()
            .and_then(|t| t.text().map(str::to_owned))
            .ok_or_else(|| format!("login module control flag not specified for {module}"))?;
        match flag.to_ascii_uppercase().as_str() {
            "REQUIRED" | "REQUISITE" | "SUFFICIENT" | "OPTIONAL" => {}
            _ => {
                return Err(format!(
                    "invalid login module control flag '{flag}' for {module}"
                ))
            }
        }
        let mut options = Vec::new();
        loop {
            match it.next() {
                None => return Err(format!("JAAS entry for {module} not terminated by ';'")),
                Some(Tok::Semi) => break,
                Some(Tok::Eq) => return Err(format!("option name missing before '=' in {module}")),
                Some(key) => {
                    let key = key.text().unwrap_or_default().to_owned();
                    if it.next() != Some(Tok::Eq) {
                        return Err(format!("value not specified for key '{key}' in {module}"));
                    }
                    match it.next() {
                        Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => options.push((key, v)),
                        _ => {
                            return Err(format!("value not specified for key '{key}' in {module}"))
                        }
                    }
                }
            }
        }
        entries.push(Entry { module, options });
    }
    if entries.is_empty() {
        return Err("login module not specified in JAAS config".into());
    }
    Ok(entries)
}

/// Kafka's JAAS value for PLAIN: returns the `user_NAME="PASSWORD"` pairs (a later duplicate
/// replaces an earlier one, as Kafka's option map does). `username`/`password` are the
/// broker's own client identity and are ignored. ScramLoginModule entries are accepted and add
/// no users; any other module is an error, as is anything Kafka's parser refuses.
pub fn parse_jaas_users(jaas: &str) -> Result<Vec<(String, String)>, String> {
    let mut users: Vec<(String, String)> = Vec::new();
    for entry in parse_entries(jaas)? {
        match entry.module.as_str() {
            PLAIN_MODULE => {}
            SCRAM_MODULE => continue,
            other => {
                return Err(format!(
                    "unsupported login module {other} (expected {PLAIN_MODULE} or {SCRAM_MODULE})"
                ))
            }
        }
        for (key, value) in entry.options {
            let Some(name) = key.strip_prefix("user_") else {
                continue;
            };
            if name.is_empty() {
                return Err("option 'user_' names no user".into());
            }
            match users.iter_mut().find(|(u, _)| u == name) {
                Some(slot) => slot.1 = value,
                None => users.push((name.to_owned(), value)),
            }
        }
    }
    Ok(users)
}
