//! The deployment files under `deploy/` stay true to the code: the sample configuration
//! files load without warnings and with the values they document, the systemd units start
//! binaries that exist with arguments those binaries accept and have the stop and restart
//! rules the README explains, and the `trove-manage` commands of the README parse.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use trove_config::{Config, ConfigSources, Loaded};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn deploy(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads one file as a service would (`--config-file <path>`).
fn load_file(path: &Path) -> Loaded {
    trove_config::load(&ConfigSources::none().file(path))
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
}

fn assert_no_warnings(loaded: &Loaded, what: &str) {
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(warnings.is_empty(), "{what} has warnings: {warnings:#?}");
}

#[test]
fn trove_conf_sample_loads_without_warnings_with_the_documented_values() {
    let loaded = load_file(&deploy("trove.conf.sample"));
    assert_no_warnings(&loaded, "trove.conf.sample");
    let c = &loaded.config;
    let d = &c.default;
    assert_eq!(
        d.transport_url.expose_secret(),
        "rabbit://trove:RABBIT_PASS@127.0.0.1:5672/"
    );
    assert_eq!(d.control_exchange, "trove");
    assert_eq!(d.auth_strategy, "keystone");
    assert_eq!(d.bind_host.to_string(), "0.0.0.0");
    assert_eq!(d.bind_port, 8779);
    assert!(d.enable_secure_rpc_messaging);
    // The RPC keys are placeholders, not Trove's public defaults.
    let defaults = Config::default();
    assert_ne!(
        d.taskmanager_rpc_encr_key.expose_secret(),
        defaults.default.taskmanager_rpc_encr_key.expose_secret()
    );
    assert_ne!(
        d.inst_rpc_key_encr_key.expose_secret(),
        defaults.default.inst_rpc_key_encr_key.expose_secret()
    );
    assert!(d
        .taskmanager_rpc_encr_key
        .expose_secret()
        .contains("CHANGE_ME"));
    assert!(d
        .inst_rpc_key_encr_key
        .expose_secret()
        .contains("CHANGE_ME"));
    assert_eq!(d.max_instances_per_tenant, 10);
    assert_eq!(d.max_backups_per_tenant, 50);
    assert_eq!(d.max_volumes_per_tenant, 40);
    assert_eq!(d.max_ram_per_tenant, -1);
    assert_eq!(d.max_accepted_volume_size, 10);
    assert_eq!(d.guest_config, "/etc/trove/trove-guestagent.conf");
    assert_eq!(d.usage_timeout, 1800);
    assert_eq!(d.report_interval, 30);
    assert!(!d.debug);
    assert_eq!(
        c.database.connection.expose_secret(),
        "mysql+pymysql://trove:TROVE_DBPASS@127.0.0.1/trove?charset=utf8"
    );
    assert_eq!(c.database.max_retries, 10);
    assert_eq!(c.database.retry_interval, 10);
    let k = &c.keystone_authtoken;
    assert_eq!(k.auth_url.as_deref(), Some("http://controller:5000/v3"));
    assert_eq!(
        k.www_authenticate_uri.as_deref(),
        Some("http://controller:5000/v3")
    );
    assert_eq!(k.auth_type.as_deref(), Some("password"));
    assert_eq!(k.username.as_deref(), Some("trove"));
    assert_eq!(
        k.password.as_ref().map(|p| p.expose_secret().to_owned()),
        Some("TROVE_KEYSTONE_PASS".to_owned())
    );
    assert_eq!(k.project_name.as_deref(), Some("service"));
    assert_eq!(k.user_domain_name.as_deref(), Some("Default"));
    assert_eq!(k.project_domain_name.as_deref(), Some("Default"));
    assert_eq!(k.region_name.as_deref(), Some("RegionOne"));
    assert_eq!(c.oslo_policy.policy_file, "policy.yaml");
    let l = &c.local_driver;
    assert_eq!(l.state_path, "/var/lib/trove/local");
    assert_eq!(l.first_address, "127.1.0.1");
    assert_eq!(l.guest_agent_program, "/usr/bin/trove-guestagent");
    assert_eq!(l.loop_volumes, "auto");
    // The API accepts the keystone section as it stands.
    trove_api::auth::authenticator_from_config(c).expect("keystone settings are complete");
}

