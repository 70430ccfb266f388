//! PostgreSQL manager.
