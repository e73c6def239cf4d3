//! SaslHandshake and SaslAuthenticate: the SASL exchange that gives a connection its principal,
//! and its renewal (KIP-368). Kafka's order: ApiVersions may come first, then SaslHandshake
//! names a mechanism, then SaslAuthenticate carries the mechanism's tokens (one round for PLAIN,
//! two for SCRAM). A failure is answered, delayed, logged and closes the connection.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::{sb, Ctx};
use crate::errors::Code;
use crate::security::{AuthState, Mechanism, Session};

/// What a client learns of a failed authentication: nothing about which part was wrong.
const FAILED: &str = "Authentication failed: Invalid username or password";

pub async fn handshake(
    ctx: &Ctx,
    session: &mut Session,
    req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let offered = session
        .listener
        .mechanisms
        .iter()
        .map(|m| sb(m.name()))
        .collect::<Vec<_>>();
    let resp = SaslHandshakeResponse::default().with_mechanisms(offered);
    let reauth = match &session.auth {
        AuthState::Handshake { reauth } => *reauth,
        // Renewing the session (KIP-368) starts over with a handshake on the same connection.
        AuthState::Done { .. } => true,
        // No SASL on this listener, or a handshake in the middle of an exchange.
        _ => {
            session.close_after_reply = matches!(
                session.auth,
                AuthState::Authenticate { .. } | AuthState::Scram { .. }
            );
            return resp.with_error_code(Code::IllegalSaslState.code());
        }
    };
    let wanted = req.mechanism.as_str();
    match session
        .listener
        .mechanisms
        .iter()
        .find(|m| m.name() == wanted)
    {
        Some(m) => {
            session.auth = AuthState::Authenticate {
                mechanism: *m,
                reauth,
            };
            // v0: the tokens follow as bare frames, not inside SaslAuthenticate.
            session.raw_tokens = ctx.version == 0;
            resp
        }
        None => {
            tracing::info!(peer = %ctx.peer, listener = %session.listener.name, mechanism = wanted, "SASL mechanism not enabled on this listener; closing connection");
            session.close_after_reply = true;
            resp.with_error_code(Code::UnsupportedSaslMechanism.code())
        }
    }
}

pub async fn authenticate(
    ctx: &Ctx,
    session: &mut Session,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let sec = &ctx.state.security;
    let ip = ctx.peer.ip();
    let state = std::mem::replace(&mut session.auth, AuthState::Handshake { reauth: false });
    let (outcome, reauth) = match state {
        AuthState::Authenticate { mechanism, reauth } => {
            if let Some(d) = sec.attempt_delay(ip) {
                tokio::time::sleep(d).await;
            }
            match mechanism {
                Mechanism::Plain => (plain(session, &req.auth_bytes), reauth),
                Mechanism::Scram(m) => {
                    let mut server = Box::new(cairn_auth::ScramServer::new(m));
                    let first =
                        server.client_first(&req.auth_bytes, |user| sec.scram_credential(user, m));
                    match first {
                        Ok(reply) => {
                            session.auth = AuthState::Scram { server, reauth };
                            return SaslAuthenticateResponse::default()
                                .with_auth_bytes(Bytes::from(reply));
                        }
                        Err(e) => (Err((e.client_message(m), e.to_string())), reauth),
                    }
                }
            }
        }
        AuthState::Scram { mut server, reauth } => (
            server
                .client_final(&req.auth_bytes)
                .map(|(reply, user)| (format!("User:{user}"), reply))
                .map_err(|e| (e.client_message(server.mechanism()), e.to_string())),
            reauth,
        ),
        other => {
            // Not in an exchange: Kafka answers ILLEGAL_SASL_STATE and closes.
            let open = matches!(other, AuthState::Open);
            session.auth = other;
            session.close_after_reply = !open;
            return SaslAuthenticateResponse::default()
                .with_error_code(Code::IllegalSaslState.code())
                .with_error_message(Some(sb("SaslAuthenticate is not expected now")));
        }
    };
    match outcome {
        Ok((principal, reply)) => {
            if reauth && *principal != *session.principal {
                // Kafka refuses a renewal that changes who the connection is.
                let why = "Cannot change principals during re-authentication".to_string();
                return fail(ctx, session, (why.clone(), why)).await;
            }
            let lifetime = sec.reauth;
            session.principal = principal.into();
            session.auth = AuthState::Done {
                expires: lifetime.map(|d| Instant::now() + d),
            };
            tracing::debug!(peer = %ctx.peer, principal = %session.principal, reauth, "SASL authentication succeeded");
            SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::from(reply))
                .with_session_lifetime_ms(lifetime.map_or(0, |d| d.as_millis() as i64))
        }
        Err(why) => fail(ctx, session, why).await,
    }
}

/// One token of an exchange begun with SaslHandshake v0: the frame is the bare token and the
/// answer is the bare reply (size-prefixed). A failure closes the connection without an answer,
/// as Kafka does in this mode.
pub async fn raw_token(
    ctx: &Ctx,
    session: &mut Session,
    token: bytes::Bytes,
) -> anyhow::Result<bytes::BytesMut> {
    use bytes::BufMut;
    let resp = authenticate(
        ctx,
        session,
        SaslAuthenticateRequest::default().with_auth_bytes(token),
    )
    .await;
    if resp.error_code != 0 {
        anyhow::bail!(
            "SASL authentication failed: {}",
            resp.error_message.as_deref().unwrap_or("")
        );
    }
    if matches!(session.auth, AuthState::Done { .. }) {
        session.raw_tokens = false;
    }
    let mut out = bytes::BytesMut::with_capacity(4 + resp.auth_bytes.len());
    out.put_i32(resp.auth_bytes.len() as i32);
    out.extend_from_slice(&resp.auth_bytes);
    Ok(out)
}

/// PLAIN's one round: the token names the user and carries the password. An error is (what
/// the client is told, what the log says).
fn plain(session: &Session, token: &[u8]) -> Result<(String, Vec<u8>), (String, String)> {
    let (user, password) =
        cairn_auth::parse_plain(token).map_err(|e| (e.to_string(), e.to_string()))?;
    let ok = session
        .listener
        .plain_users
        .get(&user)
        .is_some_and(|p| cairn_auth::constant_time_eq(p.as_bytes(), password.as_bytes()));
    if ok {
        Ok((format!("User:{user}"), Vec::new()))
    } else {
        Err((
            FAILED.to_string(),
            format!("wrong password or unknown user {user:?}"),
        ))
    }
}

async fn fail(
    ctx: &Ctx,
    session: &mut Session,
    (told, why): (String, String),
) -> SaslAuthenticateResponse {
    let sec = &ctx.state.security;
    sec.record_failure(ctx.peer.ip());
    if let Some(held_back) = sec.log_failed.check() {
        tracing::warn!(peer = %ctx.peer, listener = %session.listener.name, reason = %why, held_back, "SASL authentication failed; closing connection");
    }
    // Kafka's connection.failed.authentication.delay.ms slows down password guessing.
    tokio::time::sleep(sec.fail_delay).await;
    session.close_after_reply = true;
    SaslAuthenticateResponse::default()
        .with_error_code(Code::SaslAuthenticationFailed.code())
        .with_error_message(Some(sb(told)))
}
