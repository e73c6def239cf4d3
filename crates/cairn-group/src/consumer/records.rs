//! Kafka's `__consumer_offsets` records of consumer groups (key types 3 to 8).
