//! A private PostgreSQL server for tests: `initdb` and `pg_ctl` from
//! Debian's packages (or PATH) on a free port in a temp dir, run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses root),
//! with TLS if asked, stoppable and restartable on the same port, stopped
//! on drop. Tests never
//! touch a server they did not start.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis_server::free_port;

const INSTALL_HINT: &str = "PostgreSQL's initdb and pg_ctl were not found. Install them (Debian/Ubuntu: `apt-get install -y postgresql`) or run `scripts/test`, which installs them when run as root.";

/// The database the server is created with (its owner is the OS user that
/// runs it).
pub const DATABASE: &str = "postgres";

/// A running PostgreSQL owned by the test.
#[derive(Debug)]
pub struct PostgresServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// The OS user the server runs as (`postgres` when the tests run as
    /// root, else the current user).
    user: String,
    running: bool,
    /// Whether it accepts TLS.
    tls: bool,
}

impl PostgresServer {
    /// Initialize a cluster in a temp dir and start it on a free port.
    ///
    /// # Panics
    /// When the binaries are missing or the server does not come up: a test
    /// that needs PostgreSQL must fail loudly, never skip.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Start a server that also accepts TLS, with a certificate for
    /// `localhost` and `127.0.0.1` signed by a fresh CA (see
    /// [`PostgresServer::ca_file`]).
    ///
    /// # Panics
    /// As [`PostgresServer::start`], and when `openssl` cannot make the
    /// certificates.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The CA certificate (PEM) a TLS server's certificate is signed by.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> Self {
        let bin = find_bin().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let dir = tempfile::Builder::new()
            .prefix("sessiond-postgres-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for PostgreSQL: {e}"));
        if tls {
            crate::redis_server::make_certificates(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap_or_else(|e| panic!("cannot protect the server key: {e}"));
        }
        let root = is_root();
        let user = if root {
            "postgres".to_owned()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "postgres".to_owned())
        };
        if root {
            // The server's user must own its directory.
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
            assert!(status.success(), "chown of {} failed", dir.path().display());
        }
        let mut server = Self {
            dir,
            bin,
            port: free_port(),
            user,
            running: false,
            tls,
        };
        let data = server.data_dir();
        let out = server.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server.launch();
        server
    }

    /// `postgres://USER@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{DATABASE}",
            self.user, self.port
        )
    }

    /// `postgres://USER@127.0.0.1:PORT/DATABASE`.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    /// Create a fresh database of its own for one test and return its URL.
    ///
    /// # Panics
    /// When PostgreSQL refuses.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("test{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.sql(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        self.url_of(&name)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stop it at once (`pg_ctl stop -m immediate`: no clean shutdown, as a
    /// crash would); [`PostgresServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Start it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Run `sql` with psql as the server's user; its output (unaligned,
    /// tuples only), or the error text.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-d",
                DATABASE,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let data = self.data_dir().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=on -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            let dir = self.dir.path().display();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file='{dir}/server.crt' -c ssl_key_file='{dir}/server.key'"
            ));
        }
        let out = self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
            ],
        );
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "PostgreSQL did not start on port {}:\n{}\n{}\n{log}",
                self.port,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL never listened on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.running = true;
    }

    /// Run one of the PostgreSQL programs as the server's user.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let program = if path.is_file() {
            path
        } else {
            PathBuf::from(program)
        };
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}. {INSTALL_HINT}", program.display()))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of `initdb` and `pg_ctl`: Debian's newest
/// `/usr/lib/postgresql/N/bin`, else PATH.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|dir| Path::new(dir).join("initdb").is_file())
    })
}

fn is_root() -> bool {
    // The effective user id, without unsafe code: `id -u`.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_survives_an_immediate_stop_and_restarts() {
        let mut pg = PostgresServer::start();
        assert!(pg.url().starts_with("postgres://"));
        pg.sql("CREATE TABLE t (x int)")
            .unwrap_or_else(|e| panic!("{e}"));
        pg.sql("INSERT INTO t VALUES (1), (2)")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pg.sql("SELECT sum(x) FROM t").as_deref(), Ok("3"));
        pg.kill();
        assert!(pg.sql("SELECT 1").is_err());
        pg.restart();
        // Committed rows survive an immediate stop.
        assert_eq!(pg.sql("SELECT sum(x) FROM t").as_deref(), Ok("3"));
        assert!(pg.sql("SELECT nope").is_err());
    }
}
