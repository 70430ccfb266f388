//! Glue shared by the service binaries: logging set-up and configuration loading.