/// The noauth alternative the sample describes: switching `auth_strategy` is enough, and
/// the API then keeps to the loopback address.
#[test]
fn trove_conf_sample_noauth_alternative_works() {
    let text = read(&deploy("trove.conf.sample"));
    assert!(text.contains("\nauth_strategy = keystone\n"));
    assert!(text.contains("\n#auth_strategy = noauth\n"));
    let switched = text
        .replace(
            "\nauth_strategy = keystone\n",
            "\n#auth_strategy = keystone\n",
        )
        .replace("\n#auth_strategy = noauth\n", "\nauth_strategy = noauth\n");
    let loaded = Config::from_ini_str("trove.conf.sample (noauth)", &switched).unwrap();
    assert_no_warnings(&loaded, "the noauth variant");
    assert_eq!(loaded.config.default.auth_strategy, "noauth");
    let address = trove::api_listen_address(&loaded.config);
    assert_eq!(address.to_string(), "127.0.0.1:8779");
}

#[test]
fn guestagent_conf_sample_loads_without_warnings_with_the_documented_values() {
    let loaded = load_file(&deploy("trove-guestagent.conf.sample"));
    assert_no_warnings(&loaded, "trove-guestagent.conf.sample");
    let c = &loaded.config;
    let d = &c.default;
    assert!(!d.debug);
    assert_eq!(d.state_change_wait_time, 180);
    assert_eq!(d.command_process_timeout, 30);
    assert_eq!(d.volume_fstype, "ext4");
    assert_eq!(d.database_service_uid, "1001");
    assert_eq!(c.mariadb.database_service_uname, "database");
    assert_eq!(c.postgresql.database_service_uname, "database");
    assert_eq!(c.oslo_messaging_rabbit.rabbit_retry_interval, 1);
    assert_eq!(c.oslo_messaging_rabbit.rabbit_retry_backoff, 2);
    assert_eq!(c.oslo_messaging_rabbit.rabbit_interval_max, 30);
    assert_eq!(c.oslo_messaging_rabbit.heartbeat_timeout_threshold, 60);
    // No messaging settings and no secrets: the taskmanager appends the instance's own.
    let text = read(&deploy("trove-guestagent.conf.sample"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.starts_with("transport_url") && !line.starts_with("control_exchange"),
            "the operator's guest file must leave messaging to the taskmanager: {line}"
        );
    }
}

/// What a guest actually reads: the taskmanager's injected files built from both samples.
#[test]
fn guest_reads_the_operator_file_with_the_instance_settings_appended() {
    let mut config = load_file(&deploy("trove.conf.sample")).config;
    config.default.guest_config = deploy("trove-guestagent.conf.sample").display().to_string();
    let info = trove_taskmanager::files::GuestInfo {
        instance_id: "0b9f6c36-4bb7-4b6c-9d0a-1c2d3e4f5a6b",
        datastore_manager: "mariadb",
        datastore_version: "10.11.19",
        tenant_id: "demo",
        rpc_key: Some("instance-key"),
        transport_url: Some(
            "rabbit://guest-0b9f6c36-4bb7-4b6c-9d0a-1c2d3e4f5a6b:pw@127.0.0.1:5672/".into(),
        ),
    };
    let files = trove_taskmanager::files::injected_files(&config, &info).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/trove/conf.d/guest_info.conf",
            "/etc/trove/conf.d/trove-guestagent.conf"
        ]
    );
    // Read in --config-dir order (file names sorted), as the agent does.
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    let loaded = Config::from_ini_strs(&sources).unwrap();
    assert_no_warnings(&loaded, "the injected guest files");
    let d = &loaded.config.default;
    assert_eq!(d.guest_id.as_deref(), Some(info.instance_id));
    assert_eq!(d.datastore_manager.as_deref(), Some("mariadb"));
    assert_eq!(d.control_exchange, "trove");
    assert_eq!(d.report_interval, 30);
    assert_eq!(
        d.transport_url.expose_secret(),
        info.transport_url.as_deref().unwrap()
    );
    assert_eq!(
        d.instance_rpc_encr_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned()),
        Some("instance-key".to_owned())
    );
    assert_eq!(d.volume_fstype, "ext4");
    assert_eq!(loaded.config.mariadb.database_service_uname, "database");
}

