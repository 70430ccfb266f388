//! trove-guestagent: the per-instance agent that runs and administers a real database server (MariaDB, PostgreSQL) for its instance.
