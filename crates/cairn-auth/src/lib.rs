//! Who a client is and what it may do: SASL mechanisms (PLAIN, SCRAM-SHA-256/512), SCRAM
//! credentials, and Kafka's ACL model with its authorizer. No sockets, no clocks.
