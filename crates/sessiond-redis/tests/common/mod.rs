//! Helpers shared by this crate's integration tests: a store on a private
//! server, an admin connection, command statistics and Cluster slots.
#![allow(dead_code)] // each test file uses a different subset

pub mod feed_cases;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sessiond_engine::{Engine, ManualClock, Policy};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;

/// A store on `server` under `prefix`, with `timeout`.
pub async fn store(server: &RedisServer, prefix: &str, timeout: Duration) -> RedisStore {
    store_at(&server.url(), prefix, timeout).await
}

/// A store on the Redis at `url` under `prefix`, with `timeout`, without
/// the background sweep (whose commands the tests would see).
pub async fn store_at(url: &str, prefix: &str, timeout: Duration) -> RedisStore {
    let options = RedisOptions {
        key_prefix: prefix.to_owned(),
        timeout,
        sweep_interval: Duration::ZERO,
        ..RedisOptions::default()
    };
    RedisStore::connect(url, options).await.unwrap()
}

/// A store on `server` under `prefix` whose background sweep runs every
/// `interval`.
pub async fn sweeping_store(server: &RedisServer, prefix: &str, interval: Duration) -> RedisStore {
    let options = RedisOptions {
        key_prefix: prefix.to_owned(),
        sweep_interval: interval,
        ..RedisOptions::default()
    };
    RedisStore::connect(&server.url(), options).await.unwrap()
}

/// An engine over `store` on a manual clock.
pub fn engine(store: &RedisStore, policy: Policy, clock: &ManualClock) -> Engine {
    Engine::with_clock(Arc::new(store.clone()), policy, Arc::new(clock.clone()))
}

/// A separate connection for inspecting the server.
pub async fn admin(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `INFO commandstats` as command -> calls, leaving out the inspection
/// commands themselves (`info`, `config|resetstat`, `hello`, `client|...`).
pub async fn command_calls(admin: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .filter(|(name, _)| {
            !(name == "info"
                || name.starts_with("config")
                || name == "hello"
                || name.starts_with("client"))
        })
        .collect()
}

/// Zero the server's command statistics.
pub async fn reset_stats(admin: &mut MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(admin)
        .await
        .unwrap();
}

/// Every key on the server.
pub async fn all_keys(admin: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(admin)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of its hash tag, mod
/// 16384), as the cluster specification defines it.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(bytes)) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A TCP proxy in front of a server that records the name of every command
/// clients send through it: the exact commands on the wire (INFO
/// commandstats also counts the commands scripts run inside the server).
pub struct CommandLog {
    port: u16,
    names: Arc<std::sync::Mutex<Vec<String>>>,
}

impl CommandLog {
    /// Start a proxy to `upstream_port` on a free local port.
    pub fn start(upstream_port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let names = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = names.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
                let log = log.clone();
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 65536];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some((name, used)) = parse_command(&pending) {
                            log.lock().unwrap().push(name);
                            pending.drain(..used);
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self { port, names }
    }

    /// The proxy's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Forget what was logged so far.
    pub fn clear(&self) {
        self.names.lock().unwrap().clear();
    }

    /// Upper-cased names of the commands sent since the last `clear`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().unwrap())
    }
}

/// The name and length of the first complete RESP command in `buf`.
fn parse_command(buf: &[u8]) -> Option<(String, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let number = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<usize>().ok();
    let (head, mut at) = line(buf, 0)?;
    let count = number(head.strip_prefix(b"*")?)?;
    let mut name = None;
    for _ in 0..count {
        let (len, start) = line(buf, at)?;
        let len = number(len.strip_prefix(b"$")?)?;
        if buf.len() < start + len + 2 {
            return None;
        }
        name.get_or_insert_with(|| {
            String::from_utf8_lossy(&buf[start..start + len]).to_uppercase()
        });
        at = start + len + 2;
    }
    Some((name.unwrap_or_default(), at))
}