/// Section of each line of an INI-like file (`None` before the first header).
fn lines_with_sections(text: &str) -> Vec<(String, &str)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].to_string();
            continue;
        }
        out.push((section.clone(), line));
    }
    out
}

/// `#key = value` (no space after `#`): an option written out commented. Prose comments
/// start with `# `.
fn commented_option(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return None;
    }
    Some((key, value.trim()))
}

/// Every commented-out option of the samples is a real option of its group with a valid
/// value, so uncommenting it works.
#[test]
fn commented_options_in_the_samples_are_valid() {
    for name in ["trove.conf.sample", "trove-guestagent.conf.sample"] {
        let text = read(&deploy(name));
        let mut seen = 0;
        for (section, line) in lines_with_sections(&text) {
            let Some((key, value)) = commented_option(line) else {
                continue;
            };
            assert!(!section.is_empty(), "{name}: {line} is outside any group");
            let ini = format!("[{section}]\n{key} = {value}\n");
            let loaded = Config::from_ini_str(name, &ini)
                .unwrap_or_else(|e| panic!("{name}: uncommenting `{line}` fails: {e}"));
            assert_no_warnings(&loaded, &format!("{name}: `{line}` in [{section}]"));
            seen += 1;
        }
        assert!(
            seen >= 3,
            "{name}: expected commented alternatives, found {seen}"
        );
    }
}

/// One systemd unit file: `(section, key, value)` in file order.
struct Unit {
    name: String,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(path: &Path) -> Unit {
        let text = read(path);
        let mut section = String::new();
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            assert!(
                !t.ends_with('\\'),
                "{}:{}: continuation lines are not used",
                path.display(),
                n + 1
            );
            if t.starts_with('[') && t.ends_with(']') {
                section = t[1..t.len() - 1].to_string();
                continue;
            }
            let (k, v) = t.split_once('=').unwrap_or_else(|| {
                panic!("{}:{}: not a key=value line: {t}", path.display(), n + 1)
            });
            assert!(
                !section.is_empty(),
                "{}: {t} outside a section",
                path.display()
            );
            entries.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
        Unit {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            entries,
        }
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The effective value of a single-valued setting (the last assignment).
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).last().copied()
    }

    fn service(&self, key: &str) -> Option<&str> {
        self.get("Service", key)
    }

    /// Space-separated list settings (After=, Wants=), all assignments together.
    fn list(&self, section: &str, key: &str) -> BTreeSet<&str> {
        self.all(section, key)
            .into_iter()
            .flat_map(|v| v.split_whitespace())
            .collect()
    }

    /// ExecStart split into the program and its arguments (systemd's prefixes removed).
    fn exec_start(&self) -> (String, Vec<String>) {
        let starts = self.all("Service", "ExecStart");
        assert_eq!(starts.len(), 1, "{}: one ExecStart", self.name);
        let mut words = starts[0].split_whitespace();
        let program = words
            .next()
            .unwrap_or_else(|| panic!("{}: empty ExecStart", self.name))
            .trim_start_matches(['-', '@', '+', '!', ':']);
        (program.to_string(), words.map(String::from).collect())
    }
}

