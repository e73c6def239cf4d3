//! `cairn groups history GROUP`: a group's recent rebalances. The Kafka protocol has no request
//! for them, so this reads `GET /api/groups/{group}/rebalances` from the broker's HTTP listener
//! (docs/observability.md) with a minimal HTTP/1.1 GET.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::output::{or_dash, print, print_json, Format, Table};

#[derive(Args)]
pub struct HistoryArgs {
    /// The group.
    #[arg(value_name = "GROUP")]
    group: String,
    /// The broker's HTTP listener (`cairn serve --http`).
    #[arg(
        long = "http-server",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9644"
    )]
    http_server: String,
}

/// One rebalance as the broker reports it; unknown fields are ignored, `--output json` prints
/// what the broker sent.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Rebalance {
    pub seq: u64,
    pub cause: String,
    #[serde(default)]
    pub cause_detail: Option<String>,
    pub from_generation: i32,
    pub generation: Option<i32>,
    pub started_ms: i64,
    pub preparing_ms: Option<i64>,
    pub completing_ms: Option<i64>,
    pub members_before: usize,
    pub members_after: Option<usize>,
    pub partitions_moved: Option<usize>,
    pub outcome: String,
}

#[derive(Deserialize)]
struct Page {
    rebalances: Vec<Rebalance>,
}

pub async fn run(args: HistoryArgs, output: Format, timeout: Duration) -> anyhow::Result<()> {
    let path = format!("/api/groups/{}/rebalances", percent_encode(&args.group));
    let (status, body) = tokio::time::timeout(timeout, get(&args.http_server, &path))
        .await
        .map_err(|_| {
            anyhow!(
                "no answer from the broker's HTTP listener at {} within {} ms; check --http-server",
                args.http_server,
                timeout.as_millis()
            )
        })??;
    match status {
        200 => {}
        404 => bail!("unknown group '{}'", args.group),
        503 => bail!(
            "the broker at {} is not ready yet (stores loading); try again",
            args.http_server
        ),
        _ => bail!(
            "{} answered {status}: {}",
            args.http_server,
            String::from_utf8_lossy(&body).trim()
        ),
    }
    if output == Format::Json {
        let value: serde_json::Value =
            serde_json::from_slice(&body).context("the broker's answer is not JSON")?;
        return print_json(&value);
    }
    let page: Page = serde_json::from_slice(&body).context("unexpected answer from the broker")?;
    if page.rebalances.is_empty() {
        eprintln!("group '{}' has no recorded rebalances", args.group);
        return Ok(());
    }
    print(&render_history(&page.rebalances))
}

pub fn render_history(rebalances: &[Rebalance]) -> String {
    let mut t = Table::new(&[
        "SEQ",
        "STARTED (UTC)",
        "CAUSE",
        "MEMBER/TOPIC",
        "GEN",
        "PREPARING-MS",
        "COMPLETING-MS",
        "MOVED",
        "MEMBERS",
        "OUTCOME",
    ]);
    for r in rebalances {
        t.row(vec![
            r.seq.to_string(),
            utc(r.started_ms),
            r.cause.clone(),
            or_dash(r.cause_detail.clone()),
            format!("{}->{}", r.from_generation, or_dash(r.generation)),
            or_dash(r.preparing_ms),
            or_dash(r.completing_ms),
            or_dash(r.partitions_moved),
            format!("{}->{}", r.members_before, or_dash(r.members_after)),
            r.outcome.clone(),
        ]);
    }
    t.render()
}

fn utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// Everything but RFC 3986's unreserved characters, as `encodeURIComponent` does.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over one HTTP/1.1 connection; returns the status and the (de-chunked) body.
pub(crate) async fn get(server: &str, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(server).await.map_err(|e| {
        anyhow!("cannot reach the broker's HTTP listener at {server} ({e}); check --http-server")
    })?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\n\
         User-Agent: cairn-cli\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .with_context(|| format!("reading the answer from {server}"))?;
    parse_response(&raw).with_context(|| format!("bad HTTP answer from {server}"))
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).context("headers are not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = &raw[end + 4..];
    if chunked {
        return Ok((status, dechunk(body)?));
    }
    match length {
        Some(n) if n <= body.len() => Ok((status, body[..n].to_vec())),
        Some(n) => bail!("body cut short: {} of {n} bytes", body.len()),
        None => Ok((status, body.to_vec())),
    }
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk header"))?;
        let size_text = std::str::from_utf8(&body[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Rebalance> {
        let base = 1_718_000_000_000;
        let r = |seq,
                 cause: &str,
                 detail: Option<&str>,
                 from,
                 to,
                 prep,
                 comp,
                 moved,
                 before,
                 after,
                 outcome: &str| {
            Rebalance {
                seq,
                cause: cause.into(),
                cause_detail: detail.map(Into::into),
                from_generation: from,
                generation: to,
                started_ms: base + seq as i64 * 1500,
                preparing_ms: prep,
                completing_ms: comp,
                members_before: before,
                members_after: after,
                partitions_moved: moved,
                outcome: outcome.into(),
            }
        };
        vec![
            r(
                0,
                "member_joined",
                Some("rdkafka-3f2a9c1e"),
                0,
                Some(1),
                Some(0),
                Some(3),
                Some(6),
                0,
                Some(1),
                "stable",
            ),
            r(
                1,
                "member_joined",
                Some("rdkafka-77b0e2d4"),
                1,
                Some(2),
                Some(3002),
                Some(41),
                Some(3),
                1,
                Some(2),
                "stable",
            ),
            r(
                2,
                "metadata_changed",
                Some("orders"),
                2,
                None,
                Some(120),
                None,
                None,
                2,
                None,
                "superseded",
            ),
            r(
                3,
                "member_left",
                Some("rdkafka-77b0e2d4"),
                2,
                Some(3),
                Some(15),
                Some(8),
                Some(3),
                2,
                Some(1),
                "stable",
            ),
            r(
                4,
                "session_timeout",
                Some("rdkafka-3f2a9c1e"),
                3,
                None,
                None,
                None,
                None,
                1,
                None,
                "in_progress",
            ),
        ]
    }

    #[test]
    fn history_table() {
        insta::assert_snapshot!(render_history(&sample()));
    }

    #[test]
    fn encodes_group_ids_like_encode_uri_component() {
        assert_eq!(
            percent_encode("orders-consumer_1.x~"),
            "orders-consumer_1.x~"
        );
        assert_eq!(percent_encode("a b/c?d%é"), "a%20b%2Fc%3Fd%25%C3%A9");
    }

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain).unwrap(), (404, b"hello".to_vec()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"abcde".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
