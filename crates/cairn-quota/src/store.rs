//! `client-quotas.json` in the broker's data directory: every client quota, replaced atomically
//! (temp file, fsync, rename, fsync of the directory) so a crash leaves the old set or the new.
//! Loading checks every entity and value and refuses a damaged file rather than start with
//! quotas silently missing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Entity, Quotas};

pub const FILE: &str = "client-quotas.json";
const VERSION: u32 = 1;
/// Larger files are refused before parsing.
const MAX_FILE_BYTES: u64 = 16 << 20;

pub use cairn_durable::FileError as StoreError;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    version: u32,
    entries: Vec<StoredEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry {
    /// Entity type → name; a null name is the type's default.
    entity: BTreeMap<String, Option<String>>,
    quotas: BTreeMap<String, f64>,
}

/// The quotas in `dir`, none if the file does not exist.
pub fn load(dir: &Path) -> Result<Quotas, StoreError> {
    let path = dir.join(FILE);
    let Some(bytes) = cairn_durable::read_bounded(&path, MAX_FILE_BYTES)? else {
        return Ok(Quotas::default());
    };
    let file: QuotaFile =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::damaged(&path, e.to_string()))?;
    if file.version != VERSION {
        return Err(StoreError::damaged(
            &path,
            format!(
                "unsupported version {} (this broker reads version {VERSION})",
                file.version
            ),
        ));
    }
    let mut quotas = Quotas::default();
    for entry in file.entries {
        let entity = Entity::new(entry.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref())))
            .map_err(|e| StoreError::damaged(&path, e.to_string()))?;
        if quotas.get(&entity).is_some() {
            return Err(StoreError::damaged(
                &path,
                format!("entity {entity} appears twice"),
            ));
        }
        quotas
            .insert(entity, entry.quotas)
            .map_err(|e| StoreError::damaged(&path, e.to_string()))?;
    }
    Ok(quotas)
}

pub fn save(dir: &Path, quotas: &Quotas) -> Result<(), StoreError> {
    let file = QuotaFile {
        version: VERSION,
        entries: quotas
            .entries()
            .map(|(e, v)| StoredEntry {
                entity: e
                    .parts()
                    .map(|(t, n)| (t.name().to_owned(), n.map(str::to_owned)))
                    .collect(),
                quotas: v.clone(),
            })
            .collect(),
    };
    let target = dir.join(FILE);
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| StoreError::damaged(&target, e.to_string()))?;
    cairn_durable::replace(dir, FILE, &bytes).map_err(StoreError::io(&target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PRODUCER_BYTE_RATE;

    #[test]
    fn saved_quotas_load_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let mut q = Quotas::default();
        let e = Entity::new([("user", Some("alice")), ("client-id", None)]).unwrap();
        q.alter(vec![(
            Ok(e),
            vec![(PRODUCER_BYTE_RATE.into(), Some(1024.0))],
        )]);
        save(dir.path(), &q).unwrap();
        assert_eq!(load(dir.path()).unwrap(), q);
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "{",
            r#"{"version":2,"entries":[]}"#,
            r#"{"version":1,"entries":[{"entity":{"group":"g"},"quotas":{}}]}"#,
            r#"{"version":1,"entries":[{"entity":{"user":"a"},"quotas":{"producer_byte_rate":-1}}]}"#,
            r#"{"version":1,"entries":[{"entity":{"user":"a"},"quotas":{"nope":1}}]}"#,
        ] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            assert!(
                matches!(load(dir.path()), Err(StoreError::Damaged { .. })),
                "{bad}"
            );
        }
    }
}
