//! cairn-log
