//! `cairn produce` and `cairn consume`: the console producer and consumer,
//! for quick work and for trying the group tools by hand.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use cairn_client::kafka_protocol::records::Compression;
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::member::{GroupMember, MemberConfig, MemberEvent};
use cairn_client::records::encode_batch;
use cairn_client::{Client, ConsumedRecord, ProduceRecord, EARLIEST_OFFSET, LATEST_OFFSET};
use clap::Args;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;

use crate::common::Common;
use crate::output::print_json;

/// Records gathered before a produce is sent.
const MAX_BATCH_RECORDS: usize = 1000;
/// How long the producer waits for more lines before sending what it has,
/// so typed lines go out at once and piped files still batch.
const LINGER: Duration = Duration::from_millis(5);
/// How long a fetch waits on the broker for new data.
const FETCH_WAIT_MS: i32 = 500;
const FETCH_PARTITION_BYTES: i32 = 1 << 20;
/// Commits of a group consumer happen at most this often (and on exit).
const COMMIT_EVERY: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- produce

#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send everything to this partition [default: by key hash, as Kafka's
    /// clients do; lines without key spread over the partitions].
    #[arg(long)]
    partition: Option<i32>,
    /// all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err("expected all, -1, 1 or 0".to_string()),
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), so keyed records
/// land on the same partition as with Kafka's own producers.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Splits a line into key and value at the first separator.
pub fn split_line(line: &str, sep: Option<&str>) -> Option<(Option<String>, String)> {
    match sep {
        None => Some((None, line.to_string())),
        Some(sep) => line
            .split_once(sep)
            .map(|(k, v)| (Some(k.to_string()), v.to_string())),
    }
}

#[derive(Serialize)]
struct Produced {
    topic: String,
    records: u64,
    partitions: BTreeMap<i32, u64>,
}