const UNITS: &[&str] = &[
    "trove-api.service",
    "trove-conductor.service",
    "trove-guestagent.service",
    "trove-taskmanager.service",
];

fn units() -> Vec<Unit> {
    let dir = deploy("systemd");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service"))
        .collect();
    found.sort();
    assert_eq!(found, UNITS, "the units in deploy/systemd");
    found.iter().map(|n| Unit::parse(&dir.join(n))).collect()
}

fn unit(name: &str) -> Unit {
    units()
        .into_iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn every_unit_starts_a_binary_of_the_trove_crate() {
    let bin_dir = repo_root().join("crates/trove/src/bin");
    for u in units() {
        let (program, args) = u.exec_start();
        let name = program
            .strip_prefix("/usr/bin/")
            .unwrap_or_else(|| panic!("{}: ExecStart {program} is not in /usr/bin", u.name));
        assert!(
            bin_dir.join(format!("{name}.rs")).is_file(),
            "{}: {name} is not a binary of crates/trove/src/bin",
            u.name
        );
        assert_eq!(
            format!("{name}.service"),
            u.name,
            "a unit is named after its binary"
        );
        if name == "trove-guestagent" {
            assert_eq!(args, ["--config-dir=/etc/trove/conf.d"]);
        } else {
            assert_eq!(
                args,
                ["--config-file", "/etc/trove/trove.conf"],
                "{}",
                u.name
            );
        }
    }
}

/// The binary built for a unit, as cargo names it for integration tests.
fn built_binary(name: &str) -> &'static str {
    match name {
        "trove-api" => env!("CARGO_BIN_EXE_trove-api"),
        "trove-conductor" => env!("CARGO_BIN_EXE_trove-conductor"),
        "trove-taskmanager" => env!("CARGO_BIN_EXE_trove-taskmanager"),
        "trove-guestagent" => env!("CARGO_BIN_EXE_trove-guestagent"),
        other => panic!("no binary {other}"),
    }
}

/// The ExecStart arguments parse: with `/etc/trove` moved to a directory that does not
/// exist, each binary gets past its command line and stops at the missing file
/// (exit status 1 and the path in the message), where a bad flag would be a usage
/// error (status 2).
#[test]
fn exec_start_arguments_are_accepted_by_the_binaries() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("etc-trove");
    for u in units() {
        let (program, args) = u.exec_start();
        let name = program.trim_start_matches("/usr/bin/");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("/etc/trove", &missing.display().to_string()))
            .collect();
        let out = Command::new(built_binary(name))
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {stderr}");
        assert!(
            stderr.contains(&missing.display().to_string()) && stderr.contains("not found"),
            "{name} {args:?}: {stderr}"
        );
    }
}

/// Options giving a service a mount namespace of its own: the units that mount volumes
/// must not use them.
const MOUNT_NAMESPACE_OPTIONS: &[&str] = &[
    "ProtectSystem",
    "ProtectHome",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "TemporaryFileSystem",
    "BindPaths",
    "MountFlags",
];

