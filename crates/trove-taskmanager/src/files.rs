//! What the taskmanager writes for a guest: the injected configuration files (spec:
//! internals-workflows §2.3) and the datastore's base configuration rendered from a
//! template for the flavor (§2.2 step 6).

use std::path::{Path, PathBuf};

use serde_json::json;
use trove_compute::InjectedFile;
use trove_config::Config;

use crate::error::{Result, TaskError};

/// Everything the injected files say about one instance.
#[derive(Clone)]
pub struct GuestInfo<'a> {
    /// Instance id.
    pub instance_id: &'a str,
    /// Datastore manager.
    pub datastore_manager: &'a str,
    /// Datastore version number.
    pub datastore_version: &'a str,
    /// Project.
    pub tenant_id: &'a str,
    /// Plain per-instance RPC key, if the instance has one.
    pub rpc_key: Option<&'a str>,
    /// The guest's own `transport_url` (its dedicated broker user), if any.
    pub transport_url: Option<String>,
}

fn conf_dir(config: &Config) -> String {
    config
        .default
        .injected_config_location
        .trim_end_matches('/')
        .to_string()
}

/// The files for a guest: `guest_info.conf` (Trove's keys) and `trove-guestagent.conf`,
/// the operator's guest configuration (`[DEFAULT] guest_config`) with the instance's own
/// messaging settings appended (later values win in oslo.config files).
pub fn injected_files(config: &Config, info: &GuestInfo<'_>) -> Result<Vec<InjectedFile>> {
    let dir = conf_dir(config);
    let d = &config.default;
    let guest_info_path = if d.guest_info.contains('/') {
        d.guest_info.clone()
    } else {
        format!("{dir}/{}", d.guest_info)
    };
    let mut gi = format!(
        "[DEFAULT]\nguest_id = {}\ndatastore_manager = {}\ndatastore_version = {}\ntenant_id = {}\n",
        info.instance_id, info.datastore_manager, info.datastore_version, info.tenant_id
    );
    if let Some(k) = info.rpc_key {
        gi.push_str(&format!("instance_rpc_encr_key = {k}\n"));
    }
    let mut files = vec![InjectedFile {
        path: guest_info_path,
        content: gi,
    }];

    let operator = match std::fs::read_to_string(&d.guest_config) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(TaskError::Invalid(format!(
                "cannot read the guest configuration {}: {e}",
                d.guest_config
            )))
        }
    };
    let mut agent = operator;
    if !agent.is_empty() && !agent.ends_with('\n') {
        agent.push('\n');
    }
    agent.push_str("\n# Set for this instance by trove-taskmanager.\n[DEFAULT]\n");
    agent.push_str(&format!(
        "control_exchange = {}\nconductor_queue = {}\nreport_interval = {}\n",
        d.control_exchange, d.conductor_queue, d.report_interval
    ));
    if let Some(url) = &info.transport_url {
        agent.push_str(&format!("transport_url = {url}\n"));
    }
    files.push(InjectedFile {
        path: format!("{dir}/trove-guestagent.conf"),
        content: agent,
    });
    Ok(files)
}

/// The built-in configuration template of a datastore manager.
fn builtin_template(manager: &str) -> Option<&'static str> {
    match manager {
        "mariadb" | "mysql" => Some(include_str!("../templates/mariadb.config.template")),
        "postgresql" => Some(include_str!("../templates/postgresql.config.template")),
        _ => None,
    }
}

/// Trove's search order for `config.template` under `template_path`:
/// `<ds name>/<version>/`, `<ds name>/<major>.<minor>/`, `<ds name>/<major>/`,
/// `<ds name>/`, `<manager>/`.
fn template_candidates(root: &Path, ds_name: &str, version: &str, manager: &str) -> Vec<PathBuf> {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next();
    let mut dirs = vec![root.join(ds_name).join(version)];
    if let Some(minor) = minor {
        dirs.push(root.join(ds_name).join(format!("{major}.{minor}")));
    }
    if !major.is_empty() {
        dirs.push(root.join(ds_name).join(major));
    }
    dirs.push(root.join(ds_name));
    dirs.push(root.join(manager));
    dirs.into_iter()
        .map(|d| d.join("config.template"))
        .collect()
}

/// What a configuration template is rendered for.
#[derive(Debug, Clone)]
pub struct TemplateContext<'a> {
    /// Datastore name.
    pub datastore_name: &'a str,
    /// Datastore manager.
    pub manager: &'a str,
    /// Datastore version number.
    pub version: &'a str,
    /// Flavor id.
    pub flavor_id: &'a str,
    /// Flavor name.
    pub flavor_name: &'a str,
    /// Flavor RAM in MB.
    pub ram_mb: i64,
    /// Instance id (its digits give `server_id`).
    pub instance_id: &'a str,
}

/// A stable positive 32-bit number from the instance id (MySQL's `server_id`).
fn server_id(instance_id: &str) -> u32 {
    let digest = trove_common::crypto::md5_hex(instance_id);
    u32::from_str_radix(&digest[..7], 16).unwrap_or(1).max(1)
}

