//! Pinned defaults: every value Trove (and the oslo libraries) document, and the
//! operator's-guide fixture.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use trove_config::{load, Config, ConfigSources, PortRange};

fn ports(list: &[(u16, u16)]) -> Vec<PortRange> {
    list.iter()
        .map(|&(start, end)| PortRange { start, end })
        .collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn production_guide_options_have_troves_defaults() {
    let d = Config::default().default;
    assert!(d.enable_secure_rpc_messaging);
    assert_eq!(
        d.taskmanager_rpc_encr_key.expose_secret(),
        "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz"
    );
    assert_eq!(
        d.inst_rpc_key_encr_key.expose_secret(),
        "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP"
    );
    assert_eq!(d.instance_rpc_encr_key, None);
    assert_eq!(d.management_networks, Vec::<String>::new());
    assert_eq!(d.management_security_groups, Vec::<String>::new());
    assert_eq!(d.cinder_volume_type, None);
    assert_eq!(d.nova_keypair, None);
    assert_eq!(d.default_datastore, None);
    assert_eq!(d.max_accepted_volume_size, 10);
    assert_eq!(d.max_instances_per_tenant, 10);
    assert_eq!(d.max_backups_per_tenant, 50);
    assert_eq!(d.max_ram_per_tenant, -1);
    assert_eq!(d.max_volumes_per_tenant, 40);
    assert_eq!(d.transport_url.expose_secret(), "rabbit://");
    assert_eq!(d.control_exchange, "openstack");
    assert_eq!(d.reboot_time_out, 120);
    assert_eq!(d.usage_timeout, 1800);
    assert_eq!(d.restore_usage_timeout, 3600);
    assert_eq!(d.agent_call_high_timeout, 180);
    assert_eq!(d.agent_call_low_timeout, 15);
    assert_eq!(d.database_service_uid, "1001");
    assert_eq!(d.rpc_response_timeout, 60);
    assert_eq!(d.default_locality, None);
}

#[test]
fn api_and_service_defaults() {
    let d = Config::default().default;
    assert_eq!(d.bind_host, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(d.bind_port, 8779);
    assert_eq!(d.host, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(d.api_paste_config, "api-paste.ini");
    let cpus = std::thread::available_parallelism().unwrap().get() as i64;
    assert_eq!(d.trove_api_workers, cpus);
    assert_eq!(d.trove_conductor_workers, cpus);
    assert_eq!(d.taskmanager_queue, "taskmanager");
    assert_eq!(d.conductor_queue, "trove-conductor");
    assert_eq!(d.taskmanager_manager, "trove.taskmanager.manager.Manager");
    assert_eq!(d.report_interval, 30);
    assert_eq!(d.region, "LOCAL_DEV");
    assert_eq!(
        [
            d.http_get_rate,
            d.http_post_rate,
            d.http_put_rate,
            d.http_delete_rate,
            d.http_mgmt_post_rate
        ],
        [200; 5]
    );
    assert_eq!(d.max_header_line, 16384);
    assert_eq!(d.instances_page_size, 20);
    assert_eq!(d.modules_page_size, 20);
    assert_eq!(d.root_grant, strs(&["ALL"]));
    assert!(d.root_grant_option && d.hostname_require_valid_ip);
    assert_eq!(d.expected_filetype_suffixes, strs(&["json"]));
    assert_eq!(d.exists_notification_interval, 3600);
    assert_eq!(d.quota_notification_interval, None);
    assert_eq!(d.notification_service_id.len(), 12);
    assert_eq!(
        d.notification_service_id["mysql"],
        "2f3ff068-2bfb-4f70-9a9d-a6bb65bc084b"
    );
    assert_eq!(
        d.notification_service_id["postgresql"],
        "ac277e0d-4f21-40aa-b347-1ea31e571720"
    );
    assert_eq!(d.auth_strategy, "noauth");
    assert!(!d.debug);
    assert_eq!(d.log_file, None);
}

#[test]
fn guest_compute_and_backup_defaults() {
    let d = Config::default().default;
    assert_eq!(d.agent_heartbeat_expiry, 90);
    assert_eq!(d.usage_sleep_time, 5);
    assert_eq!(d.state_change_wait_time, 180);
    assert_eq!(d.command_process_timeout, 30);
    assert_eq!(d.datastore_registry_ext, BTreeMap::new());
    assert_eq!(d.guest_config, "/etc/trove/trove-guestagent.conf");
    assert_eq!(d.injected_config_location, "/etc/trove/conf.d");
    assert_eq!(d.nova_client_version, "2.57");
    assert_eq!(d.cinder_service_type, "volumev3");
    assert_eq!(d.swift_endpoint_type, "publicURL");
    assert_eq!(d.nova_compute_url, None);
    assert_eq!(d.trove_security_group_name_prefix, "trove_sg");
    assert_eq!(d.volume_fstype, "ext4");
    assert_eq!(d.format_options, "-m 5");
    assert_eq!(d.mount_options, "defaults,noatime");
    assert_eq!(d.resize_time_out, 900);
    assert_eq!(d.cluster_usage_timeout, 36000);
    assert_eq!(d.dns_ttl, 300);
    assert_eq!(d.storage_strategy, "swift");
    assert_eq!(d.replica_snapshot_driver, None);
    assert_eq!(d.backup_swift_container, "database_backups");
    assert_eq!(d.backup_segment_max_size, 2_147_483_648);
    assert_eq!(d.module_types, strs(&["ping", "new_relic_license"]));
    assert_eq!(d.guest_log_expiry, 2_592_000);
}

#[test]
fn other_group_defaults() {
    let c = Config::default();
    assert_eq!(c.database.connection.expose_secret(), "sqlite://");
    assert_eq!(
        (
            c.database.max_pool_size,
            c.database.max_overflow,
            c.database.pool_timeout,
            c.database.connection_recycle_time,
            c.database.max_retries,
            c.database.retry_interval
        ),
        (5, 50, None, 3600, 10, 10)
    );
    let k = &c.keystone_authtoken;
    assert_eq!(k.www_authenticate_uri, None);
    assert_eq!(k.password, None);
    assert!(k.include_service_catalog);
    assert!(!k.delay_auth_decision && !k.insecure && !k.service_token_roles_required);
    assert_eq!(k.token_cache_time, 300);
    let s = &c.service_credentials;
    assert_eq!(s.auth_url, "https://0.0.0.0/identity/v3");
    assert_eq!(s.username, "");
    assert!(s.password.is_empty());
    assert_eq!(s.user_domain_name, "Default");
    assert_eq!(s.project_domain_name, "Default");
    assert_eq!(s.region_name, "RegionOne");
    assert_eq!(c.network.public_network_id, None);
    assert!(c.network.enable_access_check && c.network.network_isolation);
    assert_eq!(c.guest_agent.container_registry, None);
    assert_eq!(c.upgrade_levels.taskmanager, "latest");
    assert_eq!(c.upgrade_levels.guestagent, "latest");
    assert_eq!(c.upgrade_levels.conductor, "latest");
    assert_eq!(c.instance_ports_cache.expiration_time, 86400);
    assert!(c.instance_ports_cache.caching);
    assert!(!c.cache.enabled);
    let r = &c.oslo_messaging_rabbit;
    assert!(!r.amqp_durable_queues && !r.amqp_auto_delete && !r.rabbit_ha_queues);
    assert!(!r.rabbit_quorum_queue && !r.rabbit_transient_quorum_queue && !r.ssl);
    assert_eq!(r.rabbit_transient_queues_ttl, 1800);
    assert_eq!(r.rabbit_qos_prefetch_count, 0);
    assert_eq!((r.heartbeat_timeout_threshold, r.heartbeat_rate), (60, 3));
    assert!(r.direct_mandatory_flag);
    assert_eq!(r.kombu_missing_consumer_retry_timeout, 60);
    assert_eq!(r.rabbit_login_method, "AMQPLAIN");
    assert_eq!(
        (
            r.rabbit_retry_interval,
            r.rabbit_retry_backoff,
            r.rabbit_interval_max
        ),
        (1, 2, 30)
    );
    assert_eq!(r.rpc_conn_pool_size, 30);
    assert_eq!(r.kombu_reconnect_delay, 1.0);
    assert_eq!(c.oslo_policy.policy_file, "policy.yaml");
}

#[test]
fn datastore_group_defaults() {
    let c = Config::default();
    let my = c.datastore("mysql").unwrap();
    let ma = c.datastore("mariadb").unwrap();
    let pg = c.datastore("postgresql").unwrap();
    assert!(c.datastore("percona").is_none());

    assert_eq!(
        (
            my.docker_image.as_str(),
            ma.docker_image.as_str(),
            pg.docker_image.as_str()
        ),
        ("mysql", "mariadb", "postgres")
    );
    assert_eq!(my.backup_docker_image, None);
    assert_eq!(my.backup_strategy.as_deref(), Some("innobackupex"));
    assert_eq!(ma.backup_strategy.as_deref(), Some("mariabackup"));
    assert_eq!(pg.backup_strategy.as_deref(), Some("pg_basebackup"));
    assert_eq!(
        ma.replication_strategy.as_deref(),
        Some("MariaDBGTIDReplication")
    );
    assert_eq!(
        pg.replication_strategy.as_deref(),
        Some("PostgresqlReplicationStreaming")
    );
    assert_eq!(my.tcp_ports, ports(&[(3306, 3306)]));
    assert_eq!(
        ma.tcp_ports,
        ports(&[(3306, 3306), (4444, 4444), (4567, 4567), (4568, 4568)])
    );
    assert_eq!(pg.tcp_ports, ports(&[(5432, 5432)]));
    assert!(my.udp_ports.is_empty() && pg.udp_ports.is_empty());
    assert!(my.volume_support && pg.volume_support);
    assert_eq!(my.device_path, "/dev/vdb");
    assert_eq!(ma.mount_point, "/var/lib/mysql");
    assert_eq!(pg.mount_point, "/var/lib/postgresql");
    assert!(!my.root_on_create);
    assert_eq!((my.usage_timeout, pg.usage_timeout), (Some(400), None));
    assert_eq!(my.ignore_users, strs(&["os_admin", "root"]));
    assert_eq!(pg.ignore_users, strs(&["os_admin", "postgres"]));
    assert_eq!(
        my.ignore_dbs,
        strs(&["mysql", "information_schema", "performance_schema", "sys"])
    );
    assert_eq!(
        ma.ignore_dbs,
        strs(&["mysql", "information_schema", "performance_schema"])
    );
    assert_eq!(pg.guest_log_exposed_logs, strs(&["general"]));
    assert_eq!(
        (my.guest_log_long_query_time, pg.guest_log_long_query_time),
        (1000, 0)
    );
    assert_eq!(
        (
            my.default_password_length,
            ma.default_password_length,
            pg.default_password_length
        ),
        (36, 36, 36)
    );
    assert_eq!(my.database_service_uname, "database");
    assert_eq!(my.database_service_uid, None);
    assert_eq!((pg.postgresql_port, my.postgresql_port), (Some(5432), None));
    assert_eq!(pg.enable_clean_wal_archives, Some(true));
    assert_eq!((ma.cluster_support, my.cluster_support), (Some(true), None));
    assert_eq!(ma.min_cluster_member_count, Some(3));
}

#[test]
fn operator_guide_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trove.conf");
    let loaded = load(&ConfigSources::none().file(&path)).unwrap();
    assert_eq!(
        loaded.warnings,
        vec![],
        "the fixture uses only known options"
    );
    let c = loaded.config;
    let d = &c.default;
    assert_eq!(d.host, "10.0.0.11".parse::<IpAddr>().unwrap());
    assert_eq!(d.trove_api_workers, 5);
    assert_eq!(
        d.transport_url.expose_secret(),
        "rabbit://trove:RABBIT_PASS@10.0.0.11:5672/"
    );
    assert_eq!(d.control_exchange, "trove");
    assert_eq!(
        d.management_networks,
        strs(&["ef7541ad-9599-4285-878a-e0ab62032b03"])
    );
    assert_eq!(d.nova_keypair.as_deref(), Some("trove-mgmt"));
    assert_eq!(d.cinder_volume_type.as_deref(), Some("lvmdriver-1"));
    assert_eq!(d.default_datastore.as_deref(), Some("mysql"));
    assert!(d.enable_secure_rpc_messaging);
    assert_eq!(
        (d.reboot_time_out, d.usage_timeout, d.restore_usage_timeout),
        (300, 900, 1800)
    );
    assert_eq!(
        (d.agent_call_high_timeout, d.agent_call_low_timeout),
        (1200, 30)
    );
    assert_eq!(
        (
            d.max_accepted_volume_size,
            d.max_instances_per_tenant,
            d.max_backups_per_tenant
        ),
        (100, 20, 100)
    );
    assert_eq!(d.volume_fstype, "xfs");
    // Options the fixture leaves out keep their defaults.
    assert_eq!(d.max_ram_per_tenant, -1);
    assert_eq!(d.resize_time_out, 900);
    assert_eq!(
        c.database.connection.expose_secret(),
        "mysql+pymysql://trove:TROVE_DBPASS@10.0.0.11/trove?charset=utf8"
    );
    assert_eq!(c.database.max_pool_size, 20);
    assert_eq!(c.database.max_overflow, 50);
    assert_eq!(c.keystone_authtoken.auth_type.as_deref(), Some("password"));
    assert_eq!(
        c.keystone_authtoken
            .password
            .as_ref()
            .unwrap()
            .expose_secret(),
        "TROVE_PASS"
    );
    assert_eq!(
        c.keystone_authtoken.memcached_servers,
        strs(&["10.0.0.11:11211"])
    );
    assert!(c.keystone_authtoken.service_token_roles_required);
    assert_eq!(c.service_credentials.username, "trove");
    assert_eq!(c.service_credentials.project_name, "service");
    assert!(c.oslo_messaging_rabbit.rabbit_quorum_queue);
    assert_eq!(c.oslo_policy.policy_file, "/etc/trove/policy.yaml");
    let ma = c.datastore("mariadb").unwrap();
    assert_eq!(ma.tcp_ports, ports(&[(3306, 3306), (4444, 4445)]));
    assert_eq!(ma.default_password_length, 24);
    assert_eq!(
        c.datastore("mysql").unwrap().backup_docker_image.as_deref(),
        Some("registry.example.com/trove/db-backup-mysql:1.1.0")
    );
}
