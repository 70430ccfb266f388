//! File discovery and precedence, deprecated names, interpolation and warnings.

use std::fs;
use std::path::Path;

use clap::Parser;
use trove_config::{load, Config, ConfigArgs, ConfigSources, WarningKind, DEFAULT_CONFIG_FILE};

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

#[test]
fn later_files_override_earlier_and_dirs_come_last_sorted_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.conf");
    let b = tmp.path().join("b.conf");
    let dir = tmp.path().join("conf.d");
    fs::create_dir(&dir).unwrap();
    write(
        &a,
        "[DEFAULT]\nmax_instances_per_tenant = 1\nmax_backups_per_tenant = 1\n\
         usage_timeout = 1\nreboot_time_out = 1\n[database]\nmax_pool_size = 1\n",
    );
    write(
        &b,
        "[DEFAULT]\nmax_backups_per_tenant = 2\nusage_timeout = 2\nreboot_time_out = 2\n",
    );
    // Sorted by name: 10-x before 20-y, whatever the creation order.
    write(&dir.join("20-y.conf"), "[DEFAULT]\nreboot_time_out = 4\n");
    write(
        &dir.join("10-x.conf"),
        "[DEFAULT]\nusage_timeout = 3\nreboot_time_out = 3\n",
    );
    write(
        &dir.join("99-ignored.txt"),
        "[DEFAULT]\nreboot_time_out = 99\n",
    );

    // The directory is given first on purpose: files still come first.
    let sources = ConfigSources::none().dir(&dir).file(&a).file(&b);
    assert_eq!(
        sources.paths().unwrap(),
        vec![
            a.clone(),
            b.clone(),
            dir.join("10-x.conf"),
            dir.join("20-y.conf")
        ]
    );
    let cfg = load(&sources).unwrap().config;
    assert_eq!(cfg.default.max_instances_per_tenant, 1); // only in a
    assert_eq!(cfg.default.max_backups_per_tenant, 2); // b over a
    assert_eq!(cfg.default.usage_timeout, 3); // dir over files
    assert_eq!(cfg.default.reboot_time_out, 4); // 20-y over 10-x
    assert_eq!(cfg.database.max_pool_size, 1);
    assert_eq!(cfg.default.max_volumes_per_tenant, 40); // nowhere: default
}

#[test]
fn last_assignment_in_a_file_wins() {
    let cfg = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\nusage_timeout = 1\n[database]\n[DEFAULT]\nusage_timeout = 2\n",
    )
    .unwrap()
    .config;
    assert_eq!(cfg.default.usage_timeout, 2);
}

