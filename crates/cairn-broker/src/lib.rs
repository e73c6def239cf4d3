//! The Kafka wire edge of Cairn: a TCP server that frames requests, negotiates versions, decodes
//! them with the `kafka-protocol` crate and hands each API family to its handler module.
//!
//! Arrows point one way: handlers call into `cairn-log` (and later the group coordinator); nothing
//! below this crate knows about sockets or Kafka error codes.

mod dynamic_config;
mod errors;
mod flusher;
mod groups;
mod handlers;
mod internal_topics;
mod lag;
mod limits;
mod metrics;
mod quotas;
mod security;
mod server;
mod state;
mod topics_view;
mod txns;
mod versions;
mod view;
pub mod wire;

pub use security::tls::http_server_config;
pub use server::{Broker, BrokerOptions};
pub use versions::SUPPORTED;
