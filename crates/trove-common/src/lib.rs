//! Shared building blocks: RPC encryption primitive, ids, time formats.