#[test]
fn in_memory_sources_override_in_order() {
    let cfg = Config::from_ini_strs(&[
        ("one", "[DEFAULT]\nusage_timeout = 1\nreboot_time_out = 1\n"),
        ("two", "[DEFAULT]\nusage_timeout = 2\n"),
    ])
    .unwrap()
    .config;
    assert_eq!(
        (cfg.default.usage_timeout, cfg.default.reboot_time_out),
        (2, 1)
    );
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[test]
fn command_line_flags() {
    let cli = Cli::try_parse_from([
        "trove-api",
        "--config-file",
        "/etc/trove/trove.conf",
        "--config-dir",
        "/etc/trove/conf.d",
        "--config-file",
        "/etc/trove/extra.conf",
    ])
    .unwrap();
    let sources = cli.config.sources();
    assert_eq!(
        sources.files,
        vec![
            Path::new("/etc/trove/trove.conf").to_path_buf(),
            Path::new("/etc/trove/extra.conf").to_path_buf()
        ]
    );
    assert_eq!(
        sources.dirs,
        vec![Path::new("/etc/trove/conf.d").to_path_buf()]
    );

    // No flag: the default file when it exists, else nothing (all defaults).
    let sources = Cli::try_parse_from(["trove-api"]).unwrap().config.sources();
    if Path::new(DEFAULT_CONFIG_FILE).is_file() {
        assert_eq!(
            sources.files,
            vec![Path::new(DEFAULT_CONFIG_FILE).to_path_buf()]
        );
    } else {
        assert_eq!(sources, ConfigSources::none());
        assert_eq!(load(&sources).unwrap().config, Config::default());
    }
}

#[test]
fn deprecated_names_apply_with_a_warning() {
    let loaded = Config::from_ini_str(
        "old.conf",
        "[DEFAULT]\n\
         max_instances_per_user = 7\n\
         max_backups_per_user = 8\n\
         max_volumes_per_user = 9\n\
         default_neutron_networks = net-1\n\
         trove_auth_url = http://keystone:5000/v3\n\
         nova_proxy_admin_user = admin\n\
         nova_proxy_admin_pass = secret\n\
         nova_proxy_admin_tenant_name = services\n\
         os_region_name = RegionTwo\n\
         sql_connection = postgresql://trove@db/trove\n",
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.default.max_instances_per_tenant, 7);
    assert_eq!(c.default.max_backups_per_tenant, 8);
    assert_eq!(c.default.max_volumes_per_tenant, 9);
    assert_eq!(c.default.management_networks, vec!["net-1".to_string()]);
    assert_eq!(c.service_credentials.auth_url, "http://keystone:5000/v3");
    assert_eq!(c.service_credentials.username, "admin");
    assert_eq!(c.service_credentials.password.expose_secret(), "secret");
    assert_eq!(c.service_credentials.project_name, "services");
    assert_eq!(c.service_credentials.region_name, "RegionTwo");
    assert_eq!(
        c.database.connection.expose_secret(),
        "postgresql://trove@db/trove"
    );

    let messages: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(messages.len(), 10, "{messages:#?}");
    assert!(messages.contains(
        &"old.conf: [DEFAULT] max_instances_per_user: deprecated name, use [DEFAULT] \
          max_instances_per_tenant"
            .to_string()
    ));
    assert!(messages.contains(
        &"old.conf: [DEFAULT] trove_auth_url: deprecated name, use [service_credentials] auth_url"
            .to_string()
    ));
    assert!(loaded
        .warnings
        .iter()
        .all(|w| matches!(w.kind, WarningKind::DeprecatedName { .. })));
}

#[test]
fn current_name_wins_over_deprecated_name_in_the_same_file() {
    let cfg = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\nmax_instances_per_tenant = 3\nmax_instances_per_user = 4\n",
    )
    .unwrap()
    .config;
    assert_eq!(cfg.default.max_instances_per_tenant, 3);
}

#[test]
fn deprecated_name_in_a_later_file_overrides() {
    let cfg = Config::from_ini_strs(&[
        ("new.conf", "[DEFAULT]\nmax_instances_per_tenant = 3\n"),
        ("old.conf", "[DEFAULT]\nmax_instances_per_user = 4\n"),
    ])
    .unwrap()
    .config;
    assert_eq!(cfg.default.max_instances_per_tenant, 4);
}

#[test]
fn unknown_options_and_groups_warn_but_load() {
    let loaded = Config::from_ini_str(
        "/etc/trove/trove.conf",
        "[DEFAULT]\n\
         max_instances_per_tenant = 5\n\
         no_such_option = 1\n\
         no_such_option = 2\n\
         [percona]\n\
         tcp_ports = 3306\n\
         [profiler]\n\
         enabled = true\n\
         [mysql]\n\
         mystery = 1\n",
    )
    .unwrap();
    assert_eq!(loaded.config.default.max_instances_per_tenant, 5);
    let messages: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        messages,
        vec![
            "/etc/trove/trove.conf: [DEFAULT] no_such_option: unknown option, ignored",
            "/etc/trove/trove.conf: [percona]: datastore not supported by Trove-rs, group ignored",
            "/etc/trove/trove.conf: [profiler]: unknown group, ignored",
            "/etc/trove/trove.conf: [mysql] mystery: unknown option, ignored",
        ]
    );
    assert_eq!(loaded.warnings[0].line, 3);
    assert_eq!(loaded.warnings[0].kind, WarningKind::UnknownOption);
    assert_eq!(loaded.warnings[1].kind, WarningKind::UnsupportedDatastore);
    assert_eq!(loaded.warnings[2].kind, WarningKind::UnknownGroup);
}

#[test]
fn options_of_other_datastores_are_unknown_in_a_datastore_group() {
    let loaded = Config::from_ini_str("t.conf", "[mysql]\npostgresql_port = 5433\n").unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].kind, WarningKind::UnknownOption);
    assert_eq!(loaded.config.mysql.postgresql_port, None);
}

