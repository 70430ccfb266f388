//! Coordination of tests that use the local RabbitMQ.
//!
//! `crates/trove-rpc/tests/amqp_restart.rs` stops and starts the broker. Every test that
//! uses RabbitMQ (in any crate) should hold [`broker_lock_shared`] for its duration; the
//! restart test holds [`broker_lock_exclusive`]. The lock is a file lock, so it works
//! across the threads of `cargo test` and the processes of `cargo nextest`.

use std::fs::File;
use std::path::PathBuf;

/// Path of the lock file (in the system temp dir).
pub fn broker_lock_path() -> PathBuf {
    std::env::temp_dir().join("trove-rpc-rabbitmq-tests.lock")
}

/// A held broker lock; released on drop.
#[derive(Debug)]
pub struct BrokerTestLock {
    _file: File,
}

fn open() -> std::io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(broker_lock_path())
}

/// Shared lock: any number of RabbitMQ tests at once, never during a broker restart.
pub fn broker_lock_shared() -> std::io::Result<BrokerTestLock> {
    let f = open()?;
    f.lock_shared()?;
    Ok(BrokerTestLock { _file: f })
}

/// Exclusive lock: for a test that stops or restarts the broker.
pub fn broker_lock_exclusive() -> std::io::Result<BrokerTestLock> {
    let f = open()?;
    f.lock()?;
    Ok(BrokerTestLock { _file: f })
}
