//! `get_diagnostics` and `get_hwinfo`: figures about the agent process and its host, read
//! from `/proc` (api.md §19.3 shows them to admins).
//!
//! Diagnostics are the agent's own process (`/proc/self/status`): `version` (the agent's
//! package version), `threads`, `fd_size` (`FDSize`, file descriptor slots), and `vm_size`,
//! `vm_peak`, `vm_rss`, `vm_hwm` in kB as the kernel reports them. Hardware info is
//! `mem_total` (`MemTotal` of `/proc/meminfo`, kB) and `num_cpus` (CPUs this process may run
//! on).

use std::path::Path;

use serde::Serialize;

use crate::error::GuestError;

/// The `get_diagnostics` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// The agent's package version.
    pub version: String,
    /// Threads of the agent process.
    pub threads: u64,
    /// File descriptor slots allocated (`FDSize`).
    pub fd_size: u64,
    /// Virtual memory size, kB.
    pub vm_size: u64,
    /// Peak virtual memory size, kB.
    pub vm_peak: u64,
    /// Resident set size, kB.
    pub vm_rss: u64,
    /// Peak resident set size, kB.
    pub vm_hwm: u64,
}

/// The `get_hwinfo` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HwInfo {
    /// Total memory of the host, kB.
    pub mem_total: u64,
    /// CPUs available to the agent.
    pub num_cpus: u64,
}

/// The integer of `Key:\t<n>[ kB]` in a `/proc` status-style text.
fn field(text: &str, key: &str) -> Result<u64, GuestError> {
    text.lines()
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_end_matches("kB").trim().to_string())
        })
        .ok_or_else(|| GuestError::NotSupported(format!("{key} is not reported by the kernel")))?
        .parse::<u64>()
        .map_err(|e| GuestError::InvalidValue(format!("{key} is not a number: {e}")))
}

fn read(path: &Path) -> Result<String, GuestError> {
    std::fs::read_to_string(path).map_err(|source| GuestError::Io {
        context: format!("cannot read {}", path.display()),
        source,
    })
}

/// Diagnostics from the text of a `/proc/<pid>/status` file.
pub fn diagnostics_from(status: &str) -> Result<Diagnostics, GuestError> {
    Ok(Diagnostics {
        version: env!("CARGO_PKG_VERSION").to_string(),
        threads: field(status, "Threads")?,
        fd_size: field(status, "FDSize")?,
        vm_size: field(status, "VmSize")?,
        vm_peak: field(status, "VmPeak")?,
        vm_rss: field(status, "VmRSS")?,
        vm_hwm: field(status, "VmHWM")?,
    })
}

/// Diagnostics of the running agent process.
pub fn diagnostics() -> Result<Diagnostics, GuestError> {
    diagnostics_from(&read(Path::new("/proc/self/status"))?)
}

/// Hardware info from the text of `/proc/meminfo` and a CPU count.
pub fn hwinfo_from(meminfo: &str, num_cpus: u64) -> Result<HwInfo, GuestError> {
    Ok(HwInfo {
        mem_total: field(meminfo, "MemTotal")?,
        num_cpus,
    })
}

/// Hardware info of the agent's host.
pub fn hwinfo() -> Result<HwInfo, GuestError> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .map_err(|source| GuestError::Io {
            context: "cannot count the CPUs".into(),
            source,
        })?;
    hwinfo_from(&read(Path::new("/proc/meminfo"))?, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\ttrove-guestagent\nUmask:\t0022\nState:\tS (sleeping)\n\
        FDSize:\t128\nVmPeak:\t  312000 kB\nVmSize:\t  300000 kB\nVmHWM:\t   21000 kB\n\
        VmRSS:\t   20000 kB\nThreads:\t9\n";

    #[test]
    fn parses_proc_status() {
        let d = diagnostics_from(STATUS).unwrap();
        assert_eq!(
            d,
            Diagnostics {
                version: env!("CARGO_PKG_VERSION").into(),
                threads: 9,
                fd_size: 128,
                vm_size: 300_000,
                vm_peak: 312_000,
                vm_rss: 20_000,
                vm_hwm: 21_000,
            }
        );
        let e = diagnostics_from("Threads:\t2\n").unwrap_err();
        assert!(e.to_string().contains("FDSize"), "{e}");
        let e = diagnostics_from(&STATUS.replace("Threads:\t9", "Threads:\tmany")).unwrap_err();
        assert!(e.to_string().contains("Threads is not a number"), "{e}");
    }

    #[test]
    fn parses_meminfo() {
        let h = hwinfo_from("MemTotal:       16318540 kB\nMemFree:  1 kB\n", 4).unwrap();
        assert_eq!(
            h,
            HwInfo {
                mem_total: 16_318_540,
                num_cpus: 4
            }
        );
        assert!(hwinfo_from("MemFree: 1 kB\n", 1).is_err());
    }

    #[test]
    fn reads_this_process_and_host() {
        let d = diagnostics().unwrap();
        assert!(d.threads >= 1 && d.fd_size > 0, "{d:?}");
        assert!(
            d.vm_rss > 0 && d.vm_hwm >= d.vm_rss && d.vm_peak >= d.vm_size,
            "{d:?}"
        );
        let h = hwinfo().unwrap();
        assert!(h.mem_total > 0 && h.num_cpus >= 1, "{h:?}");
    }
}