#[test]
fn units_restart_on_failure_and_stop_as_intended() {
    for u in units() {
        assert_eq!(u.service("Restart"), Some("on-failure"), "{}", u.name);
        assert_eq!(u.service("KillSignal"), Some("SIGTERM"), "{}", u.name);
        let timeout: u64 = u
            .service("TimeoutStopSec")
            .unwrap_or_else(|| panic!("{}: TimeoutStopSec", u.name))
            .parse()
            .expect("TimeoutStopSec in seconds");
        assert!((10..=300).contains(&timeout), "{}: {timeout}", u.name);
        let after = u.list("Unit", "After");
        let wants = u.list("Unit", "Wants");
        assert!(after.contains("network-online.target"), "{}", u.name);
        assert!(wants.contains("network-online.target"), "{}", u.name);
        assert_eq!(u.get("Install", "WantedBy"), Some("multi-user.target"));
        // Migrations are the operator's step, never a side effect of a start.
        for pre in u.all("Service", "ExecStartPre") {
            assert!(!pre.contains("db_sync"), "{}: {pre}", u.name);
        }
        let controller = u.name != "trove-guestagent.service";
        assert_eq!(
            after.contains("rabbitmq-server.service") && after.contains("mariadb.service"),
            controller,
            "{}: ordering after the local broker and database (controllers only)",
            u.name
        );
    }

    // The API and the conductor: unprivileged and sandboxed, nothing writable.
    for name in ["trove-api.service", "trove-conductor.service"] {
        let u = unit(name);
        assert_eq!(u.service("User"), Some("trove"), "{name}");
        assert_eq!(u.service("Group"), Some("trove"), "{name}");
        assert_eq!(u.service("KillMode"), Some("mixed"), "{name}");
        assert_eq!(u.service("NoNewPrivileges"), Some("yes"), "{name}");
        assert_eq!(u.service("ProtectSystem"), Some("strict"), "{name}");
        assert_eq!(u.service("PrivateTmp"), Some("yes"), "{name}");
        assert_eq!(u.service("CapabilityBoundingSet"), Some(""), "{name}");
        assert!(u.all("Service", "ReadWritePaths").is_empty(), "{name}");
    }

    // The taskmanager keeps its guest agents (the instances) alive across its own stop,
    // and the guest agent keeps its database server alive; both run as root without a
    // mount namespace, so the volume mounts they make are the host's.
    for name in ["trove-taskmanager.service", "trove-guestagent.service"] {
        let u = unit(name);
        assert_eq!(u.service("KillMode"), Some("process"), "{name}");
        assert_eq!(u.service("User"), Some("root"), "{name}");
        for option in MOUNT_NAMESPACE_OPTIONS {
            assert!(
                u.all("Service", option).is_empty(),
                "{name}: {option} would give it a private mount namespace"
            );
        }
        assert_ne!(u.service("MemoryDenyWriteExecute"), Some("yes"), "{name}");
    }
    let tm = read(&deploy("systemd/trove-taskmanager.service"));
    assert!(
        tm.contains("KillMode=control-group"),
        "the taskmanager unit explains why the default KillMode is not used"
    );
}

/// Splits a shell command line into words (`""`, `''` and backslash-newline handled).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `trove-manage` commands of deploy/README.md are accepted by trove-manage, with
/// the config file flag it documents, and the rule files they load exist.
#[test]
fn readme_trove_manage_commands_parse() {
    let readme = read(&deploy("README.md"));
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block && line.starts_with("trove-manage ") {
            commands.push(line);
        }
    }
    let mut names = BTreeSet::new();
    for line in &commands {
        let mut words = shell_words(line);
        assert_eq!(
            &words[1..3],
            ["--config-file", "/etc/trove/trove.conf"],
            "{line}"
        );
        words.drain(1..3);
        let command = trove_manage::parse_args(&words)
            .unwrap_or_else(|e| panic!("README command `{line}` does not parse: {e}"));
        names.insert(words[1].clone());
        if let trove_manage::Command::DbLoadDatastoreConfigParameters {
            config_file_location,
            ..
        } = &command
        {
            assert!(
                repo_root().join(config_file_location).is_file(),
                "{config_file_location} (from `{line}`) is not in the repository"
            );
        }
    }
    for expected in [
        "db_sync",
        "datastore_update",
        "datastore_version_update",
        "db_load_datastore_config_parameters",
        "flavor_create",
    ] {
        assert!(
            names.contains(expected),
            "README lacks {expected}: {names:?}"
        );
    }
    // Every binary the units start is in the README's install line.
    for u in units() {
        let (program, _) = u.exec_start();
        let name = program.trim_start_matches("/usr/bin/");
        assert!(
            readme.contains(&format!("target/release/{name}")),
            "README does not install {name}"
        );
    }
}
