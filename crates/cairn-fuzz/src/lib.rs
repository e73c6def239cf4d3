//! The fuzz harnesses of Cairn, one function per fuzz target.
//!
//! The fuzzer (the separate `fuzz/` workspace) calls these functions with its inputs, and the
//! replay test (`tests/regressions.rs`) calls them with every input the fuzzer ever saved, so a
//! crash found once stays a test that `cargo test` runs without any fuzzing tool.
//!
//! Linking this crate installs [`alloc::Counting`] as the global allocator: that is how the
//! harnesses check the property the broker promises for hostile input, "decoding never allocates
//! more than a small multiple of the bytes received".

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use bytes::Bytes;
use cairn_log::batch::{self, BatchView, PlainRecord};
use cairn_log::{LogConfig, PartitionLog};
use kafka_protocol::messages::*;

pub mod alloc;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

/// Bytes that decoding one input may hold at once: `K` per input byte plus `C`. Once counts are
/// bounded by the bytes left, the widest decoded form per encoded byte is a flexible-version
/// struct of empty fields: a JoinGroup protocol is 3 bytes on the wire and 88 in memory (two
/// 32-byte byte handles and a tagged-field map), so 16 per byte is too tight and 32 is the
/// smallest power of two above it. 64 KiB covers the fixed first allocations of any decode.
pub const K: usize = 32;
pub const C: usize = 64 * 1024;

/// The default `message.max.bytes`: decompressed bytes up to this much count as received bytes,
/// since the broker's decompression cap is derived from it.
pub const DECOMPRESSED_ALLOWANCE: usize = 1_048_588;

