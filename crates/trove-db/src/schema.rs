//! The control database schema, described once and rendered per backend.
//!
//! Tables, columns, types and constraint names follow Trove's schema at its alembic head
//! (see the module head of [`crate::migrate`]); the only additions are the
//! `trove_schema_version` bookkeeping table, our `flavors` table for the local compute
//! driver, our `instance_addresses` table and one nullable column of ours on `backups`
//! (`fault_message`, see [`backup_fault_message_column`]). Type mapping: `Str(n)` VARCHAR(n); `Bool` TINYINT(1) on MySQL, BOOLEAN elsewhere;
//! `DateTime` DATETIME on MySQL/SQLite, TIMESTAMP WITHOUT TIME ZONE on PostgreSQL (values are
//! naive UTC); `Double` DOUBLE / DOUBLE PRECISION / REAL (Trove's `Float` columns are stored
//! with double precision on every backend so reads return what was written).

use crate::db::Backend;
use crate::migrate::Step;

/// Generic column types.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str(u32),
    Text,
    LongText,
    Int,
    Bool,
    DateTime,
    Double,
}

#[derive(Debug, Clone)]
pub(crate) struct Col {
    name: &'static str,
    ty: Ty,
    not_null: bool,
    default: Option<&'static str>,
}

fn c(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        not_null: false,
        default: None,
    }
}
fn nn(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        not_null: true,
        default: None,
    }
}
impl Col {
    fn default(mut self, d: &'static str) -> Col {
        self.default = Some(d);
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Fk {
    name: &'static str,
    cols: &'static [&'static str],
    table: &'static str,
    ref_cols: &'static [&'static str],
    cascade: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    cols: Vec<Col>,
    pk: &'static [&'static str],
    uniques: Vec<(&'static str, &'static [&'static str])>,
    indexes: Vec<(&'static str, &'static [&'static str])>,
    fks: Vec<Fk>,
}

impl Table {
    fn new(name: &'static str, pk: &'static [&'static str], cols: Vec<Col>) -> Table {
        Table {
            name,
            cols,
            pk,
            uniques: vec![],
            indexes: vec![],
            fks: vec![],
        }
    }
    fn unique(mut self, name: &'static str, cols: &'static [&'static str]) -> Table {
        self.uniques.push((name, cols));
        self
    }
    fn index(mut self, name: &'static str, cols: &'static [&'static str]) -> Table {
        self.indexes.push((name, cols));
        self
    }
    fn fk(
        mut self,
        name: &'static str,
        cols: &'static [&'static str],
        table: &'static str,
        ref_cols: &'static [&'static str],
        cascade: bool,
    ) -> Table {
        self.fks.push(Fk {
            name,
            cols,
            table,
            ref_cols,
            cascade,
        });
        self
    }

    /// CREATE TABLE plus its indexes, each with the statement undoing it (for MySQL).
    pub(crate) fn create(&self, b: Backend) -> Vec<Step> {
        let q = |s: &str| quote(b, s);
        let ql = |cols: &[&str]| {
            cols.iter()
                .map(|s| quote(b, s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts: Vec<String> = self
            .cols
            .iter()
            .map(|col| {
                let mut s = format!("{} {}", q(col.name), render_ty(b, col.ty));
                if col.not_null {
                    s.push_str(" NOT NULL");
                }
                if let Some(d) = col.default {
                    s.push_str(" DEFAULT ");
                    s.push_str(d);
                }
                s
            })
            .collect();
        parts.push(format!("PRIMARY KEY ({})", ql(self.pk)));
        for (name, cols) in &self.uniques {
            parts.push(format!("CONSTRAINT {} UNIQUE ({})", q(name), ql(cols)));
        }
        for fk in &self.fks {
            let mut s = format!(
                "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                q(fk.name),
                ql(fk.cols),
                q(fk.table),
                ql(fk.ref_cols)
            );
            if fk.cascade {
                s.push_str(" ON DELETE CASCADE ON UPDATE CASCADE");
            }
            parts.push(s);
        }
        let suffix = if b == Backend::MySql {
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        } else {
            ""
        };
        let mut steps = vec![Step::new(
            format!(
                "CREATE TABLE {} (\n  {}\n){suffix}",
                q(self.name),
                parts.join(",\n  ")
            ),
            Some(format!("DROP TABLE {}", q(self.name))),
        )];
        for (name, cols) in &self.indexes {
            // The table's own DROP undoes its indexes; no separate down statement needed
            // beyond dropping the index before the table.
            steps.push(Step::new(
                format!(
                    "CREATE INDEX {} ON {} ({})",
                    q(name),
                    q(self.name),
                    ql(cols)
                ),
                Some(match b {
                    Backend::MySql => format!("DROP INDEX {} ON {}", q(name), q(self.name)),
                    _ => format!("DROP INDEX {}", q(name)),
                }),
            ));
        }
        steps
    }
}

impl Col {
    /// `ALTER TABLE .. ADD COLUMN` for a nullable column (no default), with the statement
    /// dropping it again (for MySQL's undo).
    pub(crate) fn add_to(&self, b: Backend, table: &str) -> Step {
        assert!(
            !self.not_null && self.default.is_none(),
            "only nullable columns without default are added to existing tables"
        );
        let (t, c) = (quote(b, table), quote(b, self.name));
        Step::new(
            format!("ALTER TABLE {t} ADD COLUMN {c} {}", render_ty(b, self.ty)),
            Some(format!("ALTER TABLE {t} DROP COLUMN {c}")),
        )
    }
}

/// Quotes an identifier for a backend.
pub(crate) fn quote(b: Backend, ident: &str) -> String {
    match b {
        Backend::MySql => format!("`{ident}`"),
        _ => format!("\"{ident}\""),
    }
}

fn render_ty(b: Backend, t: Ty) -> String {
    match (b, t) {
        (_, Ty::Str(n)) => format!("VARCHAR({n})"),
        (_, Ty::Text) => "TEXT".into(),
        (Backend::MySql, Ty::LongText) => "LONGTEXT".into(),
        (_, Ty::LongText) => "TEXT".into(),
        (Backend::MySql, Ty::Int) => "INT".into(),
        (_, Ty::Int) => "INTEGER".into(),
        (Backend::MySql, Ty::Bool) => "TINYINT(1)".into(),
        (_, Ty::Bool) => "BOOLEAN".into(),
        (Backend::Postgres, Ty::DateTime) => "TIMESTAMP WITHOUT TIME ZONE".into(),
        (_, Ty::DateTime) => "DATETIME".into(),
        (Backend::MySql, Ty::Double) => "DOUBLE".into(),
        (Backend::Postgres, Ty::Double) => "DOUBLE PRECISION".into(),
        (Backend::Sqlite, Ty::Double) => "REAL".into(),
    }
}

use Ty::*;

const ID: &[&str] = &["id"];

/// Trove's tables at alembic head (`95418fe2a1c8`), in creation order (referenced first).
pub(crate) fn trove_tables() -> Vec<Table> {
    vec![
        Table::new(
            "datastores",
            ID,
            vec![
                nn("id", Str(36)),
                c("name", Str(255)),
                c("default_version_id", Str(36)),
            ],
        )
        .unique("name", &["name"]),
        Table::new(
            "datastore_versions",
            ID,
            vec![
                nn("id", Str(36)),
                c("datastore_id", Str(36)),
                c("name", Str(255)),
                c("image_id", Str(36)),
                c("packages", Str(511)),
                nn("active", Bool),
                c("manager", Str(255)),
                c("image_tags", Str(255)),
                c("version", Str(255)),
                nn("registry_ext", Text),
                nn("repl_strategy", Text),
            ],
        )
        .unique("ds_versions", &["datastore_id", "name", "version"])
        .fk(
            "datastore_versions_ibfk_1",
            &["datastore_id"],
            "datastores",
            ID,
            false,
        ),
        Table::new(
            "datastore_version_metadata",
            ID,
            vec![
                nn("id", Str(36)),
                c("datastore_version_id", Str(36)),
                nn("key", Str(128)),
                c("value", Str(128)),
                nn("created", DateTime),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
                c("updated_at", DateTime),
            ],
        )
        .unique(
            "UQ_datastore_version_metadata_datastore_version_id_key_value",
            &["datastore_version_id", "key", "value"],
        )
        .fk(
            "datastore_version_metadata_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            true,
        ),
        Table::new(
            "datastore_configuration_parameters",
            &["id", "name", "datastore_version_id"],
            vec![
                nn("id", Str(36)),
                nn("name", Str(128)),
                nn("datastore_version_id", Str(36)),
                nn("restart_required", Bool).default("FALSE"),
                c("max_size", Str(40)),
                c("min_size", Str(40)),
                nn("data_type", Str(128)),
            ],
        )
        .unique(
            "UQ_datastore_configuration_parameters_datastore_version_id_name",
            &["datastore_version_id", "name"],
        )
        .fk(
            "datastore_configuration_parameters_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            false,
        ),
        Table::new(
            "capabilities",
            ID,
            vec![
                nn("id", Str(36)),
                c("name", Str(255)),
                nn("description", Str(255)),
                c("enabled", Bool),
            ],
        )
        .unique("capabilities_name", &["name"]),
        Table::new(
            "capability_overrides",
            ID,
            vec![
                nn("id", Str(36)),
                c("datastore_version_id", Str(36)),
                c("capability_id", Str(36)),
                c("enabled", Bool),
            ],
        )
        .unique(
            "idx_datastore_capabilities_enabled",
            &["datastore_version_id", "capability_id"],
        )
        .fk(
            "capability_overrides_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            false,
        )
        .fk(
            "capability_overrides_ibfk_2",
            &["capability_id"],
            "capabilities",
            ID,
            false,
        ),
        Table::new(
            "configurations",
            ID,
            vec![
                nn("id", Str(36)),
                nn("name", Str(64)),
                c("description", Str(256)),
                nn("tenant_id", Str(36)),
                nn("datastore_version_id", Str(36)),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
                c("created", DateTime),
                c("updated", DateTime),
            ],
        ),
        Table::new(
            "configuration_parameters",
            &["configuration_id", "configuration_key"],
            vec![
                nn("configuration_id", Str(36)),
                nn("configuration_key", Str(128)),
                c("configuration_value", Str(128)),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
            ],
        )
        .fk(
            "configuration_parameters_ibfk_1",
            &["configuration_id"],
            "configurations",
            ID,
            false,
        ),
        Table::new(
            "clusters",
            ID,
            vec![
                nn("id", Str(36)),
                nn("created", DateTime),
                nn("updated", DateTime),
                nn("name", Str(255)),
                nn("task_id", Int),
                nn("tenant_id", Str(36)),
                nn("datastore_version_id", Str(36)),
                c("deleted", Bool),
                c("deleted_at", DateTime),
                c("configuration_id", Str(36)),
            ],
        )
        .index("clusters_tenant_id", &["tenant_id"])
        .index("clusters_deleted", &["deleted"])
        .fk(
            "clusters_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            false,
        )
        .fk(
            "clusters_ibfk_2",
            &["configuration_id"],
            "configurations",
            ID,
            false,
        ),
        Table::new(
            "instances",
            ID,
            vec![
                nn("id", Str(36)),
                c("created", DateTime),
                c("updated", DateTime),
                c("name", Str(255)),
                c("hostname", Str(255)),
                c("compute_instance_id", Str(36)),
                c("task_id", Int),
                c("task_description", Str(255)),
                c("task_start_time", DateTime),
                c("volume_id", Str(36)),
                c("flavor_id", Str(255)),
                c("volume_size", Int),
                c("tenant_id", Str(36)),
                c("server_status", Str(64)),
                c("deleted", Bool),
                c("deleted_at", DateTime),
                c("datastore_version_id", Str(36)),
                c("configuration_id", Str(36)),
                c("slave_of_id", Str(36)),
                c("cluster_id", Str(36)),
                c("shard_id", Str(36)),
                c("type", Str(64)),
                c("region_id", Str(255)),
                c("encrypted_key", Str(255)),
                c("access", Text),
                c("ssl_mode", Str(16)),
                c("ssl_ref", Text),
            ],
        )
        .index("instances_tenant_id", &["tenant_id"])
        .index("instances_deleted", &["deleted"])
        .index("instances_cluster_id", &["cluster_id"])
        .fk(
            "instances_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            false,
        )
        .fk(
            "instances_ibfk_2",
            &["configuration_id"],
            "configurations",
            ID,
            false,
        )
        .fk("instances_ibfk_3", &["slave_of_id"], "instances", ID, false)
        .fk("instances_ibfk_4", &["cluster_id"], "clusters", ID, false),
        Table::new(
            "service_statuses",
            ID,
            vec![
                nn("id", Str(36)),
                nn("instance_id", Str(36)),
                nn("status_id", Int),
                nn("status_description", Str(64)),
                c("updated_at", DateTime),
            ],
        )
        .index("service_statuses_instance_id", &["instance_id"]),
        Table::new(
            "instance_faults",
            ID,
            vec![
                nn("id", Str(64)),
                nn("instance_id", Str(64)),
                nn("message", Str(255)),
                nn("details", Text),
                nn("created", DateTime),
                nn("updated", DateTime),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
            ],
        )
        .fk(
            "instance_faults_ibfk_1",
            &["instance_id"],
            "instances",
            ID,
            true,
        ),
        Table::new(
            "root_enabled_history",
            ID,
            vec![
                nn("id", Str(36)),
                c("user", Str(255)),
                c("created", DateTime),
                c("deleted_at", DateTime),
            ],
        ),
        Table::new(
            "conductor_lastseen",
            &["instance_id", "method_name"],
            vec![
                nn("instance_id", Str(36)),
                nn("method_name", Str(36)),
                c("sent", Double),
            ],
        ),
        Table::new(
            "agent_heartbeats",
            ID,
            vec![
                nn("id", Str(36)),
                nn("instance_id", Str(36)),
                c("guest_agent_version", Str(255)),
                c("deleted", Bool),
                c("deleted_at", DateTime),
                nn("updated_at", DateTime),
            ],
        )
        .unique("agent_heartbeats_instance_id", &["instance_id"])
        .index(
            "agent_heartbeats_guest_agent_version",
            &["guest_agent_version"],
        )
        .index("agent_heartbeats_deleted", &["deleted"]),
        Table::new(
            "backups",
            ID,
            vec![
                nn("id", Str(36)),
                nn("name", Str(255)),
                c("description", Str(512)),
                c("location", Str(1024)),
                c("backup_type", Str(32)),
                c("size", Double),
                c("tenant_id", Str(36)),
                nn("state", Str(32)),
                c("instance_id", Str(36)),
                c("checksum", Str(32)),
                c("backup_timestamp", DateTime),
                c("deleted", Bool).default("FALSE"),
                c("created", DateTime),
                c("updated", DateTime),
                c("deleted_at", DateTime),
                c("parent_id", Str(36)),
                c("datastore_version_id", Str(36)),
                c("storage_driver", Text),
            ],
        )
        .index("backups_instance_id", &["instance_id"])
        .index("backups_deleted", &["deleted"])
        .fk(
            "backups_ibfk_1",
            &["datastore_version_id"],
            "datastore_versions",
            ID,
            false,
        ),
        Table::new(
            "backup_strategy",
            ID,
            vec![
                nn("id", Str(36)),
                nn("tenant_id", Str(36)),
                nn("instance_id", Str(36)).default("''"),
                nn("backend", Str(255)),
                c("swift_container", Str(255)),
                c("created", DateTime),
            ],
        )
        .unique(
            "UQ_backup_strategy_tenant_id_instance_id",
            &["tenant_id", "instance_id"],
        )
        .index(
            "backup_strategy_tenant_id_instance_id",
            &["tenant_id", "instance_id"],
        ),
        Table::new(
            "quotas",
            ID,
            vec![
                nn("id", Str(36)),
                c("created", DateTime),
                c("updated", DateTime),
                c("tenant_id", Str(36)),
                nn("resource", Str(255)),
                c("hard_limit", Int),
            ],
        )
        .unique("quotas_tenant_id_resource", &["tenant_id", "resource"]),
        Table::new(
            "quota_usages",
            ID,
            vec![
                nn("id", Str(36)),
                c("created", DateTime),
                c("updated", DateTime),
                c("tenant_id", Str(36)),
                c("in_use", Int).default("0"),
                c("reserved", Int).default("0"),
                nn("resource", Str(255)),
            ],
        )
        .unique(
            "quota_usages_tenant_id_resource",
            &["tenant_id", "resource"],
        ),
        Table::new(
            "reservations",
            ID,
            vec![
                c("created", DateTime),
                c("updated", DateTime),
                nn("id", Str(36)),
                c("usage_id", Str(36)),
                nn("delta", Int),
                c("status", Str(36)),
            ],
        ),
        Table::new(
            "modules",
            ID,
            vec![
                nn("id", Str(64)),
                nn("name", Str(255)),
                nn("type", Str(255)),
                nn("contents", LongText),
                c("description", Str(255)),
                c("tenant_id", Str(64)),
                c("datastore_id", Str(64)),
                c("datastore_version_id", Str(64)),
                nn("auto_apply", Bool).default("FALSE"),
                nn("visible", Bool).default("TRUE"),
                nn("live_update", Bool).default("FALSE"),
                nn("md5", Str(32)),
                nn("created", DateTime),
                nn("updated", DateTime),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
                nn("priority_apply", Bool).default("FALSE"),
                nn("apply_order", Int).default("5"),
                nn("is_admin", Bool).default("FALSE"),
            ],
        )
        .unique(
            "UQ_type_tenant_datastore_datastore_version_name",
            &[
                "type",
                "tenant_id",
                "datastore_id",
                "datastore_version_id",
                "name",
                "deleted_at",
            ],
        ),
        Table::new(
            "instance_modules",
            ID,
            vec![
                nn("id", Str(64)),
                nn("instance_id", Str(64)),
                nn("module_id", Str(64)),
                nn("md5", Str(32)),
                nn("created", DateTime),
                nn("updated", DateTime),
                nn("deleted", Bool).default("FALSE"),
                c("deleted_at", DateTime),
            ],
        )
        .fk(
            "instance_modules_ibfk_1",
            &["instance_id"],
            "instances",
            ID,
            true,
        )
        .fk(
            "instance_modules_ibfk_2",
            &["module_id"],
            "modules",
            ID,
            true,
        ),
        Table::new(
            "dns_records",
            &["name"],
            vec![nn("name", Str(255)), c("record_id", Str(64))],
        ),
        Table::new(
            "alembic_version",
            &["version_num"],
            vec![nn("version_num", Str(32))],
        ),
    ]
}

/// Our own table for flavors served by the local compute driver.
pub(crate) fn flavors_table() -> Table {
    Table::new(
        "flavors",
        ID,
        vec![
            nn("id", Str(255)),
            nn("name", Str(255)),
            nn("ram", Int),
            nn("vcpus", Int),
            nn("disk", Int),
            nn("ephemeral", Int).default("0"),
            c("created", DateTime),
            c("updated", DateTime),
            nn("deleted", Bool).default("FALSE"),
            c("deleted_at", DateTime),
        ],
    )
    .index("flavors_name", &["name"])
}

/// Our own table of the addresses the taskmanager learned for each instance (Python Trove
/// asks Nova on every show; we store them so reads work with any compute driver).
pub(crate) fn instance_addresses_table() -> Table {
    Table::new(
        "instance_addresses",
        &["instance_id", "address"],
        vec![
            nn("instance_id", Str(36)),
            nn("address", Str(64)),
            nn("type", Str(16)).default("'private'"),
            c("network", Str(255)),
            c("created", DateTime),
        ],
    )
    .index("instance_addresses_instance_id", &["instance_id"])
}

/// Our own column on Trove's `backups`: why a backup failed, in words a tenant can read
/// (the API shows it as the backup's `fault`). Nullable, so Trove's code, which does not
/// know it, keeps inserting rows.
pub(crate) fn backup_fault_message_column() -> Col {
    c("fault_message", Text)
}

/// Every table we create, in creation order (drop in reverse).
pub(crate) fn all_table_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = trove_tables().iter().map(|t| t.name).collect();
    v.push("flavors");
    v.push("instance_addresses");
    v
}
