//! The generated sample trove.conf.

use trove_config::{sample_config, Config, WarningKind};

#[test]
fn loading_the_sample_gives_the_defaults() {
    let sample = sample_config();
    let loaded = Config::from_ini_str("trove.conf.sample", &sample).unwrap();
    assert_eq!(loaded.warnings, vec![]);
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn sample_lists_every_group_and_option_with_type_default_and_help() {
    let sample = sample_config();
    assert!(sample.starts_with("[DEFAULT]\n"));
    for group in [
        "[DEFAULT]",
        "[database]",
        "[keystone_authtoken]",
        "[service_credentials]",
        "[oslo_messaging_rabbit]",
        "[oslo_messaging_notifications]",
        "[oslo_policy]",
        "[network]",
        "[guest_agent]",
        "[upgrade_levels]",
        "[instance_ports_cache]",
        "[cache]",
        "[mysql]",
        "[mariadb]",
        "[postgresql]",
    ] {
        assert!(
            sample.contains(&format!("\n{group}\n")) || sample.starts_with(group),
            "{group}"
        );
    }
    for line in [
        "#max_instances_per_tenant = 10\n",
        "#max_backups_per_tenant = 50\n",
        "#enable_secure_rpc_messaging = true\n",
        // Secrets are shown with their defaults, as oslo-config-generator does.
        "#taskmanager_rpc_encr_key = bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz\n",
        "#transport_url = rabbit://\n",
        "#control_exchange = openstack\n",
        "#connection = sqlite://\n",
        "#instance_rpc_encr_key = <None>\n",
        "#management_networks =\n",
        "#trove_api_workers = <number of CPUs>\n",
        "#default_password_length = ${mysql.default_password_length}\n",
        "#backup_docker_image = your-registry/your-repo/db-backup-postgresql\n",
        "#tcp_ports = 3306,4444,4567,4568\n",
        "# Type: integer\n",
        "# Type: port number\n# Minimum value: 1\n# Maximum value: 65535\n#bind_port = 8779\n",
        "# Allowed values: ext3, ext4, xfs\n#volume_fstype = ext4\n",
        "# Deprecated group/name - [DEFAULT]/max_instances_per_user\n#max_instances_per_tenant = 10\n",
        "# Deprecated group/name - [DEFAULT]/trove_auth_url\n#auth_url = https://0.0.0.0/identity/v3\n",
        "# Deprecated group/name - [DEFAULT]/default_neutron_networks\n",
        "# This option is deprecated for removal.\n#admin_roles =\n",
    ] {
        assert!(sample.contains(line), "missing {line:?}");
    }
    // Help text is wrapped.
    let long: Vec<&str> = sample
        .lines()
        .filter(|l| l.starts_with("# ") && !l.starts_with("# Deprecated") && l.len() > 70)
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn uncommenting_a_sample_line_sets_the_option() {
    let sample = sample_config().replace(
        "#max_instances_per_tenant = 10",
        "max_instances_per_tenant = 11",
    );
    let loaded = Config::from_ini_str("t.conf", &sample).unwrap();
    assert_eq!(loaded.config.default.max_instances_per_tenant, 11);
    assert!(!loaded
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::UnknownOption));
}

#[test]
fn trove_genconfig_writes_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("trove.conf.sample");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_trove-genconfig"))
        .arg("--output-file")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), sample_config());
}
