//! Durable security state in the broker's data directory: `acls.json` and
//! `scram-credentials.json`. Each is replaced atomically (temp file in the same directory,
//! fsync, rename over, fsync the directory), so a crash leaves the old file or the new one,
//! never a mix; a temp file left by a crash is never read and is overwritten by the next save.
//! Loading checks every value and refuses a damaged file rather than run with fewer ACLs.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::acl::AclBinding;
use crate::scram::{ScramCredential, ScramMechanism};

pub const ACLS_FILE: &str = "acls.json";
pub const SCRAM_FILE: &str = "scram-credentials.json";
const VERSION: u32 = 1;
/// Larger files are refused before parsing (about 300,000 ACLs): a hostile or corrupted file
/// must not make the broker allocate without bound.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

pub use cairn_durable::FileError as StoreError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityState {
    pub acls: Vec<AclBinding>,
    pub scram: BTreeMap<String, Vec<ScramCredential>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AclsFile {
    version: u32,
    acls: Vec<AclBinding>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScramFile {
    version: u32,
    users: BTreeMap<String, Vec<StoredCredential>>,
}

/// A credential as written: salt and keys in base64.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCredential {
    mechanism: ScramMechanism,
    salt: String,
    iterations: i32,
    stored_key: String,
    server_key: String,
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    StoreError::io(file)
}

fn damaged(file: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::damaged(file, reason)
}

/// The file's bytes, None if it does not exist.
fn read_bounded(file: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    cairn_durable::read_bounded(file, MAX_FILE_BYTES)
}

fn check_version(file: &Path, v: u32) -> Result<(), StoreError> {
    if v != VERSION {
        return Err(damaged(
            file,
            format!("unsupported version {v} (this broker reads version {VERSION})"),
        ));
    }
    Ok(())
}

fn load_acls(dir: &Path) -> Result<Vec<AclBinding>, StoreError> {
    let file = dir.join(ACLS_FILE);
    let Some(bytes) = read_bounded(&file)? else {
        return Ok(Vec::new());
    };
    let parsed: AclsFile =
        serde_json::from_slice(&bytes).map_err(|e| damaged(&file, e.to_string()))?;
    check_version(&file, parsed.version)?;
    for (i, a) in parsed.acls.iter().enumerate() {
        a.validate()
            .map_err(|e| damaged(&file, format!("ACL #{i} {a}: {e}")))?;
    }
    Ok(parsed.acls)
}

fn load_scram(dir: &Path) -> Result<BTreeMap<String, Vec<ScramCredential>>, StoreError> {
    let file = dir.join(SCRAM_FILE);
    let Some(bytes) = read_bounded(&file)? else {
        return Ok(BTreeMap::new());
    };
    let parsed: ScramFile =
        serde_json::from_slice(&bytes).map_err(|e| damaged(&file, e.to_string()))?;
    check_version(&file, parsed.version)?;
    let mut out = BTreeMap::new();
    for (user, stored) in parsed.users {
        if user.is_empty() {
            return Err(damaged(&file, "a user with an empty name"));
        }
        let mut creds: Vec<ScramCredential> = Vec::with_capacity(stored.len());
        for s in stored {
            let decode = |what: &str, v: &str| {
                B64.decode(v).map_err(|e| {
                    damaged(&file, format!("user {user:?}: {what} is not base64: {e}"))
                })
            };
            let cred = ScramCredential {
                mechanism: s.mechanism,
                salt: decode("salt", &s.salt)?,
                iterations: s.iterations,
                stored_key: decode("stored_key", &s.stored_key)?,
                server_key: decode("server_key", &s.server_key)?,
            };
            cred.validate().map_err(|e| {
                damaged(
                    &file,
                    format!("user {user:?} {}: {e}", cred.mechanism.name()),
                )
            })?;
            if creds.iter().any(|c| c.mechanism == cred.mechanism) {
                return Err(damaged(
                    &file,
                    format!(
                        "user {user:?} has two {} credentials",
                        cred.mechanism.name()
                    ),
                ));
            }
            creds.push(cred);
        }
        if !creds.is_empty() {
            out.insert(user, creds);
        }
    }
    Ok(out)
}

/// Missing files are an empty state; a damaged file is an error naming the file and the fault.
pub fn load(dir: &Path) -> Result<SecurityState, StoreError> {
    Ok(SecurityState {
        acls: load_acls(dir)?,
        scram: load_scram(dir)?,
    })
}

/// Writes `bytes` to `dir/name` so that a crash leaves either the old or the new content.
fn replace_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    cairn_durable::replace(dir, name, bytes).map_err(io_err(&dir.join(name)))
}

pub fn save_acls(dir: &Path, acls: &[AclBinding]) -> Result<(), StoreError> {
    let file = AclsFile {
        version: VERSION,
        acls: acls.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| damaged(&dir.join(ACLS_FILE), e.to_string()))?;
    replace_atomically(dir, ACLS_FILE, &bytes)
}

pub fn save_scram(
    dir: &Path,
    scram: &BTreeMap<String, Vec<ScramCredential>>,
) -> Result<(), StoreError> {
    let users = scram
        .iter()
        .map(|(user, creds)| {
            let stored = creds
                .iter()
                .map(|c| StoredCredential {
                    mechanism: c.mechanism,
                    salt: B64.encode(&c.salt),
                    iterations: c.iterations,
                    stored_key: B64.encode(&c.stored_key),
                    server_key: B64.encode(&c.server_key),
                })
                .collect();
            (user.clone(), stored)
        })
        .collect();
    let file = ScramFile {
        version: VERSION,
        users,
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| damaged(&dir.join(SCRAM_FILE), e.to_string()))?;
    replace_atomically(dir, SCRAM_FILE, &bytes)
}
