//! trove-manage: operator commands (db_sync, datastores, validation rules, flavors).
