use cairn_auth::plain::{authenticate_plain, MAX_TOKEN_BYTES};
use cairn_auth::{constant_time_eq, parse_jaas_users, parse_plain, PlainError};

#[test]
fn plain_tokens() {
    assert_eq!(
        parse_plain(b"\0alice\0pw").unwrap(),
        ("alice".into(), "pw".into())
    );
    assert_eq!(
        parse_plain(b"alice\0alice\0pw").unwrap(),
        ("alice".into(), "pw".into())
    );
    assert_eq!(
        parse_plain(b"bob\0alice\0pw"),
        Err(PlainError::AuthzidMismatch)
    );
    assert_eq!(parse_plain(b"\0\0pw"), Err(PlainError::NoUser));
    assert_eq!(parse_plain(b"\0alice\0"), Err(PlainError::NoPassword));
    assert_eq!(parse_plain(b"alice\0pw"), Err(PlainError::Tokens(2)));
    assert_eq!(parse_plain(b"\0a\0b\0c"), Err(PlainError::Tokens(4)));
    assert_eq!(parse_plain(b""), Err(PlainError::Tokens(1)));
    assert_eq!(parse_plain(b"\0al\xffice\0pw"), Err(PlainError::NotUtf8));
    let big = vec![b'a'; MAX_TOKEN_BYTES + 1];
    assert_eq!(
        parse_plain(&big),
        Err(PlainError::TooLarge(MAX_TOKEN_BYTES + 1))
    );
    // Kafka's texts.
    assert_eq!(
        PlainError::Tokens(2).to_string(),
        "Invalid SASL/PLAIN response: expected 3 tokens, got 2"
    );
    assert_eq!(
        PlainError::InvalidCredentials.to_string(),
        "Authentication failed: Invalid username or password"
    );
}

#[test]
fn plain_authentication() {
    let users = vec![("alice".to_string(), "pw".to_string())];
    assert_eq!(authenticate_plain(b"\0alice\0pw", &users).unwrap(), "alice");
    assert_eq!(
        authenticate_plain(b"\0alice\0pW", &users),
        Err(PlainError::InvalidCredentials)
    );
    assert_eq!(
        authenticate_plain(b"\0alice\0pww", &users),
        Err(PlainError::InvalidCredentials)
    );
    assert_eq!(
        authenticate_plain(b"\0bob\0pw", &users),
        Err(PlainError::InvalidCredentials)
    );
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"ab", b"abc"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(!constant_time_eq(b"a", b""));
    // Repeating content must not pass for a prefix.
    assert!(!constant_time_eq(b"abab", b"ab"));
}

const PLAIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

#[test]
fn jaas_users() {
    let jaas = format!(
        r#"{PLAIN} required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="al;ice=pw";"#
    );
    assert_eq!(
        parse_jaas_users(&jaas).unwrap(),
        vec![
            ("admin".to_string(), "admin-secret".to_string()),
            ("alice".to_string(), "al;ice=pw".to_string())
        ]
    );
}

#[test]
fn jaas_grammar() {
    // Unquoted values, other flags in any case, single quotes, escapes, comments, line breaks,
    // several modules, a later duplicate winning.
    let jaas = format!(
        "{SCRAM} required;\n{PLAIN} Sufficient\n  user_bob=plainpw // a comment\n  user_carol='it s' /* block\n comment */ user_dave=\"a\\\"b\\\\c\\n\\101\" user_bob=\"second\";"
    );
    assert_eq!(
        parse_jaas_users(&jaas).unwrap(),
        vec![
            ("bob".to_string(), "second".to_string()),
            ("carol".to_string(), "it s".to_string()),
            ("dave".to_string(), "a\"b\\c\nA".to_string()),
        ]
    );
    // StreamTokenizer glues nothing: 'a' 's' is two strings, the second a key without '='.
    assert!(parse_jaas_users(&format!("{PLAIN} required user_x='a' 's';")).is_err());
    // ScramLoginModule alone: no users.
    assert_eq!(
        parse_jaas_users(&format!("{SCRAM} required username=\"u\" password=\"p\";")).unwrap(),
        vec![]
    );
    for flag in ["requisite", "OPTIONAL", "required"] {
        assert!(
            parse_jaas_users(&format!("{PLAIN} {flag} user_a=\"b\";")).is_ok(),
            "{flag}"
        );
    }
}

#[test]
fn jaas_errors_name_the_fault() {
    let cases = [
        (String::new(), "login module not specified"),
        ("   // nothing\n".to_string(), "login module not specified"),
        (PLAIN.to_string(), "control flag not specified"),
        (
            format!("{PLAIN} mandatory user_a=\"b\";"),
            "invalid login module control flag 'mandatory'",
        ),
        (
            format!("{PLAIN} required user_a=\"b\""),
            "not terminated by ';'",
        ),
        (
            format!("{PLAIN} required user_a=;"),
            "value not specified for key 'user_a'",
        ),
        (
            format!("{PLAIN} required user_a;"),
            "value not specified for key 'user_a'",
        ),
        (format!("{PLAIN} required =\"b\";"), "option name missing"),
        (
            format!("{PLAIN} required user_a=\"b;"),
            "unterminated quoted value",
        ),
        (
            format!("{PLAIN} required user_a=\"b\nc\";"),
            "line break inside quoted value",
        ),
        (
            format!("{PLAIN} required /* user_a=\"b\";"),
            "unterminated /* comment",
        ),
        (format!("{PLAIN} required user_=\"b\";"), "names no user"),
        (
            "com.example.Custom required;".to_string(),
            "unsupported login module com.example.Custom",
        ),
        (
            "\"quoted.Module\" required;".to_string(),
            "expected a login module class name",
        ),
    ];
    for (jaas, want) in cases {
        let e = parse_jaas_users(&jaas).unwrap_err();
        assert!(e.contains(want), "{jaas:?}: {e}");
    }
    // An error never prints a whole password.
    let e = parse_jaas_users(&format!("{PLAIN} required user_a=\"averylongpassword")).unwrap_err();
    assert!(!e.contains("averylongpassword"), "{e}");
}

#[test]
fn random_input_never_panics() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    const ALPHABET: &[u8] = b"ab_=;\"'\\/* \n\x00\xc3\xa9user_required";
    for _ in 0..5000 {
        let len = (x % 48) as usize;
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(ALPHABET[(x % ALPHABET.len() as u64) as usize]);
        }
        let _ = parse_plain(&bytes);
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse_jaas_users(&format!("{PLAIN} required {s}"));
        let _ = parse_jaas_users(&s);
    }
}
