//! The real OpenStack the integration tests run against, brought up once per test run by
//! `scripts/nova-test-stack.sh` under target/ and reused by every test (concurrent callers
//! share one bring-up).

#![allow(dead_code, reason = "each test binary uses one of the stacks")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Keystone, Placement, Glance and Nova with the fake virt driver, and the Neutron stand-in:
/// ports 29500-29511, target/nova-stack.
pub fn nova_stack() -> HashMap<String, String> {
    start(&[])
}

/// The same with a real Neutron (ML2/OVN) and a real Cinder (its fake back end): ports
/// 29600-29611, target/nova-stack-ovn.
pub fn ovn_stack() -> HashMap<String, String> {
    let repo = repo();
    let dir = std::env::var_os("TROVE_OVN_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/nova-stack-ovn"));
    let base = std::env::var("TROVE_OVN_STACK_BASE").unwrap_or_else(|_| "29600".into());
    let dir = dir.display().to_string();
    start(&[
        ("NEUTRON", "ovn"),
        ("CINDER", "1"),
        ("NOVA_TEST_DIR", &dir),
        ("NOVA_TEST_BASE", &base),
    ])
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the stack script with `vars`; the stack's `env` file as a map.
fn start(vars: &[(&str, &str)]) -> HashMap<String, String> {
    let out = Command::new(repo().join("scripts/nova-test-stack.sh"))
        .envs(vars.iter().copied())
        .output()
        .expect("run scripts/nova-test-stack.sh");
    assert!(
        out.status.success(),
        "nova-test-stack.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let env_path = PathBuf::from(stdout.lines().last().expect("env path").trim());
    std::fs::read_to_string(&env_path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
