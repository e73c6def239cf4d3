use std::collections::BTreeMap;
use std::fs;

use cairn_auth::store::{ACLS_FILE, MAX_FILE_BYTES, SCRAM_FILE};
use cairn_auth::{
    load, save_acls, save_scram, AclBinding, Operation, PatternType, Permission, ResourceType,
    ScramCredential, ScramMechanism, StoreError,
};

fn sample_acls() -> Vec<AclBinding> {
    vec![
        AclBinding {
            resource_type: ResourceType::Topic,
            name: "orders-".into(),
            pattern: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        },
        AclBinding {
            resource_type: ResourceType::Cluster,
            name: "kafka-cluster".into(),
            pattern: PatternType::Literal,
            principal: "User:*".into(),
            host: "10.0.0.1".into(),
            operation: Operation::IdempotentWrite,
            permission: Permission::Deny,
        },
    ]
}

fn sample_scram() -> BTreeMap<String, Vec<ScramCredential>> {
    let mut m = BTreeMap::new();
    m.insert(
        "alice".to_string(),
        vec![
            ScramCredential::from_password(ScramMechanism::Sha256, "pw1", b"salt-one", 4096),
            ScramCredential::from_password(ScramMechanism::Sha512, "pw1", b"salt-two", 8192),
        ],
    );
    m.insert(
        "b,o=b".to_string(),
        vec![ScramCredential::from_password(
            ScramMechanism::Sha256,
            "pw2",
            b"s",
            4096,
        )],
    );
    m
}

fn damaged_reason(e: StoreError, file: &str) -> String {
    match e {
        StoreError::Damaged { file: f, reason } => {
            assert!(f.ends_with(file), "{f:?}");
            reason
        }
        other => panic!("expected Damaged, got {other}"),
    }
}

#[test]
fn missing_files_are_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = load(dir.path()).unwrap();
    assert!(s.acls.is_empty() && s.scram.is_empty());
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    save_acls(dir.path(), &sample_acls()).unwrap();
    save_scram(dir.path(), &sample_scram()).unwrap();
    let s = load(dir.path()).unwrap();
    assert_eq!(s.acls, sample_acls());
    assert_eq!(s.scram, sample_scram());
    // A loaded credential still verifies its password.
    assert!(s.scram["alice"][1].verify_password("pw1"));
    // Saving again replaces; no temp file stays.
    save_acls(dir.path(), &sample_acls()[..1]).unwrap();
    assert_eq!(load(dir.path()).unwrap().acls, sample_acls()[..1].to_vec());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec![ACLS_FILE.to_string(), SCRAM_FILE.to_string()]);
}

#[test]
fn the_file_holds_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = BTreeMap::new();
    m.insert(
        "alice".to_string(),
        vec![ScramCredential::from_password(
            ScramMechanism::Sha256,
            "hunter2-pass",
            b"salt",
            4096,
        )],
    );
    save_scram(dir.path(), &m).unwrap();
    let text = fs::read_to_string(dir.path().join(SCRAM_FILE)).unwrap();
    assert!(!text.contains("hunter2"));
    assert!(
        text.contains("\"version\": 1") && text.contains("SCRAM-SHA-256"),
        "{text}"
    );
}

/// A crash between writing the temp file and the rename leaves `*.tmp` behind: it is never
/// read (even if garbage), and the next save overwrites it.
#[test]
fn leftover_temp_files_are_ignored_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    save_acls(dir.path(), &sample_acls()).unwrap();
    fs::write(dir.path().join(format!("{ACLS_FILE}.tmp")), b"{ half a fi").unwrap();
    fs::write(dir.path().join(format!("{SCRAM_FILE}.tmp")), b"garbage").unwrap();
    let s = load(dir.path()).unwrap();
    assert_eq!(s.acls, sample_acls());
    save_acls(dir.path(), &[]).unwrap();
    assert!(!dir.path().join(format!("{ACLS_FILE}.tmp")).exists());
    assert!(load(dir.path()).unwrap().acls.is_empty());
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    save_acls(dir.path(), &sample_acls()).unwrap();
    save_scram(dir.path(), &sample_scram()).unwrap();
    for file in [ACLS_FILE, SCRAM_FILE] {
        let path = dir.path().join(file);
        let full = fs::read(&path).unwrap();
        for cut in [0, 1, full.len() / 2, full.len() - 2] {
            fs::write(&path, &full[..cut]).unwrap();
            let reason = damaged_reason(load(dir.path()).unwrap_err(), file);
            assert!(!reason.is_empty());
        }
        fs::write(&path, &full).unwrap();
    }
    assert!(load(dir.path()).is_ok());
}

