//! Backup and restore throughput of a MariaDB database, beside the raw tools on the same data.
//!
//! Run with `cargo bench -p trove-guestagent --bench backup_throughput` (needs `mariadbd`,
//! `mariadb-install-db` and the `mariadb-backup` package; `TROVE_BENCH_BACKUP_MIB` sets the
//! size of the data, default 1024). It starts a private `mariadbd` in a temporary directory
//! (socket only), fills one InnoDB table with that much incompressible-ish data, then in
//! one run measures:
//!
//! * `mariadb-backup --backup --stream=xbstream > /dev/null` (the tool alone);
//! * `mariadb-backup ... | zstd -3 > /dev/null` (the tool and the command-line compressor);
//! * the guest agent's hot backup into a local backup store (tool, zstd level 3 in-process,
//!   segments with MD5s), with the peak resident memory the agent's process gained during it;
//! * `mbstream -x` + `mariadb-backup --prepare` of the tool's raw stream (the restore
//!   alone), and the agent's restore of its own backup (verify, decompress, extract,
//!   prepare).
//!
//! Each line reports seconds and MB/s of the tool's backup stream size, so the overhead of the
//! agent's streaming, compression and checksums is the difference between the lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trove_backup::{BackupStore, LocalStore, Metadata};
use trove_guestagent::backup::{
    mariadb_backup, mariadb_restore, BackupJob, MariaDbPaths, RestoreInfo,
};
use trove_guestagent::process::ServiceUser;

fn sh(cmd: &str) {
    let ok = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(ok.success(), "{cmd}");
}

struct Server {
    dir: PathBuf,
    child: std::process::Child,
}

