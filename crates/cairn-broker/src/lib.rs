//! cairn-broker
