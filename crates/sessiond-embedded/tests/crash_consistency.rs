//! The crash-safety proof: a child process creates (and revokes) sessions as
//! fast as it can and reports each acknowledged write on stdout; the parent
//! kills it with SIGKILL mid-stream, several times over the same directory,
//! then reopens the store and finds every acknowledged write in place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    Clock, CreateRequest, Engine, Policy, RevokeReason, RolePolicy, SessionId, Store, SystemClock,
};

/// Set in the child: the store directory to write into.
const CHILD_ENV: &str = "SESSIOND_EMBEDDED_CRASH_CHILD_DIR";
/// Name of the test function the child runs.
const CHILD_TEST: &str = "crash_child_writes_until_killed";
/// Concurrent writers in the child.
const CHILD_TASKS: usize = 8;
/// Kill rounds over the same directory.
const ROUNDS: usize = 3;
/// Acknowledged creates to wait for in each round before the kill.
const ACKS_PER_ROUND: usize = 400;

fn policy() -> Policy {
    Policy {
        default_role: RolePolicy {
            max_sessions: u32::MAX,
            ..RolePolicy::default()
        },
        store_timeout: Duration::from_secs(60),
        ..Policy::default()
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child: does nothing unless run by [`acknowledged_writes_survive_sigkill`].
/// Each line `ACK <id> <keep|revoke>` is printed only after `create` returned
/// Ok; `GONE <id>` only after `revoke` returned true.
#[test]
fn crash_child_writes_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = EmbeddedStore::open(&dir, EmbeddedOptions::default())
            .await
            .unwrap();
        let engine = Engine::new(Arc::new(store), policy());
        let mut tasks = Vec::new();
        for task in 0..CHILD_TASKS {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let mut data = serde_json::Map::new();
                    data.insert("n".into(), i.into());
                    let created = engine
                        .create(CreateRequest {
                            user_id: format!("user-{task}-{}", i % 50),
                            data,
                            ..CreateRequest::default()
                        })
                        .await
                        .unwrap();
                    let id = created.session.id;
                    let revoke = i % 5 == 0;
                    report(&format!(
                        "ACK {id} {}",
                        if revoke { "revoke" } else { "keep" }
                    ));
                    if revoke
                        && engine
                            .revoke(id.as_str(), RevokeReason::Logout)
                            .await
                            .unwrap()
                    {
                        report(&format!("GONE {id}"));
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[derive(Default)]
struct Acknowledged {
    /// Created and never meant to be revoked: must be present.
    kept: HashSet<SessionId>,
    /// Created, then a revoke was sent: present or not, unless acknowledged.
    revoking: HashSet<SessionId>,
    /// Revoke acknowledged: must be absent.
    gone: HashSet<SessionId>,
}

impl Acknowledged {
    /// Record one complete line of the child's output; false if not a report.
    fn record(&mut self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        let (kind, id, mark) = (words.next(), words.next(), words.next());
        let Some(id) = id.and_then(SessionId::parse) else {
            return false;
        };
        match (kind, mark) {
            (Some("ACK"), Some("keep")) => self.kept.insert(id),
            (Some("ACK"), Some("revoke")) => self.revoking.insert(id),
            (Some("GONE"), None) => self.gone.insert(id),
            _ => return false,
        };
        true
    }

    fn created(&self) -> usize {
        self.kept.len() + self.revoking.len()
    }
}

/// Run one child until it has acknowledged `target` more creates, SIGKILL it,
/// and record every line it wrote in full before dying.
fn run_child_and_kill(dir: &std::path::Path, acked: &mut Acknowledged, target: usize) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--include-ignored"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // Only newline-terminated lines count: a kill can cut the last one.
        while stdout.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let start = acked.created();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.created() < start + target {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                acked.record(&line);
            }
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "child acknowledged {} of {target} creates before {e:?}",
                    acked.created() - start
                );
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    // Lines already written before the kill were acknowledged too.
    for line in rx {
        acked.record(&line);
    }
    reader.join().unwrap();
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut acked = Acknowledged::default();
    for _ in 0..ROUNDS {
        run_child_and_kill(dir.path(), &mut acked, ACKS_PER_ROUND);
    }
    eprintln!(
        "{ROUNDS} kills: {} creates acknowledged ({} to be revoked), {} revokes acknowledged",
        acked.created(),
        acked.revoking.len(),
        acked.gone.len()
    );
    assert!(acked.created() >= ROUNDS * ACKS_PER_ROUND);
    assert!(!acked.gone.is_empty(), "some revokes were acknowledged");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
            .await
            .unwrap();
        let now = SystemClock.now();
        let mut missing = Vec::new();
        for id in &acked.kept {
            if store.get(id, now).await.unwrap().is_none() {
                missing.push(id.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged sessions lost, e.g. {:?}",
            missing.len(),
            acked.kept.len(),
            missing.first()
        );
        for id in &acked.gone {
            assert!(
                store.get(id, now).await.unwrap().is_none(),
                "acknowledged revoke of {id} undone"
            );
        }
        // Sessions whose revoke was in flight at the kill: either state is
        // fine, but the row must decode.
        for id in acked.revoking.difference(&acked.gone) {
            store.get(id, now).await.unwrap();
        }
        store.close().await;
    });
}
