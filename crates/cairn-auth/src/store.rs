//! ACLs and SCRAM credentials at rest: two JSON files in the data directory, each replaced
//! whole and atomically (a temporary file is written and synced, renamed over the old one, and
//! the directory synced), so a crash leaves either the old or the new list, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use crate::scram::{ScramCredential, ScramMechanism};

pub const ACLS_FILE: &str = "acls.json";
pub const SCRAM_FILE: &str = "scram-credentials.json";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {reason}")]
    Damaged { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the broker keeps about security.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecurityState {
    pub acls: Vec<AclBinding>,
    pub scram: BTreeMap<String, Vec<ScramCredential>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    version: u32,
    acls: Vec<AclEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AclEntry {
    resource_type: String,
    name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScramFile {
    version: u32,
    /// user → credentials; salts and keys in base64.
    users: BTreeMap<String, Vec<ScramEntry>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScramEntry {
    mechanism: String,
    iterations: i32,
    salt: String,
    stored_key: String,
    server_key: String,
}

fn damaged(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Damaged {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

fn acl_from(e: AclEntry, path: &Path) -> Result<AclBinding, StoreError> {
    let bad = |what: &str, v: &str| damaged(path, format!("unknown {what} {v:?}"));
    let b = AclBinding {
        resource_type: ResourceType::from_name(&e.resource_type)
            .ok_or_else(|| bad("resource type", &e.resource_type))?,
        pattern: PatternType::from_name(&e.pattern_type)
            .ok_or_else(|| bad("pattern type", &e.pattern_type))?,
        operation: Operation::from_name(&e.operation)
            .ok_or_else(|| bad("operation", &e.operation))?,
        permission: Permission::from_name(&e.permission)
            .ok_or_else(|| bad("permission", &e.permission))?,
        name: e.name,
        principal: e.principal,
        host: e.host,
    };
    b.validate()
        .map_err(|r| damaged(path, format!("invalid ACL: {r}")))?;
    Ok(b)
}

fn scram_from(e: ScramEntry, path: &Path) -> Result<ScramCredential, StoreError> {
    let mechanism = ScramMechanism::from_name(&e.mechanism)
        .ok_or_else(|| damaged(path, format!("unknown SCRAM mechanism {:?}", e.mechanism)))?;
    if e.iterations < mechanism.min_iterations() || e.iterations > ScramMechanism::MAX_ITERATIONS {
        return Err(damaged(
            path,
            format!("iterations {} out of range", e.iterations),
        ));
    }
    let b64 = |what: &str, v: &str| {
        B64.decode(v)
            .map_err(|_| damaged(path, format!("{what} is not base64")))
    };
    let salt = b64("salt", &e.salt)?;
    let stored_key = b64("stored_key", &e.stored_key)?;
    let server_key = b64("server_key", &e.server_key)?;
    if salt.is_empty()
        || stored_key.len() != mechanism.hash_len()
        || server_key.len() != mechanism.hash_len()
    {
        return Err(damaged(
            path,
            format!("{} credential has keys of the wrong size", mechanism.name()),
        ));
    }
    Ok(ScramCredential {
        mechanism,
        salt,
        iterations: e.iterations,
        stored_key,
        server_key,
    })
}

/// Loads both files; missing files are an empty state, a damaged one is an error naming it.
pub fn load(dir: &Path) -> Result<SecurityState, StoreError> {
    let mut state = SecurityState::default();
    let path = dir.join(ACLS_FILE);
    if let Some(bytes) = read(&path)? {
        let f: AclFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(&path, e.to_string()))?;
        if f.version != VERSION {
            return Err(damaged(&path, format!("unknown version {}", f.version)));
        }
        for e in f.acls {
            state.acls.push(acl_from(e, &path)?);
        }
    }
    let path = dir.join(SCRAM_FILE);
    if let Some(bytes) = read(&path)? {
        let f: ScramFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(&path, e.to_string()))?;
        if f.version != VERSION {
            return Err(damaged(&path, format!("unknown version {}", f.version)));
        }
        for (user, entries) in f.users {
            if user.is_empty() {
                return Err(damaged(&path, "empty user name"));
            }
            let mut creds = Vec::new();
            for e in entries {
                let c = scram_from(e, &path)?;
                if creds
                    .iter()
                    .any(|x: &ScramCredential| x.mechanism == c.mechanism)
                {
                    return Err(damaged(
                        &path,
                        format!("user {user:?} has two {} credentials", c.mechanism.name()),
                    ));
                }
                creds.push(c);
            }
            if !creds.is_empty() {
                state.scram.insert(user, creds);
            }
        }
    }
    Ok(state)
}

/// Writes `bytes` to `dir/name` so that a crash leaves the old or the new file whole.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(name);
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

pub fn save_acls(dir: &Path, acls: &[AclBinding]) -> Result<(), StoreError> {
    let f = AclFile {
        version: VERSION,
        acls: acls
            .iter()
            .map(|b| AclEntry {
                resource_type: b.resource_type.name().into(),
                name: b.name.clone(),
                pattern_type: b.pattern.name().into(),
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation.name().into(),
                permission: b.permission.name().into(),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&f).expect("plain data serializes");
    replace(dir, ACLS_FILE, &bytes)
}

pub fn save_scram(
    dir: &Path,
    scram: &BTreeMap<String, Vec<ScramCredential>>,
) -> Result<(), StoreError> {
    let f = ScramFile {
        version: VERSION,
        users: scram
            .iter()
            .map(|(u, creds)| {
                (
                    u.clone(),
                    creds
                        .iter()
                        .map(|c| ScramEntry {
                            mechanism: c.mechanism.name().into(),
                            iterations: c.iterations,
                            salt: B64.encode(&c.salt),
                            stored_key: B64.encode(&c.stored_key),
                            server_key: B64.encode(&c.server_key),
                        })
                        .collect(),
                )
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&f).expect("plain data serializes");
    replace(dir, SCRAM_FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecurityState {
        let mut scram = BTreeMap::new();
        scram.insert(
            "alice".to_string(),
            vec![
                ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt1", 4096),
                ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt2", 8192),
            ],
        );
        SecurityState {
            acls: vec![AclBinding {
                resource_type: ResourceType::Topic,
                name: "orders".into(),
                pattern: PatternType::Prefixed,
                principal: "User:CN=alice,O=cairn".into(),
                host: "*".into(),
                operation: Operation::Read,
                permission: Permission::Allow,
            }],
            scram,
        }
    }

    #[test]
    fn round_trip_and_no_passwords() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), SecurityState::default());
        let s = sample();
        save_acls(dir.path(), &s.acls).unwrap();
        save_scram(dir.path(), &s.scram).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
        let text = fs::read_to_string(dir.path().join(SCRAM_FILE)).unwrap();
        assert!(!text.contains("\"pw\""));
        assert!(!dir.path().join(format!(".{SCRAM_FILE}.tmp")).exists());
    }

    #[test]
    fn damaged_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        save_acls(dir.path(), &s.acls).unwrap();
        save_scram(dir.path(), &s.scram).unwrap();
        let acl_text = fs::read_to_string(dir.path().join(ACLS_FILE)).unwrap();
        let scram_text = fs::read_to_string(dir.path().join(SCRAM_FILE)).unwrap();
        let cases: Vec<(&str, String)> = vec![
            (ACLS_FILE, acl_text[..acl_text.len() / 2].to_string()),
            (ACLS_FILE, acl_text.replace("READ", "READS")),
            (
                ACLS_FILE,
                acl_text.replace("\"version\": 1", "\"version\": 9"),
            ),
            (ACLS_FILE, acl_text.replace("User:CN", "UserCN")),
            (ACLS_FILE, "\u{0}\u{1}".into()),
            (SCRAM_FILE, scram_text.replace("4096", "10")),
            (
                SCRAM_FILE,
                scram_text.replace("SCRAM-SHA-512", "SCRAM-SHA-256"),
            ),
            (SCRAM_FILE, scram_text[..10].to_string()),
            (SCRAM_FILE, scram_text.replace("\"salt\"", "\"sal\"")),
        ];
        for (file, text) in cases {
            let d = tempfile::tempdir().unwrap();
            fs::write(d.path().join(ACLS_FILE), &acl_text).unwrap();
            fs::write(d.path().join(SCRAM_FILE), &scram_text).unwrap();
            fs::write(d.path().join(file), &text).unwrap();
            let e = load(d.path()).unwrap_err().to_string();
            assert!(e.contains(file), "{e}");
        }
    }

    #[test]
    fn a_leftover_temporary_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        save_acls(dir.path(), &s.acls).unwrap();
        fs::write(dir.path().join(format!(".{ACLS_FILE}.tmp")), "garbage").unwrap();
        assert_eq!(load(dir.path()).unwrap().acls, s.acls);
        save_acls(dir.path(), &[]).unwrap();
        assert!(load(dir.path()).unwrap().acls.is_empty());
    }
}
