//! `cairn check DATA_DIR`: the scan a broker runs over every segment on start, read-only, for
//! operators and scripts. Exit codes: 0 nothing damaged, 1 damage found, 2 the directory could not
//! be checked.

use std::path::PathBuf;

use cairn_log::{check_data_dir, Damage};
use clap::Args;

use crate::output::{or_dash, print, print_json, Format, Table};

#[derive(Args)]
pub struct CheckArgs {
    /// The broker's data directory (`log.dirs`).
    data_dir: PathBuf,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// Exit code when damage was found.
pub const EXIT_DAMAGED: u8 = 1;
/// Exit code when the directory could not be checked at all.
pub const EXIT_UNREADABLE: u8 = 2;

fn lost(d: &Damage) -> String {
    match d.end_offset {
        Some(end) => format!("{}..{}", d.first_offset, end),
        None => format!("{}..(unknown)", d.first_offset),
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let report = match check_data_dir(&args.data_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn check: {e}");
            return Ok(EXIT_UNREADABLE);
        }
    };
    let code = if report.damaged() { EXIT_DAMAGED } else { 0 };
    if args.output == Format::Json {
        print_json(&report)?;
        return Ok(code);
    }
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "SEGMENTS",
        "BATCHES",
        "LOG-START",
        "LOG-END",
        "STATUS",
    ]);
    let mut details = String::new();
    for p in &report.partitions {
        let c = p.check.as_ref();
        let status = if let Some(e) = &p.error {
            details.push_str(&format!("{}-{}: {e}\n", p.topic, p.partition));
            "ERROR".to_string()
        } else if c.is_some_and(|c| !c.damage.is_empty()) {
            "DAMAGED".to_string()
        } else if c.is_some_and(|c| c.torn_tail.is_some()) {
            "TORN-TAIL".to_string()
        } else {
            "OK".to_string()
        };
        if let Some(c) = c {
            for d in c.damage.iter().chain(&c.torn_tail) {
                details.push_str(&format!(
                    "{}-{}: segment {} bytes {}..{} offsets lost {}: {}{}\n",
                    p.topic,
                    p.partition,
                    d.segment,
                    d.start_pos,
                    d.end_pos,
                    lost(d),
                    d.reason,
                    if d.truncated {
                        " (the active segment's tail; cut on the next start)"
                    } else {
                        ""
                    }
                ));
            }
        }
        table.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(c.map(|c| c.segments.len())),
            or_dash(c.map(|c| c.segments.iter().map(|s| s.batches).sum::<u64>())),
            or_dash(c.map(|c| c.log_start)),
            or_dash(c.map(|c| c.log_end)),
            status,
        ]);
    }
    let mut text = table.render();
    if !details.is_empty() {
        text.push('\n');
        text.push_str(&details);
    }
    let damaged = report.partitions.iter().filter(|p| p.damaged()).count();
    text.push_str(&format!(
        "\n{} partitions checked, {damaged} damaged{}\n",
        report.partitions.len(),
        if report.broker_running {
            " (a broker is running on this directory: active segments may grow while read)"
        } else {
            ""
        }
    ));
    print(&text)?;
    Ok(code)
}
