//! TLS for the Kafka listeners (and the HTTP listener): a rustls server configuration built from
//! Kafka's `ssl.*` settings in PEM form, and the principal a client certificate stands for.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use cairn_config::BrokerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// How a listener asks for client certificates (`ssl.client.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// PEM blocks rebuilt with their base64 on lines of their own. Kafka accepts inline PEM whose
/// line breaks were lost (a properties value continued with `\` joins the lines), so the text is
/// read the way Kafka's PEM reader does: between BEGIN and END markers, whitespace ignored.
fn normalize_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            break;
        };
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&end_marker);
        out.push('\n');
        rest = &body_start[body_end + end_marker.len()..];
    }
    out
}

fn read_text(key: &str, path: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{key}: cannot read {path}"))
}

fn certs(key: &str, pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(normalize_pem(pem).as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{key}: malformed certificate: {e}"))?;
    if certs.is_empty() {
        bail!("{key}: no PEM certificate found");
    }
    Ok(certs)
}

fn private_key(key: &str, pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = normalize_pem(pem);
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        bail!("{key}: encrypted private keys are not supported; give an unencrypted PEM key");
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("{key}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"))
}

/// The value of `key` for `listener` (its `listener.name.` override first).
fn value(cfg: &BrokerConfig, listener: &str, key: &str) -> Option<String> {
    cfg.listener_value(listener, key).filter(|v| !v.is_empty())
}

/// The server's key and chain: `ssl.keystore.location` (one PEM with both) or the inline pair.
fn keystore(
    cfg: &BrokerConfig,
    listener: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let ty = value(cfg, listener, "ssl.keystore.type").unwrap_or_default();
    if !ty.eq_ignore_ascii_case("PEM") {
        bail!("ssl.keystore.type is {ty:?}: Cairn reads PEM keystores only (set ssl.keystore.type=PEM)");
    }
    if value(cfg, listener, "ssl.key.password").is_some() {
        bail!("ssl.key.password: encrypted private keys are not supported; give an unencrypted PEM key");
    }
    match (
        value(cfg, listener, "ssl.keystore.location"),
        value(cfg, listener, "ssl.keystore.key"),
        value(cfg, listener, "ssl.keystore.certificate.chain"),
    ) {
        (Some(path), None, None) => {
            let text = read_text("ssl.keystore.location", &path)?;
            let key_name = format!("ssl.keystore.location ({path})");
            Ok((certs(&key_name, &text)?, private_key(&key_name, &text)?))
        }
        (None, Some(k), Some(chain)) => Ok((
            certs("ssl.keystore.certificate.chain", &chain)?,
            private_key("ssl.keystore.key", &k)?,
        )),
        (None, None, None) => {
            bail!("listener {listener} uses TLS but neither ssl.keystore.location nor ssl.keystore.key/ssl.keystore.certificate.chain is set")
        }
        _ => bail!(
            "give either ssl.keystore.location or both ssl.keystore.key and ssl.keystore.certificate.chain, not a mix"
        ),
    }
}

fn truststore(cfg: &BrokerConfig, listener: &str) -> anyhow::Result<Option<RootCertStore>> {
    let pem = match (
        value(cfg, listener, "ssl.truststore.location"),
        value(cfg, listener, "ssl.truststore.certificates"),
    ) {
        (Some(path), None) => read_text("ssl.truststore.location", &path)?,
        (None, Some(inline)) => inline,
        (None, None) => return Ok(None),
        _ => bail!("give either ssl.truststore.location or ssl.truststore.certificates, not both"),
    };
    let ty = value(cfg, listener, "ssl.truststore.type").unwrap_or_default();
    if !ty.eq_ignore_ascii_case("PEM") {
        bail!("ssl.truststore.type is {ty:?}: Cairn reads PEM truststores only (set ssl.truststore.type=PEM)");
    }
    let mut roots = RootCertStore::empty();
    for c in certs("ssl.truststore", &pem)? {
        roots
            .add(c)
            .map_err(|e| anyhow!("ssl.truststore: unusable CA certificate: {e}"))?;
    }
    Ok(Some(roots))
}

