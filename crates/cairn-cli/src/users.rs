//! `cairn users`: SCRAM credentials, the job of kafka-configs.sh
//! `--entity-type users --alter --add-config SCRAM-SHA-256=[...]`, over
//! DescribeUserScramCredentials and AlterUserScramCredentials. The password
//! never leaves this process: the broker gets a random salt and the salted
//! password.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use cairn_client::acl::{ScramMechanism, ScramUpsertion};
use cairn_client::sasl::{SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::common::{describe_error, Common};
use crate::output::{print, print_json, Table};

const CLIENT_ID: &str = "cairn-users";

#[derive(Args)]
pub struct UsersArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Users with SCRAM credentials: mechanisms and iterations (never secrets).
    List {
        /// Only this user (repeatable).
        #[arg(long = "user", value_name = "USER")]
        users: Vec<String>,
    },
    /// Create or replace a user's SCRAM credential. The password comes from --password,
    /// --password-file, or else the first line of standard input.
    Add(AddArgs),
    /// Delete a user's SCRAM credential for a mechanism.
    Remove {
        #[arg(long)]
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable).
        #[arg(long = "mechanism", required = true, value_parser = parse_mechanism)]
        mechanisms: Vec<ScramMechanism>,
    },
}

#[derive(Args, Debug)]
struct AddArgs {
    #[arg(long)]
    user: String,
    /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable).
    #[arg(long = "mechanism", required = true, value_parser = parse_mechanism)]
    mechanisms: Vec<ScramMechanism>,
    /// SCRAM iterations, 4096 to 16384 as Kafka allows.
    #[arg(long, default_value_t = SCRAM_MIN_ITERATIONS)]
    iterations: u32,
    /// The password (visible to other local users in the process list: prefer
    /// --password-file or standard input).
    #[arg(long, conflicts_with = "password_file")]
    password: Option<String>,
    /// A file whose first line is the password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

