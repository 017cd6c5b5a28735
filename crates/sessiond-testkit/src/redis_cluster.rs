//! A private local Redis Cluster for tests: three masters and three replicas,
//! each a `redis-server` on free ports in its own temp dir, with helpers to
//! kill, restart and fail over nodes. Stopped on drop.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis_server::free_port;

/// Shown when `redis-server` or `redis-cli` cannot be run.
pub(crate) const INSTALL_HINT: &str = "redis-server and redis-cli must be on PATH. Install them (Debian/Ubuntu: `apt-get install -y redis-server`, which brings `redis-tools` with redis-cli) or run `scripts/test`, which installs them when run as root.";

const MASTERS: usize = 3;
const NODES: usize = 6;

/// A running Redis Cluster of three masters with one replica each, owned by
/// the test. Nodes are named by their port.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Process>,
    /// The masters right after creation: the seed list of [`RedisCluster::url`].
    seeds: Vec<u16>,
    /// For each master stopped with [`RedisCluster::kill_node`], its running
    /// replicas just before the kill.
    orphans: HashMap<u16, Vec<u16>>,
    root: TempDir,
}

/// A node's role in the cluster, as seen in `CLUSTER NODES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Master { has_slots: bool },
    Replica { of: Option<u16> },
}

impl RedisCluster {
    /// Start six nodes, join them into a cluster with `redis-cli --cluster
    /// create` and wait until every node agrees that all slots are served
    /// and every replica is in sync.
    ///
    /// # Panics
    /// When redis-server or redis-cli is missing, or the cluster does not
    /// become healthy within 30 s: a test that needs Redis must fail loudly,
    /// never skip.
    pub fn start() -> Self {
        require_binaries();
        let root = tempfile::Builder::new()
            .prefix("sessiond-redis-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the Redis Cluster: {e}"));
        let mut cluster = Self {
            nodes: Vec::with_capacity(NODES),
            seeds: Vec::new(),
            orphans: HashMap::new(),
            root,
        };
        for i in 0..NODES {
            let dir = cluster.root.path().join(format!("node-{i}"));
            std::fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let node = Process::start(&dir, Vec::new(), |port| node_args(&dir, port))
                .unwrap_or_else(|e| panic!("cluster node {i} did not start: {e}"));
            cluster.nodes.push(node);
        }

        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli --cluster create: {e}. {INSTALL_HINT}")
            });
        if !out.status.success() {
            panic!(
                "redis-cli --cluster create failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let topology = wait_for(
            "the new Redis Cluster to become healthy",
            Duration::from_secs(30),
            || cluster.check_healthy(),
        );
        cluster.seeds = masters_of(&topology);
        assert_eq!(
            cluster.seeds.len(),
            MASTERS,
            "the new cluster has masters {:?}",
            cluster.seeds
        );
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`: the three
    /// masters the cluster started with, as a seed list (after a failover
    /// some of them may be replicas or down; a cluster client copes).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .seeds
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The ports of all six nodes, running or killed, in start order.
    pub fn nodes(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The running nodes that are masters now, by `CLUSTER NODES` on a
    /// running node; ascending.
    ///
    /// # Panics
    /// When no node answers.
    pub fn masters(&self) -> Vec<u16> {
        masters_of(&self.topology())
    }

    /// The running nodes that are replicas now, by `CLUSTER NODES` on a
    /// running node; ascending.
    ///
    /// # Panics
    /// When no node answers.
    pub fn replicas(&self) -> Vec<u16> {
        self.topology()
            .into_iter()
            .filter(|(_, role)| matches!(role, Role::Replica { .. }))
            .map(|(port, _)| port)
            .collect()
    }

    /// Run one command on one node with `redis-cli` (arguments split on
    /// whitespace, no quoting; redirects are not followed) and return its
    /// output, trimmed. An error reply or a failed connection is `Err` with
    /// the message.
    pub fn command(&self, port: u16, cmd: &str) -> Result<String, String> {
        redis_cli(port, cmd)
    }

    /// Kill one node with SIGKILL, as a crash would. Killing a killed node
    /// does nothing.
    ///
    /// # Panics
    /// When `port` is not a node of this cluster.
    pub fn kill_node(&mut self, port: u16) {
        let index = self.index_of(port);
        if !self.nodes[index].is_running() {
            return;
        }
        // Remember who may take over, for wait_for_promotion_after_kill.
        let running = self.running();
        let replicas = redis_cli(port, "CLUSTER NODES")
            .and_then(|text| parse_nodes(&text))
            .map(|entries| {
                let id = entries
                    .iter()
                    .find(|e| e.myself && e.master)
                    .map(|e| e.id.clone());
                entries
                    .iter()
                    .filter(|e| id.is_some() && e.master_id == id && running.contains(&e.port))
                    .map(|e| e.port)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if replicas.is_empty() {
            self.orphans.remove(&port);
        } else {
            self.orphans.insert(port, replicas);
        }
        self.nodes[index].kill();
    }

    /// Start a killed node again on the same ports and dir, so it rejoins
    /// with its `nodes.conf` (a former master comes back as a replica of
    /// whoever took its slots), and wait until the cluster is healthy again.
    ///
    /// # Panics
    /// When `port` is not a node of this cluster, or the cluster is not
    /// healthy within 20 s.
    pub fn restart_node(&mut self, port: u16) {
        let index = self.index_of(port);
        self.nodes[index]
            .restart(Vec::new())
            .unwrap_or_else(|e| panic!("cluster node {port} did not restart: {e}"));
        wait_for(
            &format!("node {port} to rejoin the cluster"),
            Duration::from_secs(20),
            || self.check_healthy(),
        );
    }

    /// Promote a replica with `CLUSTER FAILOVER FORCE` and wait until every
    /// running node sees it as a master and the cluster is healthy (its old
    /// master then replicates from it).
    ///
    /// # Panics
    /// When the command fails (say `replica_port` is a master) or the
    /// promotion does not complete within 20 s.
    pub fn failover(&self, replica_port: u16) {
        let reply = redis_cli(replica_port, "CLUSTER FAILOVER FORCE")
            .unwrap_or_else(|e| panic!("CLUSTER FAILOVER FORCE on {replica_port} failed: {e}"));
        assert_eq!(reply, "OK", "CLUSTER FAILOVER FORCE on {replica_port}");
        wait_for(
            &format!("replica {replica_port} to become a master"),
            Duration::from_secs(20),
            || {
                let info = redis_cli(replica_port, "INFO replication")?;
                if !has_line(&info, "role:master") {
                    return Err(format!("{replica_port} is not a master yet"));
                }
                let topology = self.check_healthy()?;
                match topology.get(&replica_port) {
                    Some(Role::Master { .. }) => Ok(()),
                    other => Err(format!("the cluster sees {replica_port} as {other:?}")),
                }
            },
        );
    }

    /// After [`RedisCluster::kill_node`] on a master: wait until one of its
    /// replicas has taken over and the cluster is healthy again, and return
    /// the new master's port.
    ///
    /// # Panics
    /// When `dead_master_port` was not a master with a running replica when
    /// it was killed, or no replica takes over within 20 s.
    pub fn wait_for_promotion_after_kill(&self, dead_master_port: u16) -> u16 {
        let candidates = self.orphans.get(&dead_master_port).unwrap_or_else(|| {
            panic!("{dead_master_port} was not a master with a running replica when kill_node stopped it")
        });
        wait_for(
            &format!("a replica of the killed master {dead_master_port} to take over"),
            Duration::from_secs(20),
            || {
                let topology = self.check_healthy()?;
                candidates
                    .iter()
                    .copied()
                    .find(|port| matches!(topology.get(port), Some(Role::Master { .. })))
                    .ok_or_else(|| {
                        format!("none of the replicas {candidates:?} is a master: {topology:?}")
                    })
            },
        )
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("{port} is not a node of this cluster ({:?})", self.nodes()))
    }

    fn running(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.port)
            .collect()
    }

    /// The roles of the running nodes, as the first running node that
    /// answers sees them.
    fn topology(&self) -> BTreeMap<u16, Role> {
        let running = self.running();
        let mut errors = Vec::new();
        for &port in &running {
            match view_from(port, &running, false) {
                Ok(view) => return view,
                Err(e) => errors.push(e),
            }
        }
        panic!("no cluster node answers CLUSTER NODES: {errors:?}");
    }

    /// Healthy: every running node says `cluster_state:ok` with all slots
    /// served, they all see the same roles with no running node failing,
    /// every running master has slots (three in all), and every running
    /// replica follows a running master with its link up. Returns the roles.
    fn check_healthy(&self) -> Result<BTreeMap<u16, Role>, String> {
        let running = self.running();
        let mut agreed: Option<(u16, BTreeMap<u16, Role>)> = None;
        for &port in &running {
            let info = redis_cli(port, "CLUSTER INFO")?;
            for want in [
                "cluster_state:ok",
                "cluster_slots_assigned:16384",
                "cluster_slots_ok:16384",
            ] {
                if !has_line(&info, want) {
                    return Err(format!("CLUSTER INFO on {port} lacks {want}"));
                }
            }
            let view = view_from(port, &running, true)?;
            match &agreed {
                None => agreed = Some((port, view)),
                Some((first, seen)) if *seen != view => {
                    return Err(format!("{first} sees {seen:?} but {port} sees {view:?}"));
                }
                Some(_) => {}
            }
        }
        let (_, topology) = agreed.ok_or("no cluster node is running")?;
        let masters = masters_of(&topology);
        if masters.len() != MASTERS {
            return Err(format!("masters are {masters:?}: {topology:?}"));
        }
        for (&port, role) in &topology {
            match *role {
                Role::Master { has_slots: false } => {
                    return Err(format!("master {port} serves no slots: {topology:?}"));
                }
                Role::Master { has_slots: true } => {}
                Role::Replica { of: None } => {
                    return Err(format!("replica {port} follows a node that is not running"));
                }
                Role::Replica { of: Some(master) } => {
                    if !matches!(topology.get(&master), Some(Role::Master { .. })) {
                        return Err(format!("replica {port} follows {master}, not a master"));
                    }
                    let info = redis_cli(port, "INFO replication")?;
                    if !has_line(&info, "master_link_status:up")
                        || !has_line(&info, &format!("master_port:{master}"))
                    {
                        return Err(format!("replica {port} is not in sync with {master}"));
                    }
                }
            }
        }
        Ok(topology)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

fn node_args(dir: &Path, port: u16) -> Result<Vec<OsString>, String> {
    let bus_port = loop {
        let candidate = free_port();
        if candidate != port {
            break candidate;
        }
    };
    let mut args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--cluster-port",
        &bus_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        // A replica may always be promoted, however long its link was down.
        "--cluster-replica-validity-factor",
        "0",
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
    Ok(args)
}

/// The running masters in `topology`, ascending.
fn masters_of(topology: &BTreeMap<u16, Role>) -> Vec<u16> {
    topology
        .iter()
        .filter(|(_, role)| matches!(role, Role::Master { .. }))
        .map(|(&port, _)| port)
        .collect()
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeEntry {
    id: String,
    port: u16,
    myself: bool,
    master: bool,
    /// `fail`, `fail?`, `handshake` or `noaddr`, or the link is down.
    failing: bool,
    master_id: Option<String>,
    has_slots: bool,
}

fn parse_nodes(text: &str) -> Result<Vec<NodeEntry>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return Err(format!("odd CLUSTER NODES line: {line}"));
            }
            // ip:port@cport[,hostname]
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .ok_or_else(|| format!("no port in CLUSTER NODES line: {line}"))?;
            let flags: Vec<&str> = fields[2].split(',').collect();
            Ok(NodeEntry {
                id: fields[0].to_owned(),
                port,
                myself: flags.contains(&"myself"),
                master: flags.contains(&"master"),
                failing: flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "fail?" | "handshake" | "noaddr"))
                    || fields[7] != "connected",
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                has_slots: fields.len() > 8,
            })
        })
        .collect()
}

/// The roles of the `running` nodes as `port` sees them. With `strict`, a
/// running node that is missing or failing in this view is an error.
fn view_from(port: u16, running: &[u16], strict: bool) -> Result<BTreeMap<u16, Role>, String> {
    let entries = parse_nodes(&redis_cli(port, "CLUSTER NODES")?)?;
    let port_of: HashMap<&str, u16> = entries.iter().map(|e| (e.id.as_str(), e.port)).collect();
    let mut view = BTreeMap::new();
    for entry in entries.iter().filter(|e| running.contains(&e.port)) {
        if strict && entry.failing {
            return Err(format!("{port} sees {} as failing", entry.port));
        }
        let role = if entry.master {
            Role::Master {
                has_slots: entry.has_slots,
            }
        } else {
            let of = entry
                .master_id
                .as_deref()
                .and_then(|id| port_of.get(id))
                .copied()
                .filter(|master| running.contains(master));
            Role::Replica { of }
        };
        view.insert(entry.port, role);
    }
    if strict && view.len() != running.len() {
        return Err(format!("{port} knows only {view:?} of {running:?}"));
    }
    Ok(view)
}

fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|line| line.trim() == want)
}

/// Panic with the install hint unless both `redis-server` and `redis-cli`
/// can be run.
pub(crate) fn require_binaries() {
    for binary in ["redis-server", "redis-cli"] {
        match Command::new(binary)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("`{binary} --version` failed with {status}. {INSTALL_HINT}"),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!("{binary} is missing. {INSTALL_HINT}")
            }
            Err(e) => panic!("cannot run {binary}: {e}. {INSTALL_HINT}"),
        }
    }
}

/// Run one command (split on whitespace) with `redis-cli -e` on
/// 127.0.0.1:`port`; the output trimmed, or the error message.
pub(crate) fn redis_cli(port: u16, cmd: &str) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-e", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(cmd.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => INSTALL_HINT.to_owned(),
            _ => format!("cannot run redis-cli: {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(if stderr.is_empty() {
            format!(
                "redis-cli -p {port} {cmd} failed with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )
        } else {
            stderr
        })
    }
}

/// Call `probe` every 100 ms until it succeeds and return its value.
///
/// # Panics
/// When it has not succeeded after `timeout`, with its last error.
pub(crate) fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One `redis-server` process of a harness, with what it takes to start it
/// again on the same port and dir. Killed on drop.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) port: u16,
    dir: PathBuf,
    args: Vec<OsString>,
    /// Arguments after `args`, replaced on restart.
    extra: Vec<OsString>,
    child: Option<Child>,
}

impl Process {
    /// Start `redis-server` with `args(port)` then `extra`, in `dir`, on a
    /// free port; a few tries, since a port found free can be taken before
    /// the server binds it.
    pub(crate) fn start(
        dir: &Path,
        extra: Vec<OsString>,
        mut args: impl FnMut(u16) -> Result<Vec<OsString>, String>,
    ) -> Result<Self, String> {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut process = Self {
                port,
                dir: dir.to_owned(),
                args: args(port)?,
                extra: extra.clone(),
                child: None,
            };
            process.spawn()?;
            match process.wait_ready() {
                Ok(()) => return Ok(process),
                Err(e) => last_error = e, // dropping `process` kills it
            }
        }
        Err(format!("no luck on 5 free ports; last: {last_error}"))
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, as a crash would, and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill (when running) and start again on the same port with `extra`
    /// in place of the previous extra arguments.
    pub(crate) fn restart(&mut self, extra: Vec<OsString>) -> Result<(), String> {
        self.kill();
        self.extra = extra;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.spawn()?;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {
                    // The port may still be held by the old process.
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let stderr = File::create(self.dir.join("stderr.log"))
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let child = Command::new("redis-server")
            .args(&self.args)
            .args(&self.extra)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => INSTALL_HINT.to_owned(),
                _ => format!("cannot start redis-server: {e}"),
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited with {status}; stderr:\n{}\nlog:\n{}",
                    self.port,
                    read_lossy(&self.dir.join("stderr.log")),
                    read_lossy(&self.dir.join("redis.log")),
                ));
            }
            if ping(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG from port {} within 5 s", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Whether a server answers `PING` on `port` (a raw connection: cheaper
/// than a redis-cli process while polling).
fn ping(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"+PONG"))
    };
    attempt().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `redis-cli -c` (follows redirects) against `port`.
    fn routed(port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-e", "-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli -c {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn a_killed_master_is_replaced_by_its_replica() {
        let started = Instant::now();
        let mut cluster = RedisCluster::start();
        eprintln!("Redis Cluster started in {:?}", started.elapsed());

        let url = cluster.url();
        let seeds = url.strip_prefix("redis+cluster://").unwrap();
        let masters = cluster.masters();
        let replicas = cluster.replicas();
        assert_eq!(masters.len(), 3, "{masters:?}");
        assert_eq!(replicas.len(), 3, "{replicas:?}");
        assert_eq!(cluster.nodes().len(), 6);
        assert_eq!(
            seeds,
            masters
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let info = cluster.command(masters[0], "CLUSTER INFO").unwrap();
        assert!(has_line(&info, "cluster_state:ok"), "{info}");
        assert!(has_line(&info, "cluster_size:3"), "{info}");

        // Keys land in different slots, so on different masters.
        for key in ["a", "b", "c", "session:42"] {
            assert_eq!(routed(masters[0], &["SET", key, "v1"]), "OK");
            assert_eq!(routed(masters[1], &["GET", key]), "v1");
        }
        // Without redirects, a node serves its own slots and sends the rest on.
        let direct: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|key| cluster.command(masters[0], &format!("GET {key}")))
            .collect();
        assert!(
            direct.iter().any(|r| r.as_deref() == Ok("v1")),
            "{direct:?}"
        );
        assert!(
            direct
                .iter()
                .any(|r| r.as_ref().is_err_and(|e| e.starts_with("MOVED"))),
            "{direct:?}"
        );

        let victim = masters[0];
        cluster.kill_node(victim);
        let killed = Instant::now();
        let promoted = cluster.wait_for_promotion_after_kill(victim);
        eprintln!(
            "replica {promoted} took over from {victim} in {:?}",
            killed.elapsed()
        );
        assert!(replicas.contains(&promoted), "{promoted} in {replicas:?}");
        let masters_now = cluster.masters();
        assert!(masters_now.contains(&promoted), "{masters_now:?}");
        assert!(!masters_now.contains(&victim), "{masters_now:?}");
        assert_eq!(masters_now.len(), 3);
        let info = cluster.command(promoted, "CLUSTER INFO").unwrap();
        assert!(has_line(&info, "cluster_state:ok"), "{info}");
        assert!(cluster.command(victim, "PING").is_err());
        for key in ["a", "b", "c", "session:42"] {
            assert_eq!(routed(promoted, &["SET", key, "v2"]), "OK");
            assert_eq!(routed(promoted, &["GET", key]), "v2");
        }
    }

    #[test]
    fn manual_failover_and_a_restarted_master_rejoins_as_replica() {
        let mut cluster = RedisCluster::start();
        let replica = cluster.replicas()[0];
        let started = Instant::now();
        cluster.failover(replica);
        eprintln!("CLUSTER FAILOVER FORCE took {:?}", started.elapsed());
        let masters = cluster.masters();
        assert!(masters.contains(&replica), "{masters:?}");
        assert_eq!(masters.len(), 3);
        let info = cluster.command(replica, "INFO replication").unwrap();
        assert!(has_line(&info, "role:master"), "{info}");

        let victim = masters[0];
        cluster.kill_node(victim);
        let promoted = cluster.wait_for_promotion_after_kill(victim);
        let started = Instant::now();
        cluster.restart_node(victim);
        eprintln!("killed master rejoined in {:?}", started.elapsed());
        assert!(cluster.replicas().contains(&victim));
        assert!(cluster.masters().contains(&promoted));
        let info = cluster.command(victim, "INFO replication").unwrap();
        assert!(
            has_line(&info, &format!("master_port:{promoted}")),
            "{info}"
        );
        assert!(has_line(&info, "master_link_status:up"), "{info}");
    }
}