/// `ssl.client.auth` for a listener. As in Kafka, a SASL_SSL listener takes it only from its
/// own `listener.name.<name>.ssl.client.auth`: the global value is for SSL listeners.
pub fn client_auth(cfg: &BrokerConfig, listener: &str, sasl: bool) -> ClientAuth {
    let v = if sasl {
        cfg.listener_value_own(listener, "ssl.client.auth")
    } else {
        value(cfg, listener, "ssl.client.auth")
    };
    match v.as_deref() {
        Some("required") => ClientAuth::Required,
        Some("requested") => ClientAuth::Requested,
        _ => ClientAuth::None,
    }
}

/// The TLS configuration of one listener (or, with `listener` = "", the global `ssl.*`).
pub fn server_config(
    cfg: &BrokerConfig,
    listener: &str,
    sasl: bool,
) -> anyhow::Result<Arc<ServerConfig>> {
    build(cfg, listener, client_auth(cfg, listener, sasl))
}

/// The HTTP listener's TLS (`cairn.http.ssl.enabled`): the broker's own `ssl.keystore.*`, no
/// client certificates (HTTP clients authenticate with Basic credentials).
pub fn http_server_config(cfg: &BrokerConfig) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    if cfg.get("cairn.http.ssl.enabled").as_deref() != Some("true") {
        return Ok(None);
    }
    build(cfg, "", ClientAuth::None)
        .map(Some)
        .context("cairn.http.ssl.enabled")
}

fn build(
    cfg: &BrokerConfig,
    listener: &str,
    auth: ClientAuth,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let protocols = value(cfg, listener, "ssl.enabled.protocols").unwrap_or_default();
    let mut versions = Vec::new();
    for p in protocols.split(',').map(str::trim) {
        match p {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            other => {
                bail!("ssl.enabled.protocols: {other:?} is not offered (TLSv1.2 and TLSv1.3 only)")
            }
        }
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| anyhow!("ssl.enabled.protocols: {e}"))?;
    let roots = truststore(cfg, listener)?;
    let builder = match (auth, roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => bail!(
            "ssl.client.auth is set on listener {listener} but no ssl.truststore.location gives the CAs of client certificates"
        ),
        (auth, Some(roots)) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::Requested {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| anyhow!("ssl.truststore: cannot verify clients: {e}"))?,
            )
        }
    };
    let (chain, key) = keystore(cfg, listener)?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("ssl.keystore: the key does not fit the certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// Kafka's DEFAULT principal for a certificate: `User:` and the subject in RFC 2253 form (the
/// most specific name first, as Java's `X500Principal.getName()` writes it).
pub fn principal_from_cert(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                _ => oid,
            };
            let value = attr.as_str().map(escape_rdn_value).unwrap_or_else(|_| {
                // RFC 2253: a value without a string form is `#` and its DER in hex.
                let mut s = String::from("#");
                for b in attr.attr_value().as_bytes() {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            });
            parts.push(format!("{name}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(format!("User:{}", rdns.join(",")))
}

fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_line_breaks_is_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let flat = cert.pem().replace('\n', " ");
        assert_eq!(certs("x", &flat).unwrap().len(), 1);
        let flat_key = key.serialize_pem().replace('\n', "");
        assert!(private_key("x", &flat_key).is_ok());
        assert!(certs("x", "garbage").is_err());
        assert!(private_key("x", "no key here").is_err());
        assert!(private_key(
            "x",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
        )
        .is_err());
    }

    #[test]
    fn certificate_subject_is_kafkas_principal() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "cairn");
        dn.push(rcgen::DnType::OrganizationalUnitName, "test");
        dn.push(rcgen::DnType::CommonName, "alice, the first");
        p.distinguished_name = dn;
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            principal_from_cert(cert.der()).as_deref(),
            Some("User:CN=alice\\, the first,OU=test,O=cairn")
        );
        assert_eq!(principal_from_cert(b"not a certificate"), None);
    }
}
