//! Control database: schema migrations for SQLite, MariaDB/MySQL and PostgreSQL, repositories, quota engine.