/// The allocation bound for decoding `len` received bytes.
pub fn bound(len: usize) -> usize {
    K * len + C
}

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` the way the broker runs the protocol crate's decoders: a panic is contained and
/// reported as an error, not a crash.
fn contained<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CONTAINED.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(false));
    r.map_err(|_| "panic contained".to_string())
}

/// For the fuzz targets: the fuzzing runtime turns every panic into an abort through its panic
/// hook, which would also fire for the panics the broker contains. This hook aborts only for
/// panics outside [`contained`].
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.with(|c| c.get()) {
            return;
        }
        default(info);
        std::process::abort();
    }));
}

// ---------------------------------------------------------------------------------------------
// request_frame

/// The broker's decode path for one request frame (the bytes after the size prefix): the layout
/// walk, then the protocol crate's decode. Returns the API key of a decoded request.
pub fn decode_request(frame: Bytes) -> Result<ApiKey, String> {
    contained(|| cairn_broker::wire::decode_request(frame))?
        .map(|d| d.key)
        .map_err(|e| format!("{e:#}"))
}

/// Fuzz target `request_frame`: decodes `data` as a request frame, aborting if decoding holds
/// more than [`bound`] bytes at once (stricter than the broker's own limit, which also counts
/// what answering will build).
pub fn request_frame(data: &[u8]) -> alloc::Usage {
    let frame = Bytes::copy_from_slice(data);
    let (_, usage) = alloc::measure(data.len(), bound(data.len()), || {
        // Produce v0-2 never reach the decoder: the broker answers them by hand, outside any
        // panic containment, so a panic here is a crash the fuzzer must report.
        if let Some(&[0, 0, 0, v]) = data.get(..4) {
            if v < 3 {
                drop(cairn_broker::wire::old_produce::refuse(&frame, v as i16, 0));
                return;
            }
        }
        drop(decode_request(frame));
    });
    usage
}

// ---------------------------------------------------------------------------------------------
// record_batch

const LOG_OVERHEAD: usize = 12;

/// Rewrites the CRC of every complete batch in `buf`: random mutations almost never keep a CRC
/// valid, and a fuzzer stopped by the CRC check would never reach decompression and parsing.
pub fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= LOG_OVERHEAD {
        let len = i32::from_be_bytes(buf[pos + 8..pos + 12].try_into().expect("4 bytes"));
        if len < 0 {
            return;
        }
        let end = pos.saturating_add(LOG_OVERHEAD + len as usize);
        if end > buf.len() {
            return;
        }
        match BatchView::new(&mut buf[pos..end]) {
            Ok(mut view) => view.update_crc(),
            Err(_) => return,
        }
        pos = end;
    }
}

/// Validates the records of one produce partition with the log's own check (every batch whole,
/// within `message.max.bytes`, CRC intact, records parsed as a stream under the inflation cap).
pub fn validate_records(buf: &[u8], max_message_bytes: u32) -> Result<(), String> {
    let config = LogConfig {
        max_message_bytes,
        ..LogConfig::default()
    };
    PartitionLog::validate_batches(buf, &config).map_err(|e| e.to_string())
}

/// Reads every record of `buf` the way a log's loader does (the group coordinator replaying
/// its partitions), inflating at most `inflate_limit` bytes per batch. Returns how many records
/// were handed out; checks that each one lies within what was read.
pub fn read_records(buf: &[u8], inflate_limit: usize) -> usize {
    let mut records = 0;
    batch::RecordReader::new(inflate_limit).read(
        buf,
        |r| {
            let field = r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
            assert!(
                field <= inflate_limit.max(buf.len()),
                "record larger than its input"
            );
            records += 1;
            std::ops::ControlFlow::Continue(())
        },
        |_, _| {},
    );
    records
}

/// Fuzz target `record_batch`: `data` as the records of a produce partition (CRCs fixed first),
/// validated, then read record by record as a loader would, under the bound for `data.len()`
/// received bytes plus the decompression allowance.
pub fn record_batch(data: &[u8]) -> alloc::Usage {
    let mut buf = data.to_vec();
    fix_crcs(&mut buf);
    let limit = K * (data.len() + DECOMPRESSED_ALLOWANCE) + C;
    let (_, usage) = alloc::measure(data.len(), limit, || {
        drop(validate_records(&buf, 1_048_588));
        read_records(&buf, DECOMPRESSED_ALLOWANCE);
    });
    usage
}

// ---------------------------------------------------------------------------------------------
// segment_recovery

/// Fuzz target `segment_recovery`: `data[1..]` is written as the first segment of a partition
/// (`data[0]` bit 0: with a clean-shutdown marker), which is then opened, read to its end and
/// appended to. None of it may panic; errors are fine.
pub fn segment_recovery(data: &[u8]) {
    let Some((&flags, segment)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    recover_in(dir.path(), flags, segment);
}

fn recover_in(dir: &Path, flags: u8, segment: &[u8]) {
    std::fs::write(dir.join(format!("{:020}.log", 0)), segment).expect("write segment");
    if flags & 1 != 0 {
        std::fs::write(dir.join("clean_shutdown"), b"").expect("write marker");
    }
    let Ok(log) = PartitionLog::open(dir, LogConfig::default()) else {
        return;
    };
    let mut offset = log.log_start_offset();
    // Each read returns at least one batch, so this ends; the cap keeps a pathological log short.
    for _ in 0..10_000 {
        let Ok(r) = log.read(offset, 1 << 20) else {
            break;
        };
        let Some(next) = batch::batches(&r.data)
            .map_while(Result::ok)
            .map(|b| b.next_offset())
            .last()
        else {
            break;
        };
        if next <= offset {
            break;
        }
        offset = next;
    }
    let record = PlainRecord {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp: 0,
    };
    let _ = log.append(&batch::encode_plain(&[record]), 0);
    let _ = log.close();
}

// ---------------------------------------------------------------------------------------------
// sasl_exchange

/// The one user the SCRAM harness knows; any other name takes the unknown-user path.
const SCRAM_USER: &str = "fuzz";

/// Fuzz target `sasl_exchange`: what a client sends before it has authenticated, through the
/// parsers the broker runs on it. The first byte picks the parser: PLAIN's token, a JAAS value
/// (from the configuration: hostile files too), or SCRAM's two client messages (split at the
/// first NUL) against a known credential. Nothing may panic, and nothing may hold more than
/// [`bound`] bytes at once.
pub fn sasl_exchange(data: &[u8]) -> alloc::Usage {
    let Some((&which, rest)) = data.split_first() else {
        return alloc::Usage::default();
    };
    // Made once: deriving it costs thousands of hash rounds.
    static CREDENTIAL: std::sync::OnceLock<cairn_auth::ScramCredential> =
        std::sync::OnceLock::new();
    let credential = CREDENTIAL.get_or_init(|| {
        cairn_auth::ScramCredential::from_password(
            cairn_auth::ScramMechanism::Sha256,
            "pencil",
            b"salt-for-fuzzing",
            4096,
        )
    });
    let (_, usage) = alloc::measure(data.len(), bound(data.len()), || match which % 3 {
        0 => drop(cairn_auth::parse_plain(rest)),
        1 => drop(cairn_auth::parse_jaas_users(&String::from_utf8_lossy(rest))),
        _ => {
            let (first, last) = match rest.iter().position(|b| *b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let mut server = cairn_auth::ScramServer::new(cairn_auth::ScramMechanism::Sha256);
            let known = credential.clone();
            if server
                .client_first(first, |u| (u == SCRAM_USER).then_some(known))
                .is_ok()
            {
                drop(server.client_final(last));
            }
        }
    });
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_one_call_holds() {
        let (_, usage) = alloc::measure(0, 1 << 20, || {
            let a = vec![1u8; 1000];
            let b = vec![2u8; 3000];
            drop(a);
            drop(b);
            vec![3u8; 500]
        });
        assert_eq!(usage.total, 4500);
        assert_eq!(usage.peak, 4000);
    }

    /// The bound must stop a hostile reservation before the system allocator sees it: the child
    /// asks for 1 TiB under a 1 MiB bound and must die with our message, not the runtime's.
    #[test]
    fn an_oversized_request_is_stopped_before_it_is_made() {
        const NAME: &str = "tests::an_oversized_request_is_stopped_before_it_is_made";
        if std::env::var_os("CAIRN_FUZZ_BOUND_CHILD").is_some() {
            let (v, _) = alloc::measure(0, 1 << 20, || vec![0u8; 1 << 40]);
            drop(v);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env("CAIRN_FUZZ_BOUND_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        const SIGABRT: i32 = 6;
        assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
        assert!(
            stderr.contains("a request for 1099511627776 bytes")
                && stderr.contains("over the bound of 1048576 bytes"),
            "{stderr}"
        );
    }

    #[test]
    fn every_served_api_has_a_decoder() {
        for &(key, lo, hi) in cairn_broker::SUPPORTED {
            let lo = if key == ApiKey::Produce { 3 } else { lo };
            for version in [lo, hi] {
                let mut frame = Vec::new();
                frame.extend_from_slice(&(key as i16).to_be_bytes());
                frame.extend_from_slice(&version.to_be_bytes());
                frame.extend_from_slice(&[0; 64]);
                let r = decode_request(Bytes::from(frame));
                assert!(
                    !matches!(&r, Err(e) if e.contains("no decoder")),
                    "{key:?} v{version}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn fixed_crcs_pass_the_check() {
        let record = PlainRecord {
            key: None,
            value: Some(b"value"),
            timestamp: 7,
        };
        let mut raw = batch::encode_plain(&[record, record]).to_vec();
        raw[17] ^= 0xff; // part of the CRC
        assert!(validate_records(&raw, 1 << 20).is_err());
        fix_crcs(&mut raw);
        assert_eq!(validate_records(&raw, 1 << 20), Ok(()));
    }
}