impl Server {
    fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    fn start(dir: &Path, install: bool) -> Server {
        let data = dir.join("data");
        if install {
            sh(&format!(
                "mariadb-install-db --no-defaults --datadir={} --user=root \
                 --auth-root-authentication-method=socket --skip-test-db > {}/install.log 2>&1",
                data.display(),
                dir.display()
            ));
        }
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .args([
                "--user=root",
                "--skip-networking",
                "--innodb-buffer-pool-size=256M",
                "--innodb-log-file-size=256M",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-log-bin",
            ])
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = Server {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.sql("SELECT 1").is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A benchmark that fails half-way leaves no server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` of this process in KiB, after resetting it when `reset`.
fn peak_rss_kib(reset: bool) -> u64 {
    if reset {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn report(what: &str, took: Duration, data_mb: f64, extra: &str) {
    println!(
        "{what:<58} {:>7.1} s {:>8.1} MB/s {extra}",
        took.as_secs_f64(),
        data_mb / took.as_secs_f64()
    );
}

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (the restore gives the files to the database account)");
        return;
    }
    let mib: u64 = std::env::var("TROVE_BENCH_BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let tmp = tempfile::Builder::new()
        .prefix("trove-backup-bench")
        .tempdir()
        .unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tmp")).unwrap();
    let server = Server::start(&src, true);

    // One table grown by doubling until its data reaches the wanted size; each copy of a
    // row gets a new random prefix, the rest repeats (so it compresses well, as text does).
    println!("filling {mib} MiB ...");
    let filled = Instant::now();
    server
        .sql(
            "CREATE DATABASE bench; CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             pad VARCHAR(1024)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4; \
             INSERT INTO bench.t (pad) SELECT REPEAT(MD5(RAND()), 30) FROM bench.seq_1_to_1024",
        )
        .unwrap();
    loop {
        let bytes: u64 = server
            .sql(
                "SELECT data_length FROM information_schema.tables \
                 WHERE table_schema = 'bench' AND table_name = 't'",
            )
            .unwrap()
            .parse()
            .unwrap();
        if bytes >= mib * 1024 * 1024 {
            break;
        }
        server
            .sql(
                "INSERT INTO bench.t (pad) SELECT CONCAT(MD5(RAND()), SUBSTRING(pad, 33)) \
                 FROM bench.t",
            )
            .unwrap();
    }
    server.sql("FLUSH TABLES").unwrap();
    println!(
        "data directory: {:.0} MB (filled in {:.0} s)",
        dir_size(&src.join("data")) as f64 / 1e6,
        filled.elapsed().as_secs_f64()
    );

    let cnf = src.join("os_admin.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[client]\nuser=root\nsocket={}\n",
            server.socket().display()
        ),
    )
    .unwrap();
    let tool = format!(
        "mariadb-backup --defaults-file={} --backup --stream=xbstream --datadir={} \
         --tmpdir={tmp} --target-dir={tmp} 2>/dev/null",
        cnf.display(),
        src.join("data").display(),
        tmp = src.join("tmp").display(),
    );

    // The stream the tool produces: its size is the "data" of every MB/s below.
    let raw = tmp.path().join("raw.xbstream");
    sh(&format!("{tool} > {}", raw.display()));
    let data_mb = std::fs::metadata(&raw).unwrap().len() as f64 / 1e6;
    println!("backup stream: {data_mb:.0} MB\n");

    let t = Instant::now();
    sh(&format!("{tool} > /dev/null"));
    report(
        "mariadb-backup --stream=xbstream > /dev/null",
        t.elapsed(),
        data_mb,
        "",
    );

    let t = Instant::now();
    sh(&format!("{tool} | zstd -3 -q > /dev/null"));
    report(
        "mariadb-backup | zstd -3 > /dev/null",
        t.elapsed(),
        data_mb,
        "",
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store_dir = tmp.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    let store: Arc<dyn BackupStore> = Arc::new(LocalStore::new(&store_dir).unwrap());
    let paths = MariaDbPaths {
        data_dir: src.join("data"),
        tmp_dir: src.join("tmp"),
        os_admin_cnf: cnf.clone(),
    };
    let job = BackupJob {
        id: uuid::Uuid::new_v4().to_string(),
        store: store.clone(),
        container: "database_backups".into(),
        metadata: Metadata::new(),
        parent: None,
    };
    let before = peak_rss_kib(true);
    let t = Instant::now();
    let stored = rt.block_on(mariadb_backup(&paths, &job)).expect("backup");
    let took = t.elapsed();
    let peak = peak_rss_kib(false);
    report(
        "agent: hot backup -> zstd -> local store (segments, MD5)",
        took,
        data_mb,
        &format!(
            "(stored {:.0} MB; process peak RSS {} MiB, +{} MiB)",
            stored.size as f64 / 1e6,
            peak / 1024,
            peak.saturating_sub(before) / 1024
        ),
    );
    server.stop();

    // Restores into fresh data directories.
    let raw_dst = tmp.path().join("raw-restore");
    std::fs::create_dir_all(&raw_dst).unwrap();
    let t = Instant::now();
    sh(&format!(
        "cd {dst} && mbstream -x < {raw} && mariadb-backup --prepare --target-dir={dst} \
         > /dev/null 2>&1",
        dst = raw_dst.display(),
        raw = raw.display()
    ));
    report(
        "mbstream -x + mariadb-backup --prepare",
        t.elapsed(),
        data_mb,
        "",
    );
    std::fs::remove_dir_all(&raw_dst).unwrap();
    std::fs::remove_file(&raw).unwrap();

    let dst = tmp.path().join("dst");
    std::fs::create_dir_all(dst.join("data")).unwrap();
    std::fs::create_dir_all(dst.join("tmp")).unwrap();
    let dst_paths = MariaDbPaths {
        data_dir: dst.join("data"),
        tmp_dir: dst.join("tmp"),
        os_admin_cnf: cnf,
    };
    let info = RestoreInfo {
        id: Some(job.id.clone()),
        location: stored.location.clone(),
        checksum: Some(stored.checksum.clone()),
        kind: Some("full".into()),
    };
    let before = peak_rss_kib(true);
    let t = Instant::now();
    rt.block_on(mariadb_restore(&dst_paths, &info, &ServiceUser::current()))
        .expect("restore");
    let took = t.elapsed();
    let peak = peak_rss_kib(false);
    report(
        "agent: verify + zstd -d + mbstream -x + --prepare",
        took,
        data_mb,
        &format!(
            "(process peak RSS {} MiB, +{} MiB)",
            peak / 1024,
            peak.saturating_sub(before) / 1024
        ),
    );
    // The restored copy holds the same rows.
    let restored = Server::start(&dst, false);
    let rows = restored.sql("SELECT COUNT(*) FROM bench.t").unwrap();
    println!("\nrestored server: {rows} rows");
    restored.stop();
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}
