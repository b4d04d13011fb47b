//! The `cadenza` binary as a user runs it: configuration errors, first and second start,
//! files it writes, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cadenza");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

fn cadenza(data: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CADENZA_DATA_DIR", data)
        .env("CADENZA_LOG_LEVEL", "info");
    c
}

#[test]
fn version_and_config_errors() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let dir = tempfile::tempdir().expect("tmp");
    let out = cadenza(dir.path()).env("CADENZA_LISTEN", "nowhere").arg("serve").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("listen"), "{err}");

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\ndata_dirr = \"x\"\n").expect("write");
    let out = cadenza(dir.path()).arg("--config").arg(&cfg).arg("serve").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dirr"));

    let out = cadenza(dir.path())
        .env("CADENZA_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        .arg("serve")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CADENZA_SECRET_KEY"));
}

type Output = std::thread::JoinHandle<Vec<String>>;

/// Starts `cadenza serve` and waits until it accepts connections. Its stdout is collected by a
/// thread until the process exits.
fn start(data: &std::path::Path, port: u16, extra: &[(&str, &str)]) -> (std::process::Child, Output) {
    let mut cmd = cadenza(data);
    cmd.env("CADENZA_LISTEN", format!("127.0.0.1:{port}")).arg("serve").stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect());
    let deadline = Instant::now() + Duration::from_secs(30);
    // Ready means this child answers HTTP (not merely that something holds the port).
    while !answers_healthz(port) {
        assert!(child.try_wait().expect("wait").is_none(), "server exited during start-up");
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, lines)
}

fn answers_healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// SIGTERM, then the exit status and everything the process printed on stdout.
fn stop(mut child: std::process::Child, lines: Output) -> (Option<i32>, Vec<String>) {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "no graceful exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), lines.join().unwrap_or_default())
}

#[test]
fn first_start_bootstraps_once_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = "cdz_sk_binary-test-token-0123456789abcdefghijklm";
    let port = free_port();
    let (child, out) = start(dir.path(), port, &[("CADENZA_BOOTSTRAP_API_KEY", token)]);
    let (code, out) = stop(child, out);
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    assert_eq!(out.last().map(String::as_str), Some(token), "the token is printed once: {out:?}");

    let key_file = dir.path().join("admin-api-key");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key file").trim(), token);
    assert_eq!(std::fs::metadata(&key_file).expect("meta").permissions().mode() & 0o777, 0o600);
    let master = dir.path().join("master.key");
    assert_eq!(std::fs::metadata(&master).expect("meta").permissions().mode() & 0o777, 0o600);
    let master_before = std::fs::read_to_string(&master).expect("master");

    // Second start: creates nothing, prints nothing, keeps the master key.
    let port = free_port();
    let (child, out) =
        start(dir.path(), port, &[("CADENZA_BOOTSTRAP_API_KEY", "cdz_sk_a-different-token-0123456789abcdefghij")]);
    let (code, out) = stop(child, out);
    assert_eq!(code, Some(0));
    assert!(out.is_empty(), "a later start prints no token: {out:?}");
    assert_eq!(std::fs::read_to_string(&master).expect("master"), master_before);

    // Housekeeping lives on the job queue: each task one recurring job, however many starts.
    let out = cadenza(dir.path()).args(["admin", "jobs", "list", "--state", "all"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let tasks: Vec<serde_json::Value> = listed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["kind"] == "maintenance")
        .collect();
    for task in ["PurgeJobs", "ExpireUploads", "ReseedSyncs"] {
        let of: Vec<&serde_json::Value> = tasks.iter().filter(|j| j["payload"] == task).collect();
        assert_eq!(of.len(), 1, "one {task} job across two starts: {listed}");
        assert!(of[0]["state"] == "queued" || of[0]["state"] == "running", "{listed}");
    }
    let out =
        cadenza(dir.path()).args(["admin", "jobs", "retry", "job_01ARZ3NDEKTSV4RRFFQ69G5FAV"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead job"));
    let out = cadenza(dir.path()).args(["admin", "jobs", "list", "--state", "zombie"]).output().expect("run");
    assert!(!out.status.success());

    // `migrate` on the same data dir is a no-op that succeeds.
    let out = cadenza(dir.path()).arg("migrate").output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
