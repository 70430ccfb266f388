//! Start-up errors: each names the file, and the line or the `[group] option`.

use std::fs;

use trove_config::{load, Config, ConfigError, ConfigSources};

#[test]
fn invalid_value_names_file_group_and_option() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("trove.conf");
    fs::write(&path, "[DEFAULT]\nmax_instances_per_tenant = ten\n").unwrap();
    let err = load(&ConfigSources::none().file(&path)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: [DEFAULT] max_instances_per_tenant: invalid integer value \"ten\"",
            path.display()
        )
    );
    assert!(
        matches!(err, ConfigError::InvalidValue { ref group, ref option, .. }
        if group == "DEFAULT" && option == "max_instances_per_tenant")
    );
}

#[test]
fn the_file_that_set_the_bad_value_is_named() {
    let err = Config::from_ini_strs(&[
        ("good.conf", "[DEFAULT]\nusage_timeout = 5\n"),
        ("bad.conf", "[DEFAULT]\nmax_backups_per_user = many\n"),
        ("later.conf", "[DEFAULT]\nusage_timeout = 6\n"),
    ])
    .unwrap_err();
    // The deprecated name is reported as written, so the operator finds the line.
    assert_eq!(
        err.to_string(),
        "bad.conf: [DEFAULT] max_backups_per_user: invalid integer value \"many\""
    );
}

#[test]
fn a_bad_value_overridden_by_a_later_file_is_harmless() {
    let cfg = Config::from_ini_strs(&[
        ("a.conf", "[DEFAULT]\nmax_instances_per_tenant = ten\n"),
        ("b.conf", "[DEFAULT]\nmax_instances_per_tenant = 10\n"),
    ])
    .unwrap()
    .config;
    assert_eq!(cfg.default.max_instances_per_tenant, 10);
}

#[test]
fn missing_files_and_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.conf");
    let err = load(&ConfigSources::none().file(&missing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: config file not found", missing.display())
    );
    let missing_dir = tmp.path().join("conf.d");
    let err = load(&ConfigSources::none().dir(&missing_dir)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: config directory not found", missing_dir.display())
    );
    // A directory given as a file cannot be read.
    let err = load(&ConfigSources::none().file(tmp.path())).unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read: ", tmp.path().display())));
}

#[test]
fn an_empty_config_dir_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    let loaded = load(&ConfigSources::none().dir(tmp.path())).unwrap();
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn malformed_lines_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("trove.conf");
    fs::write(
        &path,
        "[DEFAULT]\n# fine\nusage_timeout = 5\nthis line is wrong\n",
    )
    .unwrap();
    let err = load(&ConfigSources::none().file(&path)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4: expected 'option = value' or a [group] header",
            path.display()
        )
    );
    assert!(matches!(err, ConfigError::Parse { line: 4, .. }));
    let err = Config::from_ini_str("t.conf", "[DEFAULT]\n\n   stray = 1\n").unwrap_err();
    assert!(err
        .to_string()
        .starts_with("t.conf:3: unexpected continuation line"));
    let err = Config::from_ini_str("t.conf", "usage_timeout = 1\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.conf:1: option outside of any [group] section"
    );
}

#[test]
fn bad_references() {
    let err =
        Config::from_ini_str("t.conf", "[DEFAULT]\nnova_keypair = ${nogroup.key}\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.conf: [DEFAULT] nova_keypair: cannot substitute ${nogroup.key}: unknown option"
    );
    let err = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\nnova_keypair = $cinder_volume_type\ncinder_volume_type = $nova_keypair\n",
    )
    .unwrap_err();
    assert!(err.to_string().ends_with(": circular reference"), "{err}");
    // A bad value reached through a reference is reported where the reference is.
    let err = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\nnova_keypair = x\nusage_timeout = $nova_keypair\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.conf: [DEFAULT] usage_timeout: invalid integer value \"x\""
    );
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let loaded = Config::from_ini_str(
        "t.conf",
        "[DEFAULT]\n\
         transport_url = rabbit://trove:RABBITPW@mq:5672/\n\
         taskmanager_rpc_encr_key = TMKEY123\n\
         [database]\n\
         connection = mysql+pymysql://trove:DBPW@db/trove\n\
         [keystone_authtoken]\n\
         password = KSPW\n\
         [service_credentials]\n\
         password = SCPW\n\
         [guest_agent]\n\
         container_registry_password = REGPW\n",
    )
    .unwrap();
    let debug = format!("{:?}", loaded.config);
    for secret in ["RABBITPW", "TMKEY123", "DBPW", "KSPW", "SCPW", "REGPW"] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
    assert!(debug.contains("Secret(\"***\")"));
    assert_eq!(loaded.config.default.transport_url.to_string(), "***");
}
