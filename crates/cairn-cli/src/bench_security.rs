//! `cairn bench --with-sasl-ssl`: what TLS and SASL cost. The broker the bench starts gets a
//! SASL_SSL listener beside its PLAINTEXT one (a throwaway certificate, a PLAIN user, SCRAM users
//! made through the admin API); produce and consume throughput over the two listeners alternate
//! run by run, and the medians' ratios are reported, as is the time to open a connection ready
//! for requests with each login.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_client::acl::{ScramMechanism, ScramUpsertion};
use cairn_client::{
    Client, Connection, SaslCredentials, SaslMechanism, Security, SecurityProtocol, TlsSettings,
};

use crate::bench::{median, BenchArgs};

const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";
/// Connections opened per login kind for the handshake cost.
const HANDSHAKES: usize = 40;

/// The certificate files and listener the started broker is given.
pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    /// `SASL_SSL://127.0.0.1:PORT`.
    pub listener: String,
    pub addr: String,
}

/// Makes a CA-signed certificate for 127.0.0.1 and the broker options that use it.
pub(crate) fn prepare(args: &mut BenchArgs) -> Result<Setup> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-tls-")
        .tempdir()?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&key, &ca, &ca_key)?;
    let keystore = dir.path().join("server.pem");
    std::fs::write(&keystore, key.serialize_pem() + &cert.pem() + &ca.pem())?;
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let jaas = format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}=\"{PASSWORD}\";"
    );
    args.push_broker_opts([
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
        format!("listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}"),
    ]);
    Ok(Setup {
        _dir: dir,
        ca: ca_path,
        listener: format!("SASL_SSL://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
    })
}

fn sasl_ssl(setup: &Setup, mechanism: SaslMechanism) -> Result<Security> {
    Ok(Security::new(
        SecurityProtocol::SaslSsl,
        TlsSettings {
            ca_location: Some(setup.ca.clone()),
            certificate_location: None,
            key_location: None,
            verify_hostname: true,
        },
        Some(SaslCredentials {
            mechanism,
            username: USER.to_string(),
            password: PASSWORD.to_string(),
        }),
    )?)
}

/// Median milliseconds to open a connection ready for requests.
async fn handshake_ms(addr: &str, security: &Security) -> Result<f64> {
    let mut samples = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let c = Connection::connect_with(addr, "cairn-bench", Duration::from_secs(10), security)
            .await?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        drop(c);
    }
    Ok(median(samples.into_iter()))
}

/// Alternating PLAINTEXT and SASL_SSL runs, then the handshake costs.
pub(crate) async fn measure(
    args: &mut BenchArgs,
    plan: &crate::bench::Plan,
    plain_addr: &str,
    setup: &Setup,
) -> Result<()> {
    let secure = sasl_ssl(setup, SaslMechanism::Plain)?;
    // SCRAM users for the handshake measurements, made through the admin API over PLAIN.
    let admin = Client::connect_with(
        &setup.addr,
        "cairn-bench",
        cairn_client::DEFAULT_CONNECT_TIMEOUT,
        secure.clone(),
    )
    .await
    .context("cannot log in on the SASL_SSL listener")?;
    let ups = [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512]
        .map(|m| ScramUpsertion::new(USER, m, 4096, PASSWORD));
    for (user, r) in admin.alter_scram_credentials(&[], &ups).await? {
        r.with_context(|| format!("cannot create SCRAM user {user}"))?;
    }

    let stamp = std::process::id();
    let mut rows: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for run in 1..=args.repeat {
        for (i, (label, addr, security)) in [
            ("PLAINTEXT", plain_addr, Security::plaintext()),
            ("SASL_SSL", setup.addr.as_str(), secure.clone()),
        ]
        .into_iter()
        .enumerate()
        {
            args.set_security(security);
            let topic = format!(
                "{}-{stamp}-{}-r{run}",
                args.topic_prefix,
                label.to_lowercase()
            );
            let admin = crate::bench::connect(args, addr).await?;
            crate::bench::create_topic(&admin, &topic, args.partitions).await?;
            let p = crate::bench::produce_throughput(args, plan, addr, &topic)
                .await
                .with_context(|| format!("produce over {label}"))?;
            let c = crate::bench::consume_throughput(args, plan, addr, &topic)
                .await
                .with_context(|| format!("consume over {label}"))?;
            println!(
                "run {run}/{} {label:9}: produce {:.1} MB/s, consume {:.1} MB/s",
                args.repeat,
                p.mb_per_s(),
                c.mb_per_s()
            );
            rows[i].0.push(p.mb_per_s());
            rows[i].1.push(c.mb_per_s());
        }
    }
    args.set_security(Security::plaintext());
    let med = |v: &Vec<f64>| median(v.iter().copied());
    let (pp, pc) = (med(&rows[0].0), med(&rows[0].1));
    let (sp, sc) = (med(&rows[1].0), med(&rows[1].1));
    println!(
        "medians ({} B records): PLAINTEXT produce {pp:.1} MB/s, consume {pc:.1} MB/s; \
         SASL_SSL produce {sp:.1} MB/s, consume {sc:.1} MB/s",
        plan.record_size
    );
    println!(
        "ratio SASL_SSL / PLAINTEXT: produce {:.2}, consume {:.2}",
        sp / pp,
        sc / pc
    );
    let plain_ms = handshake_ms(plain_addr, &Security::plaintext()).await?;
    let mut line = format!("connection ready (median of {HANDSHAKES}): PLAINTEXT {plain_ms:.2} ms");
    for m in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let ms = handshake_ms(&setup.addr, &sasl_ssl(setup, m)?).await?;
        line += &format!(", SASL_SSL {} {ms:.2} ms", m.name());
    }
    println!("{line}");
    Ok(())
}