/// Makes sure the topic exists (asking the broker to auto-create it, as a
/// Kafka producer's metadata request does) and returns its partition count.
async fn topic_partitions(client: &Client, topic: &str, create: bool) -> anyhow::Result<i32> {
    let meta = client.fetch_metadata(Some(&[topic]), create).await?;
    let exists = meta.topics.get(topic).is_some_and(|t| t.error.is_none());
    if !exists && !create {
        bail!("topic '{topic}' does not exist");
    }
    let info = client
        .wait_for_topic(topic, Duration::from_secs(10))
        .await
        .map_err(|_| anyhow!("topic '{topic}' does not exist (and was not auto-created)"))?;
    Ok(info.partitions.len() as i32)
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.common.connect("cairn-console-producer").await?;
    let partitions = topic_partitions(&client, &args.topic, true).await?;
    if let Some(p) = args.partition {
        if p < 0 || p >= partitions {
            bail!(
                "topic '{}' has no partition {p} (it has {partitions})",
                args.topic
            );
        }
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut pending: BTreeMap<i32, Vec<ProduceRecord>> = BTreeMap::new();
    let mut queued = 0usize;
    let mut sticky = 0i32;
    let mut line_no = 0u64;
    let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
    let mut eof = false;
    while !eof {
        let next = if queued == 0 {
            Some(lines.next_line().await)
        } else {
            tokio::time::timeout(LINGER, lines.next_line()).await.ok()
        };
        // `None` means nothing more arrived within the linger time: send.
        if let Some(line) = next {
            match line.context("reading standard input")? {
                Some(line) => {
                    line_no += 1;
                    let (key, value) = split_line(&line, args.key_separator.as_deref())
                        .ok_or_else(|| {
                            anyhow!(
                                "line {line_no} has no key separator '{}'",
                                args.key_separator.as_deref().unwrap_or_default()
                            )
                        })?;
                    let partition = match (args.partition, &key) {
                        (Some(p), _) => p,
                        (None, Some(k)) => partition_for_key(k.as_bytes(), partitions),
                        (None, None) => sticky,
                    };
                    let mut record = ProduceRecord::new(value);
                    if let Some(k) = key {
                        record = record.with_key(k);
                    }
                    pending.entry(partition).or_default().push(record);
                    queued += 1;
                    if queued < MAX_BATCH_RECORDS {
                        continue;
                    }
                }
                None => eof = true,
            }
        }
        if queued > 0 {
            send(&client, &args.topic, &mut pending, args.acks, &mut counts).await?;
            queued = 0;
            // The next batch of keyless lines goes to the next partition.
            sticky = (sticky + 1) % partitions;
        }
    }
    let total: u64 = counts.values().sum();
    if args.common.json() {
        print_json(&Produced {
            topic: args.topic.clone(),
            records: total,
            partitions: counts,
        })?;
    } else {
        eprintln!("Produced {total} record(s) to {}.", args.topic);
    }
    Ok(())
}

async fn send(
    client: &Client,
    topic: &str,
    pending: &mut BTreeMap<i32, Vec<ProduceRecord>>,
    acks: i16,
    counts: &mut BTreeMap<i32, u64>,
) -> anyhow::Result<()> {
    let mut acks_due = Vec::new();
    for (partition, records) in std::mem::take(pending) {
        let batch = encode_batch(&records, Compression::None)?;
        let due = client
            .submit_produce(topic, partition, batch, acks)
            .await
            .with_context(|| format!("cannot produce to {topic}/{partition}"))?;
        acks_due.push((partition, records.len() as u64, due));
    }
    for (partition, n, due) in acks_due {
        due.await
            .with_context(|| format!("produce to {topic}/{partition} failed"))?;
        *counts.entry(partition).or_default() += n;
    }
    Ok(())
}

// ---------------------------------------------------------------- consume

#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    topic: String,
    /// Consume as a member of this group: partitions come from the group,
    /// progress is committed as it goes and on exit.
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// Start at the beginning of the log where there is no committed offset
    /// [default: only new records].
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// With --partition: start here (a number, earliest or latest).
    #[arg(long, requires = "partition", value_name = "OFFSET")]
    offset: Option<String>,
    /// Print keys too: KEY<TAB>VALUE.
    #[arg(long)]
    print_key: bool,
    /// Stop when no record arrived for this long.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
}

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// One record as printed: the value, `KEY<TAB>VALUE` with keys, or a JSON line.
pub fn format_record(
    topic: &str,
    partition: i32,
    r: &ConsumedRecord,
    print_key: bool,
    json: bool,
) -> String {
    if json {
        let line = serde_json::to_string(&RecordJson {
            topic,
            partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: text(&r.key),
            value: text(&r.value),
        })
        .unwrap_or_default();
        return format!("{line}\n");
    }
    let null = || "null".to_string();
    let value = text(&r.value).unwrap_or_else(null);
    if print_key {
        format!("{}\t{value}\n", text(&r.key).unwrap_or_else(null))
    } else {
        format!("{value}\n")
    }
}

/// Why the consume loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    MaxMessages,
    Idle,
    Signal,
    ClosedOutput,
}

/// Positions, printing and stop conditions shared by both ways of consuming.
struct Reader {
    topic: String,
    print_key: bool,
    json: bool,
    from_beginning: bool,
    max: Option<u64>,
    idle: Option<Duration>,
    printed: u64,
    last_record: Instant,
    /// Next offset to read per partition.
    positions: BTreeMap<i32, i64>,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

impl Reader {
    fn reset_policy(&self) -> i64 {
        if self.from_beginning {
            EARLIEST_OFFSET
        } else {
            LATEST_OFFSET
        }
    }

    /// Resolves earliest/latest markers into real offsets.
    async fn resolve(&mut self, client: &Client, wanted: Vec<(i32, i64)>) -> anyhow::Result<()> {
        let queries: Vec<(String, i32, i64)> = wanted
            .iter()
            .filter(|(_, o)| *o < 0)
            .map(|(p, o)| (self.topic.clone(), *p, *o))
            .collect();
        let found = if queries.is_empty() {
            Vec::new()
        } else {
            client.list_offsets_many(&queries).await?
        };
        for (p, o) in wanted {
            let offset = if o >= 0 {
                o
            } else {
                let l = found
                    .iter()
                    .find(|l| l.partition == p)
                    .ok_or_else(|| anyhow!("no offsets for {}/{p}", self.topic))?;
                if let Some(e) = l.error {
                    bail!("cannot look up offsets of {}/{p}: {e:?}", self.topic);
                }
                l.offset
            };
            self.positions.insert(p, offset);
        }
        Ok(())
    }