fn parse_mechanism(s: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::parse(s).ok_or_else(|| format!("'{s}' is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

/// The first line, without its line end.
fn first_line(mut r: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn password(args: &AddArgs) -> anyhow::Result<String> {
    let pw = match (&args.password, &args.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            let file = std::fs::File::open(f)
                .with_context(|| format!("cannot read the password file {}", f.display()))?;
            first_line(std::io::BufReader::new(file))?
        }
        (None, None) => first_line(std::io::stdin().lock()).context("reading the password")?,
    };
    if pw.is_empty() {
        bail!("the password is empty");
    }
    Ok(pw)
}

/// What `add` sends, once the password is known.
fn upsertions(args: &AddArgs, password: &str) -> anyhow::Result<Vec<ScramUpsertion>> {
    if args.user.is_empty() {
        bail!("--user cannot be empty");
    }
    if !(SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(&args.iterations) {
        bail!(
            "--iterations must be between {SCRAM_MIN_ITERATIONS} and {SCRAM_MAX_ITERATIONS}, as Kafka requires"
        );
    }
    let mut mechanisms = args.mechanisms.clone();
    mechanisms.sort();
    mechanisms.dedup();
    Ok(mechanisms
        .into_iter()
        .map(|m| ScramUpsertion::new(&args.user, m, args.iterations, password))
        .collect())
}

#[derive(Serialize)]
struct CredentialView {
    user: String,
    mechanism: &'static str,
    iterations: i32,
}

#[derive(Serialize)]
struct Changed<'a> {
    user: &'a str,
    mechanism: &'static str,
    result: &'static str,
}

fn report(
    common: &Common,
    user: &str,
    mechanisms: &[ScramMechanism],
    what: &'static str,
) -> anyhow::Result<()> {
    if common.json() {
        let items: Vec<Changed> = mechanisms
            .iter()
            .map(|m| Changed {
                user,
                mechanism: m.name(),
                result: what,
            })
            .collect();
        return print_json(&items);
    }
    let text: String = mechanisms
        .iter()
        .map(|m| {
            let verb = if what == "added" { "Added" } else { "Removed" };
            format!("{verb} the {m} credential of user {user}.\n")
        })
        .collect();
    print(&text)
}

pub async fn run(args: UsersArgs) -> anyhow::Result<()> {
    let common = &args.common;
    match args.command {
        UsersCommand::List { users } => {
            let client = common.connect(CLIENT_ID).await?;
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            let results = client
                .describe_scram_credentials((!names.is_empty()).then_some(&names[..]))
                .await
                .map_err(|e| anyhow!("cannot list users: {}", describe_error(&e)))?;
            let mut rows = Vec::new();
            let mut failed = Vec::new();
            for r in results {
                match r {
                    Ok(u) => rows.extend(u.credentials.iter().map(|(m, i)| CredentialView {
                        user: u.user.clone(),
                        mechanism: m.name(),
                        iterations: *i,
                    })),
                    Err(e) => failed.push(describe_error(&e)),
                }
            }
            rows.sort_by(|a, b| (&a.user, a.mechanism).cmp(&(&b.user, b.mechanism)));
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
            if common.json() {
                return print_json(&rows);
            }
            if rows.is_empty() {
                return print("No users with SCRAM credentials.\n");
            }
            let mut t = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for r in &rows {
                t.row(vec![
                    r.user.clone(),
                    r.mechanism.to_string(),
                    r.iterations.to_string(),
                ]);
            }
            print(&t.render())
        }
        UsersCommand::Add(a) => {
            let pw = password(&a)?;
            let ups = upsertions(&a, &pw)?;
            let client = common.connect(CLIENT_ID).await?;
            let outcomes = client
                .alter_scram_credentials(&[], &ups)
                .await
                .map_err(|e| anyhow!("cannot add user '{}': {}", a.user, describe_error(&e)))?;
            check_outcomes(&outcomes)?;
            let ms: Vec<ScramMechanism> = ups.iter().map(|u| u.mechanism).collect();
            report(common, &a.user, &ms, "added")
        }
        UsersCommand::Remove {
            user,
            mut mechanisms,
        } => {
            mechanisms.sort();
            mechanisms.dedup();
            let deletions: Vec<(String, ScramMechanism)> =
                mechanisms.iter().map(|m| (user.clone(), *m)).collect();
            let client = common.connect(CLIENT_ID).await?;
            let outcomes = client
                .alter_scram_credentials(&deletions, &[])
                .await
                .map_err(|e| anyhow!("cannot remove user '{user}': {}", describe_error(&e)))?;
            check_outcomes(&outcomes)?;
            report(common, &user, &mechanisms, "removed")
        }
    }
}

fn check_outcomes(outcomes: &[(String, cairn_client::Result<()>)]) -> anyhow::Result<()> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, o)| o.as_ref().err().map(describe_error))
        .collect();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: UsersCommand,
    }

    fn add_args(args: &str) -> AddArgs {
        let argv = ["users", "add"].into_iter().chain(args.split_whitespace());
        match Cli::try_parse_from(argv).unwrap().command {
            UsersCommand::Add(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn add_maps_to_salted_upsertions() {
        let a = add_args("--user alice --mechanism scram-sha-512 --mechanism SCRAM-SHA-256 --mechanism SCRAM-SHA-256 --iterations 8192");
        let ups = upsertions(&a, "pencil").unwrap();
        insta::assert_snapshot!(format!("{ups:#?}"));
        for u in &ups {
            assert_eq!(
                u.salted_password,
                u.mechanism.hash().salted_password("pencil", &u.salt, 8192)
            );
            assert!(!u.salted_password.windows(6).any(|w| w == b"pencil"));
        }
    }

    #[test]
    fn add_refuses_bad_iterations_and_mechanisms() {
        let a = add_args("--user alice --mechanism SCRAM-SHA-256 --iterations 100");
        assert!(upsertions(&a, "pw")
            .unwrap_err()
            .to_string()
            .contains("4096"));
        let a = add_args("--user alice --mechanism SCRAM-SHA-256 --iterations 20000");
        assert!(upsertions(&a, "pw").is_err());
        assert!(
            Cli::try_parse_from(["users", "add", "--user", "a", "--mechanism", "PLAIN"]).is_err()
        );
        assert!(Cli::try_parse_from(["users", "add", "--user", "a"]).is_err());
    }

    #[test]
    fn password_sources() {
        assert_eq!(first_line(&b"s3cret\r\nnext\n"[..]).unwrap(), "s3cret");
        assert_eq!(first_line(&b"no newline"[..]).unwrap(), "no newline");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let a = add_args(&format!(
            "--user a --mechanism SCRAM-SHA-256 --password-file {}",
            f.display()
        ));
        assert_eq!(password(&a).unwrap(), "from-file");
        let a = add_args("--user a --mechanism SCRAM-SHA-256 --password given");
        assert_eq!(password(&a).unwrap(), "given");
        std::fs::write(&f, "\n").unwrap();
        let a = add_args(&format!(
            "--user a --mechanism SCRAM-SHA-256 --password-file {}",
            f.display()
        ));
        assert!(password(&a).is_err());
    }
}
