//! Option types: accepted syntax and rejected values, with their error messages.

use std::collections::BTreeMap;
use std::net::IpAddr;

use trove_config::{Config, PortRange};

fn cfg(text: &str) -> Config {
    Config::from_ini_str("t.conf", text).unwrap().config
}

fn err(text: &str) -> String {
    Config::from_ini_str("t.conf", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn integers() {
    assert_eq!(
        cfg("[DEFAULT]\nmax_instances_per_tenant = -1\n")
            .default
            .max_instances_per_tenant,
        -1
    );
    assert_eq!(
        cfg("[DEFAULT]\nusage_timeout =  42 \n")
            .default
            .usage_timeout,
        42
    );
    assert_eq!(
        err("[DEFAULT]\nmax_instances_per_tenant = ten\n"),
        "t.conf: [DEFAULT] max_instances_per_tenant: invalid integer value \"ten\""
    );
    assert_eq!(
        err("[DEFAULT]\nmax_backups_per_tenant = 1.5\n"),
        "t.conf: [DEFAULT] max_backups_per_tenant: invalid integer value \"1.5\""
    );
    assert_eq!(
        err("[DEFAULT]\nusage_timeout =\n"),
        "t.conf: [DEFAULT] usage_timeout: invalid integer value \"\""
    );
    // Bounds.
    assert_eq!(
        err("[DEFAULT]\ntrove_api_workers = 0\n"),
        "t.conf: [DEFAULT] trove_api_workers: value 0 is less than the minimum 1"
    );
    assert_eq!(
        err("[database]\nmax_retries = -2\n"),
        "t.conf: [database] max_retries: value -2 is less than the minimum -1"
    );
    // Optional integers: empty means unset.
    assert_eq!(
        cfg("[DEFAULT]\nquota_notification_interval = 60\n")
            .default
            .quota_notification_interval,
        Some(60)
    );
    assert_eq!(
        cfg("[DEFAULT]\nquota_notification_interval =\n")
            .default
            .quota_notification_interval,
        None
    );
}

#[test]
fn floats() {
    assert_eq!(
        cfg("[oslo_messaging_rabbit]\nkombu_reconnect_delay = 2.5\n")
            .oslo_messaging_rabbit
            .kombu_reconnect_delay,
        2.5
    );
    assert_eq!(
        err("[oslo_messaging_rabbit]\nkombu_reconnect_delay = soon\n"),
        "t.conf: [oslo_messaging_rabbit] kombu_reconnect_delay: invalid floating point value \"soon\""
    );
    assert_eq!(
        err("[oslo_messaging_rabbit]\nkombu_reconnect_delay = -1\n"),
        "t.conf: [oslo_messaging_rabbit] kombu_reconnect_delay: value -1 is less than the minimum 0"
    );
}

#[test]
fn booleans() {
    for (text, want) in [
        ("true", true),
        ("True", true),
        ("1", true),
        ("yes", true),
        ("ON", true),
        ("false", false),
        ("FALSE", false),
        ("0", false),
        ("No", false),
        ("off", false),
    ] {
        let c = cfg(&format!(
            "[DEFAULT]\nenable_secure_rpc_messaging = {text}\n"
        ));
        assert_eq!(c.default.enable_secure_rpc_messaging, want, "{text}");
    }
    assert_eq!(
        err("[network]\nenable_access_check = sometimes\n"),
        "t.conf: [network] enable_access_check: invalid boolean value \"sometimes\""
    );
}

#[test]
fn strings_quotes_and_secrets() {
    let c = cfg(
        "[DEFAULT]\nnova_keypair = \"my key \"\ncinder_volume_type = 'ssd'\n\
                 region = a: b\n[database]\nconnection: mysql+pymysql://u:p@h/trove\n",
    );
    assert_eq!(c.default.nova_keypair.as_deref(), Some("my key "));
    assert_eq!(c.default.cinder_volume_type.as_deref(), Some("ssd"));
    assert_eq!(c.default.region, "a: b");
    assert_eq!(
        c.database.connection.expose_secret(),
        "mysql+pymysql://u:p@h/trove"
    );
    // Empty optional strings are unset.
    assert_eq!(
        cfg("[DEFAULT]\nnova_keypair =\n").default.nova_keypair,
        None
    );
}

#[test]
fn choices() {
    assert_eq!(
        cfg("[DEFAULT]\nvolume_fstype = xfs\n")
            .default
            .volume_fstype,
        "xfs"
    );
    assert_eq!(
        err("[DEFAULT]\nvolume_fstype = btrfs\n"),
        "t.conf: [DEFAULT] volume_fstype: invalid value \"btrfs\", allowed values: ext3, ext4, xfs"
    );
    assert_eq!(
        err("[oslo_messaging_rabbit]\nrabbit_login_method = amqplain\n"),
        "t.conf: [oslo_messaging_rabbit] rabbit_login_method: invalid value \"amqplain\", \
         allowed values: PLAIN, AMQPLAIN, EXTERNAL, RABBIT-CR-DEMO"
    );
    assert_eq!(
        cfg("[DEFAULT]\nreplica_snapshot_driver = cinder\n")
            .default
            .replica_snapshot_driver
            .as_deref(),
        Some("cinder")
    );
}

#[test]
fn lists_with_continuation_lines() {
    let c = cfg(
        "[DEFAULT]\nmanagement_networks = net-a , net-b,\n    net-c\n\
                 management_security_groups =\nroot_grant = SELECT\n",
    );
    assert_eq!(
        c.default.management_networks,
        vec!["net-a", "net-b", "net-c"]
    );
    assert_eq!(c.default.management_security_groups, Vec::<String>::new());
    assert_eq!(c.default.root_grant, vec!["SELECT"]);
}

#[test]
fn dicts() {
    let c = cfg("[DEFAULT]\ndatastore_registry_ext = mysql:my.Manager, redis : r.Manager\n");
    let want: BTreeMap<String, String> = [("mysql", "my.Manager"), ("redis", "r.Manager")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(c.default.datastore_registry_ext, want);
    assert_eq!(
        err("[DEFAULT]\ndatastore_registry_ext = mysql\n"),
        "t.conf: [DEFAULT] datastore_registry_ext: invalid dict value \"mysql\": \"mysql\" is not key:value"
    );
}

#[test]
fn ports_and_addresses() {
    let c = cfg("[DEFAULT]\nbind_port = 65535\nbind_host = ::1\nhost = 192.168.0.10\n");
    assert_eq!(c.default.bind_port, 65535);
    assert_eq!(c.default.bind_host, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(c.default.host, "192.168.0.10".parse::<IpAddr>().unwrap());
    assert_eq!(
        err("[DEFAULT]\nbind_port = 0\n"),
        "t.conf: [DEFAULT] bind_port: port \"0\" out of range 1..65535"
    );
    assert_eq!(
        err("[DEFAULT]\nbind_port = 70000\n"),
        "t.conf: [DEFAULT] bind_port: port \"70000\" out of range 1..65535"
    );
    assert_eq!(
        err("[DEFAULT]\nbind_port = http\n"),
        "t.conf: [DEFAULT] bind_port: invalid port value \"http\""
    );
    assert_eq!(
        err("[DEFAULT]\nbind_host = localhost\n"),
        "t.conf: [DEFAULT] bind_host: invalid IP address value \"localhost\""
    );
}

#[test]
fn uris() {
    let c = cfg("[DEFAULT]\nswift_url = http://swift:8080/v1/AUTH_\n");
    assert_eq!(
        c.default.swift_url.unwrap().as_str(),
        "http://swift:8080/v1/AUTH_"
    );
    assert!(err("[DEFAULT]\nswift_url = not a url\n")
        .starts_with("t.conf: [DEFAULT] swift_url: invalid URI value \"not a url\""));
}

#[test]
fn port_range_lists() {
    let c = cfg("[mariadb]\ntcp_ports = 3306,4444-4445, 4567\nudp_ports = 11209-11211\n");
    let ma = c.datastore("mariadb").unwrap();
    assert_eq!(
        ma.tcp_ports,
        vec![
            PortRange::single(3306),
            PortRange {
                start: 4444,
                end: 4445
            },
            PortRange::single(4567)
        ]
    );
    assert!(ma.udp_ports[0].contains(11210));
    assert_eq!(
        err("[postgresql]\ntcp_ports = 5432,70000\n"),
        "t.conf: [postgresql] tcp_ports: invalid port \"70000\": must be 1..65535"
    );
    assert_eq!(
        err("[mysql]\nudp_ports = 20-10\n"),
        "t.conf: [mysql] udp_ports: invalid port range \"20-10\": start above end"
    );
}
