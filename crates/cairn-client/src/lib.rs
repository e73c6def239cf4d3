//! cairn-client