    /// One fetch over the given partitions; prints what came and advances.
    async fn poll(&mut self, client: &Client, partitions: &[i32]) -> anyhow::Result<Option<Stop>> {
        if let Some(stop) = self.should_stop() {
            return Ok(Some(stop));
        }
        if partitions.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(FETCH_WAIT_MS as u64)) => {}
                _ = self.wake.notified() => {}
            }
            return Ok(self.should_stop());
        }
        let wanted: Vec<(String, i32, i64)> = partitions
            .iter()
            .map(|p| (self.topic.clone(), *p, self.positions[p]))
            .collect();
        let fetched = tokio::select! {
            r = client.fetch_many(&wanted, FETCH_PARTITION_BYTES, FETCH_WAIT_MS) => r?,
            _ = self.wake.notified() => return Ok(Some(Stop::Signal)),
        };
        let mut out = String::new();
        let mut stop = None;
        let mut reset = Vec::new();
        'parts: for f in fetched {
            match f.error {
                None => {}
                Some(ResponseError::OffsetOutOfRange) => {
                    reset.push((f.partition, self.reset_policy()));
                    continue;
                }
                Some(e) => bail!("fetch from {}/{} failed: {e:?}", f.topic, f.partition),
            }
            for r in &f.records {
                out.push_str(&format_record(
                    &self.topic,
                    f.partition,
                    r,
                    self.print_key,
                    self.json,
                ));
                self.positions.insert(f.partition, r.offset + 1);
                self.printed += 1;
                self.last_record = Instant::now();
                if self.max.is_some_and(|m| self.printed >= m) {
                    stop = Some(Stop::MaxMessages);
                    break 'parts;
                }
            }
        }
        if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(Some(Stop::ClosedOutput));
                }
                return Err(e.into());
            }
        }
        if !reset.is_empty() {
            self.resolve(client, reset).await?;
        }
        Ok(stop.or_else(|| self.should_stop()))
    }

    fn should_stop(&self) -> Option<Stop> {
        if self.stop.load(Ordering::SeqCst) {
            return Some(Stop::Signal);
        }
        if self.max.is_some_and(|m| self.printed >= m) {
            return Some(Stop::MaxMessages);
        }
        if self.idle.is_some_and(|d| self.last_record.elapsed() >= d) {
            return Some(Stop::Idle);
        }
        None
    }
}

/// SIGINT/SIGTERM set the flag and wake the loop, which then commits and leaves.
fn watch_signals(stop: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop.store(true, Ordering::SeqCst);
        wake.notify_one();
    });
    Ok(())
}

pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    watch_signals(stop.clone(), wake.clone())?;
    let client = args.common.connect("cairn-console-consumer").await?;
    let partitions = topic_partitions(&client, &args.topic, false).await?;
    let mut reader = Reader {
        topic: args.topic.clone(),
        print_key: args.print_key,
        json: args.common.json(),
        from_beginning: args.from_beginning,
        max: args.max_messages,
        idle: args.timeout_ms.map(Duration::from_millis),
        printed: 0,
        last_record: Instant::now(),
        positions: BTreeMap::new(),
        stop,
        wake,
    };
    if args.max_messages == Some(0) {
        return Ok(());
    }
    let result = match &args.group {
        Some(group) => consume_in_group(&client, &mut reader, group).await,
        None => consume_direct(&client, &mut reader, &args, partitions).await,
    };
    eprintln!("Processed a total of {} messages", reader.printed);
    result
}

async fn consume_direct(
    client: &Client,
    reader: &mut Reader,
    args: &ConsumeArgs,
    partitions: i32,
) -> anyhow::Result<()> {
    let chosen: Vec<i32> = match args.partition {
        Some(p) if p < 0 || p >= partitions => bail!(
            "topic '{}' has no partition {p} (it has {partitions})",
            args.topic
        ),
        Some(p) => vec![p],
        None => (0..partitions).collect(),
    };
    let start = match args.offset.as_deref() {
        None => reader.reset_policy(),
        Some("earliest") => EARLIEST_OFFSET,
        Some("latest") => LATEST_OFFSET,
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| anyhow!("bad --offset '{n}': a number, earliest or latest"))?,
    };
    reader
        .resolve(client, chosen.iter().map(|p| (*p, start)).collect())
        .await?;
    reader.last_record = Instant::now();
    while reader.poll(client, &chosen).await?.is_none() {}
    Ok(())
}

