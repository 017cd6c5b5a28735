//! A private `redis-server` process for tests: started from PATH on a free
//! port in a temp dir, killable and restartable on the same port, stopped on
//! drop. Tests never touch a Redis they did not start.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const INSTALL_HINT: &str = "redis-server is not on PATH. Install it (Debian/Ubuntu: `apt-get install -y redis-server`) or run `scripts/test`, which installs it when run as root.";

/// A running redis-server owned by the test.
#[derive(Debug)]
pub struct RedisServer {
    dir: TempDir,
    port: u16,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server on a free port.
    ///
    /// # Panics
    /// When redis-server is missing or does not come up: a test that needs
    /// Redis must fail loudly, never skip.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Start a server that also listens with TLS (a certificate for
    /// `localhost` signed by a fresh CA, see [`RedisServer::ca_file`]); the
    /// plain port stays open for [`RedisServer::command`].
    ///
    /// # Panics
    /// As [`RedisServer::start`], and when `openssl` cannot make the
    /// certificates.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sessiond-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        if tls {
            make_certificates(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut server = Self {
            dir,
            port: 0,
            tls_port: None,
            child: None,
        };
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: retry.
        for _ in 0..5 {
            server.port = free_port();
            server.tls_port = tls.then(free_port);
            let child = spawn(server.dir.path(), server.port, server.tls_port)
                .unwrap_or_else(|e| panic!("{e}"));
            server.child = Some(child);
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    server.kill();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://localhost:<tls port>/`.
    ///
    /// # Panics
    /// When the server was not started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        let port = self
            .tls_port
            .unwrap_or_else(|| panic!("this redis-server was started without TLS"));
        format!("rediss://localhost:{port}/")
    }

    /// The PEM file of the CA that signed the TLS certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server with SIGSTOP: connections stay open and accept bytes,
    /// but nothing answers (a frozen or overloaded host).
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Let a frozen server go on (SIGCONT).
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Start the server again on the same port (after [`RedisServer::kill`]).
    ///
    /// # Panics
    /// When it does not come back within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child =
                spawn(self.dir.path(), self.port, self.tls_port).unwrap_or_else(|e| panic!("{e}"));
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("redis-server did not restart: {e}"),
                Err(_) => {
                    // The port may still be in TIME_WAIT or held by the old process.
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Send one command (inline form) on a fresh connection and return the
    /// raw RESP reply. Handy for `INFO commandstats` or `DBSIZE` in tests.
    pub fn command(&self, inline: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{inline}\r\n").as_bytes())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = stream.read(&mut buf)?;
            reply.extend_from_slice(&buf[..n]);
            if n == 0 || resp_complete(&reply) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(format!("exited with {status}; log:\n{log}"));
            }
            if matches!(self.command("PING"), Ok(r) if r.starts_with("+PONG")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no PONG within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, port: u16, tls_port: Option<u16>) -> Result<Child, String> {
    let mut command = Command::new("redis-server");
    if let Some(tls_port) = tls_port {
        command
            .args([
                "--tls-port",
                &tls_port.to_string(),
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(dir.join("server.crt"))
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.crt"));
    }
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => INSTALL_HINT.to_owned(),
            _ => format!("cannot start redis-server: {e}"),
        })
}

/// A CA and a `localhost` server certificate signed by it, in `dir`.
pub(crate) fn make_certificates(dir: &Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => "openssl is not on PATH (Debian/Ubuntu: `apt-get install -y openssl`); the TLS tests need it.".to_owned(),
                _ => format!("cannot run openssl: {e}"),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=sessiond test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    run(&ca)?;
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    run(&csr)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| format!("cannot write server.ext: {e}"))?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Whether `reply` holds one complete RESP value (simple cases used here:
/// simple strings, errors, integers and one bulk string).
fn resp_complete(reply: &[u8]) -> bool {
    let Some(first_line_end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match reply.first() {
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&reply[1..first_line_end])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            len < 0 || reply.len() >= first_line_end + 2 + len as usize + 2
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start();
        assert!(server.command("PING").unwrap().starts_with("+PONG"));
        assert!(server.command("SET k v").unwrap().starts_with("+OK"));
        let info = server.command("INFO server").unwrap();
        assert!(info.contains(&format!("tcp_port:{}", server.port())));
        server.kill();
        assert!(server.command("PING").is_err());
        server.restart();
        assert!(server.command("PING").unwrap().starts_with("+PONG"));
        // Nothing persisted across the crash (--save "").
        assert!(server.command("GET k").unwrap().starts_with("$-1"));
    }
}
