//! Loopback addresses of local instances.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{check_id, LocalDriver};
use crate::{Address, DriverError, NetworkDriver, NetworkRequest, Port, Result};

/// How many addresses an allocation looks at before giving up.
const SCAN_LIMIT: u32 = 65_534;

/// The network name of local addresses.
const NETWORK: &str = "loopback";

/// Whether every port can be bound on `ip` right now (nothing else listens there).
fn ports_free(ip: Ipv4Addr, tcp_ports: &[u16], udp_ports: &[u16]) -> bool {
    tcp_ports
        .iter()
        .filter(|&&p| p != 0)
        .all(|&p| TcpListener::bind((ip, p)).is_ok())
        && udp_ports
            .iter()
            .filter(|&&p| p != 0)
            .all(|&p| UdpSocket::bind((ip, p)).is_ok())
}

/// Addresses worth trying from `first` on: loopback, not 127.0.0.1, not ending in .0 or
/// .255, at most [`SCAN_LIMIT`] of them.
fn candidates(first: Ipv4Addr) -> impl Iterator<Item = Ipv4Addr> {
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    (u32::from(first)..=last)
        .map(Ipv4Addr::from)
        .filter(|ip| {
            let o = ip.octets();
            *ip != Ipv4Addr::LOCALHOST && o[3] != 0 && o[3] != 255
        })
        .take(SCAN_LIMIT as usize)
}

/// The leases (address files) in `dir` held by `instance_id`.
fn leases_of(dir: &Path, instance_id: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DriverError::host(format!("reading {}", dir.display()), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| DriverError::host(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        let is_lease = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<Ipv4Addr>().is_ok());
        if !is_lease {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(holder) if holder.trim() == instance_id => found.push(path),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::host(format!("reading {}", path.display()), e)),
        }
    }
    found.sort();
    Ok(found)
}

/// Leases the first free address for `req` in `dir`.
fn lease(dir: &Path, first: Ipv4Addr, req: &NetworkRequest) -> Result<Ipv4Addr> {
    // A retried allocation gets the address it already holds.
    if let Some(held) = leases_of(dir, &req.instance_id)?
        .first()
        .and_then(|p| p.file_name()?.to_str()?.parse::<Ipv4Addr>().ok())
    {
        return Ok(held);
    }
    for ip in candidates(first) {
        let path = dir.join(ip.to_string());
        if path.exists() {
            continue;
        }
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(DriverError::host(format!("creating {}", path.display()), e)),
        };
        if let Err(e) = file.write_all(req.instance_id.as_bytes()) {
            let _ = std::fs::remove_file(&path);
            return Err(DriverError::host(format!("writing {}", path.display()), e));
        }
        drop(file);
        if ports_free(ip, &req.tcp_ports, &req.udp_ports) {
            return Ok(ip);
        }
        tracing::debug!(instance.id = %req.instance_id, address = %ip, "ports in use; trying the next address");
        std::fs::remove_file(&path)
            .map_err(|e| DriverError::host(format!("removing {}", path.display()), e))?;
    }
    Err(DriverError::Exhausted(format!(
        "no free local address: the {SCAN_LIMIT} addresses from {first} are taken or their \
         ports are in use"
    )))
}

#[async_trait]
impl NetworkDriver for LocalDriver {
    async fn allocate(&self, req: &NetworkRequest) -> Result<Vec<Port>> {
        check_id("instance", &req.instance_id)?;
        let dir = self.addresses_dir();
        let first = self.first_address;
        let owned = req.clone();
        let ip = tokio::task::spawn_blocking(move || lease(&dir, first, &owned))
            .await
            .map_err(|e| DriverError::host("allocating a local address", e))??;
        tracing::info!(instance.id = %req.instance_id, address = %ip, "local address leased");
        Ok(vec![Port {
            id: ip.to_string(),
            addresses: vec![Address {
                address: ip.to_string(),
                kind: "private".into(),
                network: NETWORK.into(),
            }],
        }])
    }

    async fn release(&self, instance_id: &str) -> Result<()> {
        check_id("instance", instance_id)?;
        let dir = self.addresses_dir();
        let id = instance_id.to_string();
        let released = tokio::task::spawn_blocking(move || -> Result<Vec<PathBuf>> {
            let leases = leases_of(&dir, &id)?;
            for path in &leases {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DriverError::host(format!("removing {}", path.display()), e))
                    }
                }
            }
            Ok(leases)
        })
        .await
        .map_err(|e| DriverError::host("releasing local addresses", e))??;
        for path in released {
            tracing::info!(instance.id = %instance_id, address = %path.file_name().unwrap_or_default().to_string_lossy(), "local address released");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_skip_localhost_and_network_and_broadcast_octets() {
        let c: Vec<Ipv4Addr> = candidates(Ipv4Addr::new(127, 0, 0, 1)).take(3).collect();
        assert_eq!(
            c,
            vec![
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3),
                Ipv4Addr::new(127, 0, 0, 4)
            ]
        );
        let c: Vec<Ipv4Addr> = candidates(Ipv4Addr::new(127, 1, 0, 254)).take(2).collect();
        assert_eq!(
            c,
            vec![Ipv4Addr::new(127, 1, 0, 254), Ipv4Addr::new(127, 1, 1, 1)]
        );
        assert_eq!(
            candidates(Ipv4Addr::new(127, 1, 0, 1)).count(),
            SCAN_LIMIT as usize
        );
        assert_eq!(candidates(Ipv4Addr::new(127, 255, 255, 254)).count(), 1);
    }
}