/// Renders the base configuration for `ctx`: the operator's template under
/// `[DEFAULT] template_path` if one matches, else the built-in one. Templates are Jinja
/// with Trove's variables `flavor` (`ram`, `name`, `id`), `datastore` (`name`, `manager`,
/// `version`, `semantic_version`) and `server_id`.
pub fn render_config(config: &Config, ctx: &TemplateContext<'_>) -> Result<String> {
    let root = Path::new(&config.default.template_path);
    let mut source = None;
    for path in template_candidates(root, ctx.datastore_name, ctx.version, ctx.manager) {
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                source = Some((s, path.display().to_string()));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(TaskError::Invalid(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        }
    }
    let (text, name) = match source {
        Some(s) => s,
        None => (
            builtin_template(ctx.manager)
                .ok_or_else(|| {
                    TaskError::Invalid(format!(
                        "no configuration template for datastore manager '{}'",
                        ctx.manager
                    ))
                })?
                .to_string(),
            format!("built-in {} template", ctx.manager),
        ),
    };
    let env = minijinja::Environment::new();
    let vars = json!({
        "flavor": {"id": ctx.flavor_id, "name": ctx.flavor_name, "ram": ctx.ram_mb},
        "datastore": {
            "name": ctx.datastore_name, "manager": ctx.manager,
            "version": ctx.version, "semantic_version": ctx.version,
        },
        "server_id": server_id(ctx.instance_id),
    });
    env.render_str(&text, vars)
        .map_err(|e| TaskError::Invalid(format!("configuration template {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(ram: i64, manager: &'static str) -> TemplateContext<'static> {
        TemplateContext {
            datastore_name: manager,
            manager,
            version: "10.11.19",
            flavor_id: "2",
            flavor_name: "small",
            ram_mb: ram,
            instance_id: "f5a1c0de-0000-4000-8000-000000000001",
        }
    }

    #[test]
    fn builtin_templates_scale_with_the_flavor() {
        let cfg = Config::default();
        let small = render_config(&cfg, &ctx(512, "mariadb")).unwrap();
        let big = render_config(&cfg, &ctx(8192, "mariadb")).unwrap();
        assert!(small.contains("innodb_buffer_pool_size = 256M"), "{small}");
        assert!(big.contains("innodb_buffer_pool_size = 4096M"), "{big}");
        assert!(small.contains("max_connections = 100"));
        assert!(big.contains("max_connections = 1600"));
        let pg = render_config(&cfg, &ctx(1024, "postgresql")).unwrap();
        assert!(pg.contains("shared_buffers = 256MB"), "{pg}");
        assert!(render_config(&cfg, &ctx(512, "cassandra")).is_err());
    }

    #[test]
    fn operator_templates_win_in_trove_search_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.default.template_path = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("mariadb/10.11")).unwrap();
        std::fs::write(
            dir.path().join("mariadb/10.11/config.template"),
            "[mysqld]\ninnodb_buffer_pool_size = {{ flavor.ram // 4 }}M\n",
        )
        .unwrap();
        let out = render_config(&cfg, &ctx(1024, "mariadb")).unwrap();
        assert_eq!(out, "[mysqld]\ninnodb_buffer_pool_size = 256M");
        std::fs::write(
            dir.path().join("mariadb/10.11/config.template"),
            "{{ broken",
        )
        .unwrap();
        let e = render_config(&cfg, &ctx(1024, "mariadb")).unwrap_err();
        assert!(e.to_string().contains("config.template"), "{e}");
    }

    #[test]
    fn guest_files_carry_identity_key_and_messaging() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        let op = dir.path().join("trove-guestagent.conf");
        std::fs::write(
            &op,
            "[DEFAULT]\ntransport_url = rabbit://shared:pw@h:5672/\ndebug = true",
        )
        .unwrap();
        cfg.default.guest_config = op.display().to_string();
        let info = GuestInfo {
            instance_id: "i-1",
            datastore_manager: "mariadb",
            datastore_version: "10.11",
            tenant_id: "p1",
            rpc_key: Some("k3y"),
            transport_url: Some("rabbit://guest-i-1:s3cret@h:5672/".into()),
        };
        let files = injected_files(&cfg, &info).unwrap();
        assert_eq!(files[0].path, "/etc/trove/conf.d/guest_info.conf");
        assert!(files[0].content.contains("guest_id = i-1\n"));
        assert!(files[0].content.contains("instance_rpc_encr_key = k3y\n"));
        assert_eq!(files[1].path, "/etc/trove/conf.d/trove-guestagent.conf");
        // The guest's own user is read after the operator's shared one, so it wins.
        let loaded = Config::from_ini_str("trove-guestagent.conf", &files[1].content)
            .unwrap()
            .config;
        assert_eq!(
            loaded.default.transport_url.expose_secret(),
            "rabbit://guest-i-1:s3cret@h:5672/"
        );
        assert!(loaded.default.debug);
    }
}
