//! trove.conf: oslo.config-style INI loading, Trove's option groups and defaults, sample generation.
