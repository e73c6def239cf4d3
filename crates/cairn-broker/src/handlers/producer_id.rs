//! InitProducerId: hands idempotent producers a producer id; transactional ones are served by
//! the transaction coordinator (`txn.rs`).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use cairn_auth::{Operation, ResourceType};

use super::Ctx;
use crate::errors::{store_error_code, Code};
use crate::security::CLUSTER;

pub async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(txn) = &req.transactional_id {
        if txn.0.is_empty() {
            // Kafka's answer to an empty transactional id.
            return failed(Code::InvalidRequest.code());
        }
        if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, &txn.0) {
            return failed(Code::TransactionalIdAuthorizationFailed.code());
        }
        return super::txn::init_producer_id(ctx, &req, &txn.0).await;
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic
    // (implied since Kafka 3.0).
    let sec = &ctx.state.security;
    if !ctx.may(Operation::IdempotentWrite, ResourceType::Cluster, CLUSTER)
        && !sec.allowed_any(
            &ctx.principal,
            &ctx.peer.ip(),
            Operation::Write,
            ResourceType::Topic,
        )
    {
        ctx.allowed_cluster(Operation::IdempotentWrite); // the audit line
        return failed(Code::ClusterAuthorizationFailed.code());
    }
    // Non-transactional: like Kafka's TransactionCoordinator, always a fresh id with epoch 0,
    // whatever id and epoch a v3+ request carries. Clients send -1 here (Java bumps an idempotent
    // producer's epoch locally, librdkafka asks for a new id), and a fresh id is always safe:
    // no partition knows it, so its first batch is accepted with any sequence.
    let store = ctx.state.store.clone();
    let id = match tokio::task::spawn_blocking(move || store.next_producer_id()).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => {
            tracing::error!("cannot reserve producer ids: {e}");
            return failed(store_error_code(&e));
        }
        Err(e) => {
            tracing::error!("producer id allocation panicked: {e}");
            return failed(Code::UnknownServerError.code());
        }
    };
    tracing::debug!(peer = %ctx.peer, client = %ctx.client_id, producer_id = id, "producer id allocated");
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(0)
}