#[test]
fn removal_deprecated_options_warn() {
    let loaded = Config::from_ini_str("t.conf", "[DEFAULT]\nadmin_roles = admin\n").unwrap();
    assert_eq!(loaded.config.default.admin_roles, vec!["admin".to_string()]);
    assert_eq!(
        loaded.warnings[0].to_string(),
        "t.conf: [DEFAULT] admin_roles: option is deprecated for removal"
    );
}

#[test]
fn default_group_name_is_case_insensitive_others_are_not() {
    let loaded = Config::from_ini_str(
        "t.conf",
        "[default]\nusage_timeout = 5\n[Database]\nmax_pool_size = 9\n",
    )
    .unwrap();
    assert_eq!(loaded.config.default.usage_timeout, 5);
    assert_eq!(loaded.config.database.max_pool_size, 5);
    assert_eq!(loaded.warnings[0].kind, WarningKind::UnknownGroup);
}

#[test]
fn interpolation() {
    // [mariadb] default_password_length defaults to ${mysql.default_password_length}.
    let c = Config::from_ini_str("t.conf", "[mysql]\ndefault_password_length = 20\n")
        .unwrap()
        .config;
    assert_eq!(c.mariadb.default_password_length, 20);
    assert_eq!(c.postgresql.default_password_length, 36);

    let c = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\n\
         host = 10.1.2.3\n\
         public_endpoint = http://${host}:$bind_port/\n\
         nova_keypair = key-$$-${DEFAULT.region}-$\n\
         region = $control_exchange\n\
         cinder_volume_type = ${database.max_pool_size}x$guest_id-\n\
         [keystone_authtoken]\n\
         www_authenticate_uri = http://$host/identity\n\
         auth_url = ${www_authenticate_uri}/v3\n",
    )
    .unwrap()
    .config;
    assert_eq!(
        c.default.public_endpoint.as_deref(),
        Some("http://10.1.2.3:8779/")
    );
    assert_eq!(c.default.nova_keypair.as_deref(), Some("key-$-openstack-$"));
    // An unset option substitutes as the empty string.
    assert_eq!(c.default.cinder_volume_type.as_deref(), Some("5x-"));
    // `$host` in another group falls back to [DEFAULT].
    assert_eq!(
        c.keystone_authtoken.auth_url.as_deref(),
        Some("http://10.1.2.3/identity/v3")
    );
}

#[test]
fn guest_agent_config_dir() {
    // What the taskmanager injects into a guest: read with --config-dir, sorted by name.
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("guest_info.conf"),
        "[DEFAULT]\n\
         guest_id = 5f1c7e3a-0d8e-4a3b-9a43-4d2a0c9d6a11\n\
         datastore_manager = mariadb\n\
         datastore_version = 10.11\n\
         tenant_id = 8d2c9f5e2a2d4a53b1ad0bb1b4b3f1aa\n\
         datastore_registry_ext = mariadb:trove.guestagent.datastore.mariadb.manager.Manager\n\
         replication_strategy = trove.guestagent.strategies.replication.mariadb_gtid.MariaDBGTIDReplication\n\
         network_isolation = True\n\
         instance_rpc_encr_key = per-instance-key\n",
    );
    write(
        &tmp.path().join("trove-guestagent.conf"),
        "[DEFAULT]\n\
         log_dir = /var/log/trove/\n\
         log_file = trove-guestagent.log\n\
         transport_url = rabbit://trove:pw@192.168.254.1:5672/\n\
         control_exchange = trove\n\
         command_process_timeout = 60\n\
         [mariadb]\n\
         docker_image = registry.example.com/mariadb\n\
         [guest_agent]\n\
         container_registry = registry.example.com\n",
    );
    let loaded = load(&ConfigSources::none().dir(tmp.path())).unwrap();
    assert_eq!(loaded.warnings, vec![]);
    let c = loaded.config;
    assert_eq!(c.default.datastore_manager.as_deref(), Some("mariadb"));
    assert_eq!(c.default.network_isolation, Some(true));
    assert_eq!(
        c.default
            .instance_rpc_encr_key
            .as_ref()
            .map(|k| k.expose_secret()),
        Some("per-instance-key")
    );
    assert_eq!(c.default.command_process_timeout, 60);
    assert_eq!(
        c.datastore("mariadb").unwrap().docker_image,
        "registry.example.com/mariadb"
    );
}
