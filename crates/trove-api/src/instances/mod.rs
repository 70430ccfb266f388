//! Instance rules that are not HTTP: the user-facing status derivation and the state
//! gates of api-statuses.md. Pure functions over stored states, tested by tables.

pub mod request;
pub mod status;