async fn consume_in_group(client: &Client, reader: &mut Reader, group: &str) -> anyhow::Result<()> {
    let config = MemberConfig::new(group, &[reader.topic.as_str()]);
    let mut member = GroupMember::join(client, config)
        .await
        .with_context(|| format!("cannot join group '{group}'"))?;
    start_positions(&member, reader).await?;
    reader.resolve_pending(client).await?;
    reader.last_record = Instant::now();
    // Empty, so that the first commit also records the positions chosen by
    // the reset policy, as Kafka's console consumer does: the group then
    // shows an offset (and a lag) for every partition it owns.
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let outcome = loop {
        match member.needs_rejoin() {
            Some(MemberEvent::Failed(why)) => break Err(anyhow!("lost group '{group}': {why}")),
            Some(event) => {
                tracing::debug!("rejoining group: {event:?}");
                // Keep what was read before the partitions move elsewhere.
                let _ = commit(&member, reader, &mut committed).await;
                member.rejoin(client).await?;
                reader.positions.clear();
                start_positions(&member, reader).await?;
                reader.resolve_pending(client).await?;
                committed.clear();
                continue;
            }
            None => {}
        }
        let owned = owned_partitions(&member, &reader.topic);
        match reader.poll(client, &owned).await {
            Ok(Some(stop)) => break Ok(stop),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            if let Err(e) = commit(&member, reader, &mut committed).await {
                tracing::debug!("commit refused ({e}); the next rebalance settles it");
            }
            last_commit = Instant::now();
        }
    };
    let committed_ok = commit(&member, reader, &mut committed).await;
    let left = member.leave().await;
    let stop = outcome?;
    tracing::debug!("stopped: {stop:?}");
    committed_ok.with_context(|| format!("cannot commit the offsets of group '{group}'"))?;
    left.with_context(|| format!("cannot leave group '{group}'"))?;
    Ok(())
}

fn owned_partitions(member: &GroupMember, topic: &str) -> Vec<i32> {
    member
        .assignment()
        .iter()
        .filter(|(t, _)| t == topic)
        .flat_map(|(_, ps)| ps.iter().copied())
        .collect()
}

/// Committed offsets of the assigned partitions; uncommitted ones are
/// marked with the reset policy, to be resolved.
async fn start_positions(member: &GroupMember, reader: &mut Reader) -> anyhow::Result<()> {
    for (t, p, o) in member.committed().await? {
        if t == reader.topic {
            let start = if o >= 0 { o } else { reader.reset_policy() };
            reader.positions.insert(p, start);
        }
    }
    Ok(())
}

impl Reader {
    async fn resolve_pending(&mut self, client: &Client) -> anyhow::Result<()> {
        let wanted: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        self.resolve(client, wanted).await
    }
}

/// Commits the positions that moved since the last commit.
async fn commit(
    member: &GroupMember,
    reader: &Reader,
    committed: &mut BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let changed: Vec<(String, i32, i64)> = reader
        .positions
        .iter()
        .filter(|(p, o)| committed.get(p) != Some(o))
        .map(|(p, o)| (reader.topic.clone(), *p, *o))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    member.commit(&changed).await?;
    tracing::debug!(generation = member.generation_id(), "committed {changed:?}");
    for (_, p, o) in changed {
        committed.insert(p, o);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's own tests of Utils.murmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(split_line("v", None), Some((None, "v".into())));
        assert_eq!(
            split_line("k:v:w", Some(":")),
            Some((Some("k".into()), "v:w".into()))
        );
        assert_eq!(split_line("novalue", Some(":")), None);
    }

    #[test]
    fn record_formats() {
        let r = ConsumedRecord {
            offset: 7,
            timestamp: 1_700_000_000_000,
            timestamp_type: cairn_client::kafka_protocol::records::TimestampType::Creation,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![],
        };
        assert_eq!(format_record("t", 1, &r, false, false), "null\n");
        assert_eq!(format_record("t", 1, &r, true, false), "k\tnull\n");
        assert_eq!(
            format_record("t", 1, &r, false, true),
            "{\"topic\":\"t\",\"partition\":1,\"offset\":7,\"timestamp\":1700000000000,\"key\":\"k\",\"value\":null}\n"
        );
    }
}