fn acl_json(fields: &str) -> String {
    format!(r#"{{"version":1,"acls":[{{{fields}}}]}}"#)
}

const GOOD_ACL: &str = r#""resource_type":"TOPIC","name":"t","pattern":"LITERAL","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW""#;

#[test]
fn bad_acl_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ACLS_FILE);
    fs::write(&path, acl_json(GOOD_ACL)).unwrap();
    assert_eq!(load(dir.path()).unwrap().acls.len(), 1);
    let cases = [
        (GOOD_ACL.replace("TOPIC", "ANY"), "unknown variant"),
        (GOOD_ACL.replace("LITERAL", "MATCH"), "unknown variant"),
        (GOOD_ACL.replace("\"READ\"", "\"ANY\""), "unknown variant"),
        (GOOD_ACL.replace("ALLOW", "MAYBE"), "unknown variant"),
        (GOOD_ACL.replace("User:a", "alice"), "no colon"),
        (GOOD_ACL.replace("\"t\"", "\"\""), "empty resource name"),
        (GOOD_ACL.replace("TOPIC", "CLUSTER"), "kafka-cluster"),
        (
            GOOD_ACL.replace(",\"host\":\"*\"", ""),
            "missing field `host`",
        ),
        (format!("{GOOD_ACL},\"extra\":1"), "unknown field"),
    ];
    for (fields, want) in cases {
        fs::write(&path, acl_json(&fields)).unwrap();
        let reason = damaged_reason(load(dir.path()).unwrap_err(), ACLS_FILE);
        assert!(reason.contains(want), "{fields}: {reason}");
    }
    fs::write(&path, r#"{"version":2,"acls":[]}"#).unwrap();
    let reason = damaged_reason(load(dir.path()).unwrap_err(), ACLS_FILE);
    assert!(reason.contains("unsupported version 2"), "{reason}");
}

#[test]
fn bad_credential_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    save_scram(dir.path(), &sample_scram()).unwrap();
    let path = dir.path().join(SCRAM_FILE);
    let good = fs::read_to_string(&path).unwrap();
    let cred = &sample_scram()["alice"][0];
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let stored = b64(&cred.stored_key);
    let cases = [
        (
            good.replacen("\"iterations\": 4096", "\"iterations\": 100", 1),
            "iterations 100",
        ),
        (
            good.replacen("\"iterations\": 4096", "\"iterations\": 99999999", 1),
            "iterations 99999999",
        ),
        (
            good.replacen("\"iterations\": 4096", "\"iterations\": 99999999999", 1),
            "invalid value",
        ),
        (
            good.replacen(&stored, &b64(&cred.stored_key[..31]), 1),
            "stored key of 31 bytes",
        ),
        (good.replacen(&stored, "not base64!", 1), "not base64"),
        (
            good.replacen("SCRAM-SHA-256", "SCRAM-SHA-1", 1),
            "unknown variant",
        ),
        (
            good.replacen("SCRAM-SHA-512", "SCRAM-SHA-256", 1),
            "stored key of 64 bytes",
        ),
        (good.replacen("\"alice\"", "\"\"", 1), "empty name"),
        (good.replacen(&b64(b"salt-one"), "", 1), "salt of 0 bytes"),
    ];
    for (text, want) in cases {
        assert_ne!(text, good, "case for {want} changed nothing");
        fs::write(&path, &text).unwrap();
        let reason = damaged_reason(load(dir.path()).unwrap_err(), SCRAM_FILE);
        assert!(reason.contains(want), "{want}: {reason}");
    }
    // Two credentials of one mechanism for one user.
    let mut twice = BTreeMap::new();
    twice.insert("alice".to_string(), vec![cred.clone(), cred.clone()]);
    save_scram(dir.path(), &twice).unwrap();
    let reason = damaged_reason(load(dir.path()).unwrap_err(), SCRAM_FILE);
    assert!(reason.contains("two SCRAM-SHA-256"), "{reason}");
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ACLS_FILE);
    let f = fs::File::create(&path).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: no real disk use
    let reason = damaged_reason(load(dir.path()).unwrap_err(), ACLS_FILE);
    assert!(reason.contains("larger than"), "{reason}");
}

#[test]
fn unreadable_path_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    fs::create_dir(dir.path().join(SCRAM_FILE)).unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(e.to_string().contains(SCRAM_FILE), "{e}");
    // Saving into a missing directory fails with the temp path named, nothing panics.
    let gone = dir.path().join("missing");
    let e = save_acls(&gone, &sample_acls()).unwrap_err();
    assert!(matches!(e, StoreError::Io { .. }), "{e}");
}
