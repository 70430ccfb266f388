//! Shared building blocks: RPC encryption primitive, ids, time formats.
//!
//! * [`crypto`]: Trove's AES-256-CBC RPC encryption primitive and per-instance key helpers.

pub mod crypto;
