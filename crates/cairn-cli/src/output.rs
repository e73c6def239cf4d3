//! How the operator commands print: aligned tables for people, JSON for
//! scripts, and a progress line on stderr for long runs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// `--output`: what stdout carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, as kafka-topics.sh and kafka-consumer-groups.sh print.
    Table,
    /// JSON, for scripts.
    Json,
}

/// A text table whose columns are padded to their widest cell.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Two spaces between columns and no trailing blanks, so the output
    /// diffs and greps cleanly.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = w - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `-` for a missing value, as kafka-consumer-groups.sh prints it.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Writes to stdout, treating a closed pipe (`| head`) as a normal end.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Prints a value as pretty JSON followed by a newline.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// A `label: done/total` line on stderr, redrawn in place. Shown only when
/// stderr is a terminal and the work has already taken a moment, so quick
/// runs and logs stay clean. `CAIRN_PROGRESS=always` shows it from the
/// first item (for recording sessions and tests), `never` hides it.
pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    enabled: bool,
    delay: Duration,
    every: Duration,
    started: Instant,
    last_draw: Option<Instant>,
}

const PROGRESS_DELAY: Duration = Duration::from_millis(300);
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(label: &str, total: usize) -> Self {
        let mode = std::env::var("CAIRN_PROGRESS").unwrap_or_default();
        let always = mode == "always";
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            enabled: mode != "never" && std::io::stderr().is_terminal(),
            delay: if always {
                Duration::ZERO
            } else {
                PROGRESS_DELAY
            },
            every: if always {
                Duration::ZERO
            } else {
                PROGRESS_EVERY
            },
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// One more item done.
    pub fn step(&mut self) {
        self.done += 1;
        if !self.enabled || self.started.elapsed() < self.delay {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < self.every)
            && self.done < self.total
        {
            return;
        }
        self.last_draw = Some(now);
        eprint!("\r{}: {}/{}\x1b[K", self.label, self.done, self.total);
    }

    /// Clears the line, if one was drawn.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.last_draw.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// Kafka's name for an error code (`NON_EMPTY_GROUP`), as operators know it
/// from Kafka's own tools.
pub fn error_name(e: kafka_protocol::ResponseError) -> String {
    let debug = format!("{e:?}");
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// How a change command reports itself: its JSON `result` and the sentence that starts its text
/// (kafka-configs.sh's wording), by whether it was only a dry run.
pub fn change_words(dry_run: bool) -> (&'static str, &'static str) {
    if dry_run {
        ("validated", "Validated (nothing changed)")
    } else {
        ("altered", "Completed updating")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_and_trims_line_ends() {
        let mut t = Table::new(&["A", "LONGER", "C"]);
        t.row(vec!["xyz".into(), "1".into(), "-".into()]);
        t.row(vec!["q".into(), "22".into(), "".into()]);
        assert_eq!(t.render(), "A    LONGER  C\nxyz  1       -\nq    22\n");
    }

    #[test]
    fn error_names_are_kafkas() {
        use kafka_protocol::ResponseError as E;
        assert_eq!(error_name(E::NonEmptyGroup), "NON_EMPTY_GROUP");
        assert_eq!(error_name(E::GroupIdNotFound), "GROUP_ID_NOT_FOUND");
    }
}
