//! A private Redis Sentinel setup for tests: a master, one replica and three
//! sentinels, each a `redis-server` on a free port in its own temp dir, with
//! helpers to fail over, kill and restart. Stopped on drop.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::redis_cluster::{Process, redis_cli, require_binaries, wait_for};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// A running master, replica and three sentinels owned by the test. Nodes are
/// named by their port.
#[derive(Debug)]
pub struct RedisSentinel {
    /// The master and the replica, in start order.
    data: Vec<Process>,
    sentinels: Vec<Process>,
    root: TempDir,
}

impl RedisSentinel {
    /// Start a master, a replica of it and three sentinels (quorum 2,
    /// `down-after-milliseconds` 1000), and wait until the replica is in
    /// sync and every sentinel knows the replica and the two other sentinels.
    ///
    /// # Panics
    /// When redis-server or redis-cli is missing, or the setup is not ready
    /// within 30 s: a test that needs Redis must fail loudly, never skip.
    pub fn start() -> Self {
        require_binaries();
        let root = tempfile::Builder::new()
            .prefix("sessiond-redis-sentinel-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for Redis Sentinel: {e}"));
        let mut setup = Self {
            data: Vec::with_capacity(2),
            sentinels: Vec::with_capacity(3),
            root,
        };

        let dir = setup.subdir("master");
        let master = Process::start(&dir, Vec::new(), |port| Ok(data_args(&dir, port)))
            .unwrap_or_else(|e| panic!("the master redis-server did not start: {e}"));
        let master_port = master.port;
        setup.data.push(master);
        let dir = setup.subdir("replica");
        let replica = Process::start(&dir, replica_of(master_port), |port| {
            Ok(data_args(&dir, port))
        })
        .unwrap_or_else(|e| panic!("the replica redis-server did not start: {e}"));
        let replica_port = replica.port;
        setup.data.push(replica);
        // Sentinels learn of replicas from the master's INFO, which they ask
        // for at once and then only every 10 s: the replica must be online
        // before they start.
        wait_for(
            "the replica to sync with the master",
            Duration::from_secs(20),
            || {
                in_sync(replica_port, master_port)?;
                let info = redis_cli(master_port, "INFO replication")?;
                if info
                    .lines()
                    .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "the master does not list the replica online: {info}"
                    ))
                }
            },
        );

        for i in 0..3 {
            let dir = setup.subdir(&format!("sentinel-{i}"));
            let sentinel = Process::start(&dir, vec!["--sentinel".into()], |port| {
                write_sentinel_conf(&dir, port, master_port)
            })
            .unwrap_or_else(|e| panic!("sentinel {i} did not start: {e}"));
            setup.sentinels.push(sentinel);
        }
        wait_for(
            "the sentinels to find each other and the replica",
            Duration::from_secs(30),
            || {
                for sentinel in setup.sentinel_ports() {
                    let state = pairs(&redis_cli(
                        sentinel,
                        &format!("SENTINEL MASTER {MASTER_NAME}"),
                    )?);
                    for (key, want) in [
                        ("port", master_port.to_string()),
                        ("flags", "master".to_owned()),
                        ("num-other-sentinels", "2".to_owned()),
                        ("num-slaves", "1".to_owned()),
                    ] {
                        let got = value(&state, key);
                        if got != Some(want.as_str()) {
                            return Err(format!("sentinel {sentinel}: {key} is {got:?}"));
                        }
                    }
                    let replicas = pairs(&redis_cli(
                        sentinel,
                        &format!("SENTINEL REPLICAS {MASTER_NAME}"),
                    )?);
                    let port = replica_port.to_string();
                    if value(&replicas, "port") != Some(port.as_str())
                        || value(&replicas, "flags") != Some("slave")
                        || value(&replicas, "master-link-status") != Some("ok")
                    {
                        return Err(format!("sentinel {sentinel} sees replicas {replicas:?}"));
                    }
                }
                Ok(())
            },
        );
        setup
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster`
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinel_ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The master's port, by `SENTINEL GET-MASTER-ADDR-BY-NAME` on the first
    /// running sentinel that answers.
    ///
    /// # Panics
    /// When no sentinel answers.
    pub fn master_port(&self) -> u16 {
        let mut errors = Vec::new();
        for sentinel in self.running_sentinels() {
            match master_addr(sentinel) {
                Ok(port) => return port,
                Err(e) => errors.push(e),
            }
        }
        panic!("no sentinel names the master: {errors:?}");
    }

    /// The ports of the two data nodes (the first master and its replica, in
    /// that order, whatever their roles now).
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|p| p.port).collect()
    }

    /// The ports of the three sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|p| p.port).collect()
    }

    /// Run one command on one data node or sentinel with `redis-cli`
    /// (arguments split on whitespace, no quoting) and return its output,
    /// trimmed. An error reply or a failed connection is `Err` with the
    /// message.
    pub fn command(&self, port: u16, cmd: &str) -> Result<String, String> {
        redis_cli(port, cmd)
    }

    /// `SENTINEL FAILOVER mymaster`, then wait until every running sentinel
    /// names the other data node and it reports `role:master`; returns its
    /// port. The old master is turned into a replica by the sentinels some
    /// seconds later; this does not wait for that.
    ///
    /// # Panics
    /// When the failover does not complete within 20 s.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let new = self.other_data_node(old);
        let mut requested = false;
        wait_for(
            &format!("the sentinels to fail over from {old} to {new}"),
            Duration::from_secs(20),
            || {
                if !requested {
                    // Refused while a failover is under way or before the
                    // sentinel trusts the replica: ask again.
                    let sentinel = self.running_sentinels().first().copied();
                    let sentinel = sentinel.ok_or("no sentinel is running")?;
                    redis_cli(sentinel, &format!("SENTINEL FAILOVER {MASTER_NAME}"))
                        .map_err(|e| format!("SENTINEL FAILOVER on {sentinel}: {e}"))?;
                    requested = true;
                }
                self.check_master(new)
            },
        );
        new
    }

    /// Kill the current master with SIGKILL, as a crash would; returns its
    /// port.
    ///
    /// # Panics
    /// When no sentinel names the master.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        self.data_node_mut(port).kill();
        port
    }

    /// Wait until every running sentinel names a data node other than `old`
    /// as master and that node reports `role:master`; returns its port.
    ///
    /// # Panics
    /// When that does not happen within 30 s (detection takes about 1 s and
    /// an election a few more; a split vote retries only after 10 s).
    pub fn wait_for_new_master(&self, old: u16) -> u16 {
        let new = self.other_data_node(old);
        wait_for(
            &format!("the sentinels to promote {new} in place of {old}"),
            Duration::from_secs(30),
            || self.check_master(new),
        );
        new
    }

    /// Start a killed data node or sentinel again on the same port and dir.
    /// A data node that is not the sentinels' master comes back as a replica
    /// of the current master (as the sentinels would make it, only at once)
    /// and is waited for until in sync; a sentinel is waited for until it
    /// names the master.
    ///
    /// # Panics
    /// When `port` is not part of this setup or does not come back within
    /// 20 s.
    pub fn restart(&mut self, port: u16) {
        if self.sentinel_ports().contains(&port) {
            if let Some(sentinel) = self.sentinels.iter_mut().find(|p| p.port == port) {
                sentinel
                    .restart(vec!["--sentinel".into()])
                    .unwrap_or_else(|e| panic!("sentinel {port} did not restart: {e}"));
            }
            wait_for(
                &format!("the restarted sentinel {port} to name the master"),
                Duration::from_secs(20),
                || master_addr(port),
            );
            return;
        }
        let master = self.master_port();
        let extra = if master == port {
            Vec::new()
        } else {
            replica_of(master)
        };
        self.data_node_mut(port)
            .restart(extra)
            .unwrap_or_else(|e| panic!("redis-server {port} did not restart: {e}"));
        if master != port {
            wait_for(
                &format!("the restarted {port} to sync with the master {master}"),
                Duration::from_secs(20),
                || in_sync(port, master),
            );
        }
    }

    fn subdir(&self, name: &str) -> std::path::PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }

    fn running_sentinels(&self) -> Vec<u16> {
        self.sentinels
            .iter()
            .filter(|p| p.is_running())
            .map(|p| p.port)
            .collect()
    }

    fn other_data_node(&self, port: u16) -> u16 {
        self.data
            .iter()
            .map(|p| p.port)
            .find(|&p| p != port)
            .unwrap_or_else(|| panic!("no data node other than {port}"))
    }

    fn data_node_mut(&mut self, port: u16) -> &mut Process {
        let known = self.data_ports();
        self.data
            .iter_mut()
            .find(|p| p.port == port)
            .unwrap_or_else(|| panic!("{port} is not a data node of this setup ({known:?})"))
    }

    /// Every running sentinel names `port` as master and it says so itself.
    fn check_master(&self, port: u16) -> Result<(), String> {
        let sentinels = self.running_sentinels();
        if sentinels.is_empty() {
            return Err("no sentinel is running".into());
        }
        for sentinel in sentinels {
            let named = master_addr(sentinel)?;
            if named != port {
                return Err(format!("sentinel {sentinel} names {named}"));
            }
        }
        let info = redis_cli(port, "INFO replication")?;
        if info.lines().any(|l| l.trim() == "role:master") {
            Ok(())
        } else {
            Err(format!("{port} does not report role:master"))
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for process in self.sentinels.iter_mut().chain(self.data.iter_mut()) {
            process.kill();
        }
    }
}

fn data_args(dir: &Path, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        // Sync a replica at once instead of waiting 5 s for others to join.
        "--repl-diskless-sync-delay",
        "0",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.extend(["--dir".into(), dir.as_os_str().to_owned()]);
    args.extend(["--logfile".into(), dir.join("redis.log").into_os_string()]);
    args
}

fn replica_of(master_port: u16) -> Vec<OsString> {
    ["--replicaof", "127.0.0.1", &master_port.to_string()]
        .into_iter()
        .map(OsString::from)
        .collect()
}

/// Write `sentinel.conf` (the sentinel rewrites it as it learns) and return
/// the arguments that start a sentinel with it.
fn write_sentinel_conf(dir: &Path, port: u16, master_port: u16) -> Result<Vec<OsString>, String> {
    let path = dir.join("sentinel.conf");
    let conf = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir \"{dir}\"\n\
         logfile \"{log}\"\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
        log = dir.join("redis.log").display(),
    );
    std::fs::write(&path, conf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(vec![path.into_os_string()])
}

/// The master port `sentinel` names.
fn master_addr(sentinel: u16) -> Result<u16, String> {
    let reply = redis_cli(
        sentinel,
        &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}"),
    )?;
    reply
        .lines()
        .nth(1)
        .and_then(|port| port.trim().parse().ok())
        .ok_or_else(|| format!("sentinel {sentinel} answers {reply:?} for the master address"))
}

/// `port` replicates from `master` with its link up.
fn in_sync(port: u16, master: u16) -> Result<(), String> {
    let info = redis_cli(port, "INFO replication")?;
    let has = |want: &str| info.lines().any(|l| l.trim() == want);
    if has("role:slave") && has(&format!("master_port:{master}")) && has("master_link_status:up") {
        Ok(())
    } else {
        Err(format!("{port} is not in sync with {master}: {info}"))
    }
}

/// A flat `redis-cli` listing of field names and values as pairs.
fn pairs(reply: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = reply.lines().map(str::trim).collect();
    lines
        .chunks_exact(2)
        .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn failover_moves_the_master_to_the_other_data_node() {
        let started = Instant::now();
        let setup = RedisSentinel::start();
        eprintln!("Redis Sentinel started in {:?}", started.elapsed());

        let sentinels = setup.sentinel_ports();
        assert_eq!(sentinels.len(), 3);
        assert_eq!(
            setup.url(),
            format!(
                "redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/mymaster",
                sentinels[0], sentinels[1], sentinels[2]
            )
        );
        let data = setup.data_ports();
        let old = setup.master_port();
        assert_eq!(old, data[0]);
        assert_eq!(setup.command(old, "SET k v").unwrap(), "OK");

        let started = Instant::now();
        let new = setup.failover();
        eprintln!("SENTINEL FAILOVER took {:?}", started.elapsed());
        assert_eq!(new, data[1]);
        assert_eq!(setup.master_port(), new);
        let info = setup.command(new, "INFO replication").unwrap();
        assert!(info.contains("role:master"), "{info}");
        assert_eq!(setup.command(new, "GET k").unwrap(), "v");
        assert_eq!(setup.command(new, "SET k w").unwrap(), "OK");

        // The sentinels turn the old master into a replica of the new one.
        let started = Instant::now();
        wait_for("the old master to follow", Duration::from_secs(30), || {
            in_sync(old, new)
        });
        eprintln!("old master became a replica after {:?}", started.elapsed());
    }

    #[test]
    fn a_killed_master_is_replaced_and_comes_back_as_replica() {
        let mut setup = RedisSentinel::start();
        let old = setup.kill_master();
        assert!(setup.command(old, "PING").is_err());
        let started = Instant::now();
        let new = setup.wait_for_new_master(old);
        eprintln!(
            "sentinels replaced the killed master in {:?}",
            started.elapsed()
        );
        assert_ne!(new, old);
        assert!(setup.data_ports().contains(&new));
        assert_eq!(setup.master_port(), new);

        setup.restart(old);
        let info = setup.command(old, "INFO replication").unwrap();
        assert!(info.contains(&format!("master_port:{new}")), "{info}");

        let sentinel = setup.sentinel_ports()[1];
        setup.sentinels[1].kill();
        setup.restart(sentinel);
        assert_eq!(master_addr(sentinel).unwrap(), new);
    }
}
