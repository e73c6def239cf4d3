//! Replays every input the fuzzer ever saved (fuzz/regressions/<target>/*) through the same
//! harness the fuzzer runs, so each crash found once stays a test without any fuzzing tool.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            out.push((path, data));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no regression inputs for {target}");
    for (path, data) in inputs {
        // Named first: an abort in the harness leaves only this line to say which input did it.
        eprintln!("replaying {}", path.display());
        run(&data);
    }
}

// An input over the allocation bound aborts the process (the harness stops it before the
// allocation is made), so a regression here fails the whole test binary loudly.

#[test]
fn request_frame_regressions() {
    replay("request_frame", |d| {
        cairn_fuzz::request_frame(d);
    });
}

#[test]
fn record_batch_regressions() {
    replay("record_batch", |d| {
        cairn_fuzz::record_batch(d);
    });
}

#[test]
fn sasl_exchange_regressions() {
    replay("sasl_exchange", |d| {
        cairn_fuzz::sasl_exchange(d);
    });
}

#[test]
fn segment_recovery_regressions() {
    replay("segment_recovery", cairn_fuzz::segment_recovery);
}

/// The bound holds for every real client frame in the seed corpus: a bound that real traffic
/// breaks would be the wrong property, not a finding.
#[test]
fn request_frame_corpus_within_bound() {
    replay_corpus("request_frame", cairn_fuzz::request_frame);
}

#[test]
fn record_batch_corpus_within_bound() {
    replay_corpus("record_batch", cairn_fuzz::record_batch);
}

fn replay_corpus(target: &str, run: impl Fn(&[u8]) -> cairn_fuzz::alloc::Usage) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    let mut widest = (0.0f64, 0, PathBuf::new());
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        eprintln!("replaying {}", path.display());
        let data = std::fs::read(&path).unwrap();
        let usage = run(&data);
        let ratio = usage.peak as f64 / data.len().max(1) as f64;
        if ratio > widest.0 {
            widest = (ratio, usage.peak, path);
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus for {target}");
    // Run with --nocapture to see how close real traffic comes to the bound.
    println!(
        "{target}: {n} inputs, at most {:.1} bytes held per input byte ({} bytes, {})",
        widest.0,
        widest.1,
        widest.2.display()
    );
}
