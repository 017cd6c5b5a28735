//! The command line: `sessiond serve`, `sessiond config check|print`, and the
//! operator commands (`sessions list|revoke|revoke-user`, `history`,
//! `events tail`, `stats`)
//! that work directly on the configured store through the engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;

use sessiond_api::{EventView, HistoryList, SessionList, SessionView};
use sessiond_engine::{
    Engine, Error as EngineError, EventCursor, EventKinds, EventQuery, EventsFrom, HistoryEvent,
    RevokeReason, Session, SessionId, Store,
};

use crate::config::{Config, LogFormat, Mode, Overrides};
use crate::stores;

/// Exit status of a runtime failure (store unreachable, bind failed…).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status of a bad configuration or bad arguments.
pub const EXIT_USAGE: u8 = 2;

/// sessiond: sessions for any backend, over a JSON HTTP API.
#[derive(Debug, Parser)]
#[command(name = "sessiond", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Check or print the configuration.
    Config {
        /// Which.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List or revoke sessions directly in the configured store.
    Sessions {
        /// Which.
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// A user's lifecycle events with their reasons, newest first, read
    /// directly from the configured store (SQL stores keep history; Redis
    /// does not).
    History {
        /// The user id.
        #[arg(long, value_name = "USER")]
        user: String,
        /// Events to print, 1 to 1000 [default: 100].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Older events: the `next_cursor` an earlier page ended with.
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
        /// Print JSON (the body of `GET /v1/users/{user_id}/history`).
        #[arg(long)]
        json: bool,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Read the event feed directly from the configured store.
    Events {
        /// Which.
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The running server's totals (those of `GET /v1/stats`); when no
    /// server answers, what the store tells: reachable, live sessions.
    Stats {
        /// Also count this user's live sessions.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// The server to ask (default: the configured `listen` address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Print JSON (the `/v1/stats` body; `live_sessions` and `store`
        /// only when the store was asked instead).
        #[arg(long)]
        json: bool,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage the signing keys of JWT-mode access tokens.
    Keys {
        /// Which.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `sessiond events …`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as they happen, one JSON object per line (the `data`
    /// of `GET /v1/events`), until interrupted; never a token.
    Tail {
        /// Only this user's events.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only these types, comma-separated (e.g. `revoked,expired`).
        #[arg(long, value_name = "TYPES")]
        types: Option<String>,
        /// Start with the oldest event kept instead of now.
        #[arg(long, conflicts_with = "after")]
        oldest: bool,
        /// Start right after the event with this id.
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// Print what is there and stop instead of following.
        #[arg(long)]
        no_follow: bool,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `sessiond keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key (of `jwt.algorithm`): published in the JWKS at
    /// once, signing after `jwt.rollover_delay` (so verifiers that cache the
    /// JWKS know it before its first token); the previous key then stays in
    /// the JWKS until every token it signed has expired (`jwt.access_ttl`).
    /// Running servers pick the change up within a second. Runs of this
    /// command are serialized by a lock file.
    Rotate {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Directory of the API key file and signing keys.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Sign with the new key after this long instead of
        /// `jwt.rollover_delay` (e.g. "0s" when no verifier caches the JWKS).
        #[arg(long, value_name = "DURATION", value_parser = crate::config::duration_text::parse)]
        delay: Option<std::time::Duration>,
        /// Rotate the data key of encryption at rest instead (the file of
        /// `encryption.key_file`, or `--key-file`): the new key seals new
        /// writes (running servers pick it up within a second); records
        /// sealed with older keys stay readable.
        #[arg(long)]
        data: bool,
        /// The data key file (with `--data`), instead of
        /// `encryption.key_file`.
        #[arg(long, value_name = "FILE", requires = "data")]
        key_file: Option<PathBuf>,
    },
}

/// Flags of `serve` (and `config print`). Each one can also be set in the
/// config file or as `SESSIOND_<KEY>`; a flag wins over both.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7420.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Session store: embedded:PATH, redis://… or rediss://… [default: the
    /// embedded store in the data directory]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Directory of the API key file, the signing keys and, unless --store
    /// (or `store`) names another, the embedded store [default: ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    /// Token mode of sessions created without one.
    #[arg(long, value_enum, value_name = "MODE")]
    pub default_mode: Option<ModeArg>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            log_format: self.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
            default_mode: self.default_mode.map(|m| match m {
                ModeArg::Opaque => Mode::Opaque,
                ModeArg::Jwt => Mode::Jwt,
            }),
        }
    }
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--default-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One opaque session token.
    Opaque,
    /// Signed access token plus rotating refresh token.
    Jwt,
}

/// Where the operator commands find the store.
#[derive(Debug, Args, Default)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Session store: embedded:PATH, redis://… or rediss://….
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

/// `sessiond config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check FILE on its own (defaults, then FILE; the environment is not
    /// read): prints "ok: FILE", or the problem and exits with status 2.
    Check {
        /// TOML configuration file.
        file: PathBuf,
    },
    /// Print the effective configuration as TOML, secrets masked.
    Print(ServeArgs),
}

/// `sessiond sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// A user's live sessions, newest first.
    List {
        /// The user id.
        #[arg(long, value_name = "USER")]
        user: String,
        /// Print JSON (the body of `GET /v1/users/{user_id}/sessions`).
        #[arg(long)]
        json: bool,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke one session.
    Revoke {
        /// Session id.
        #[arg(value_parser = parse_session_id)]
        id: String,
        /// Reason recorded (default revoked_by_admin).
        #[arg(long, value_parser = parse_reason, value_name = "REASON")]
        reason: Option<RevokeReason>,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke every session of a user, but one if asked.
    RevokeUser {
        /// The user id.
        user: String,
        /// Keep this session.
        #[arg(long, value_parser = parse_session_id, value_name = "ID")]
        except: Option<String>,
        /// Reason recorded (default revoked_by_admin).
        #[arg(long, value_parser = parse_reason, value_name = "REASON")]
        reason: Option<RevokeReason>,
        /// Where the store is.
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_session_id(s: &str) -> Result<String, String> {
    SessionId::parse(s)
        .map(|id| id.as_str().to_owned())
        .ok_or_else(|| "expected a session id (33 base64url characters)".to_owned())
}

fn parse_reason(s: &str) -> Result<RevokeReason, String> {
    RevokeReason::parse(s).ok_or_else(|| {
        format!(
            "expected a reason of 1 to {} characters from A-Z a-z 0-9 _ . : -",
            RevokeReason::MAX_LEN
        )
    })
}

/// A failure that ends the process: one line on stderr and an exit status.
#[derive(Debug)]
struct Failure {
    line: String,
    code: u8,
}

impl Failure {
    fn runtime(line: impl Into<String>) -> Self {
        Self {
            line: format!("error: {}", line.into()),
            code: EXIT_RUNTIME,
        }
    }

    fn usage(line: impl Into<String>) -> Self {
        Self {
            line: line.into(),
            code: EXIT_USAGE,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid { .. } => Self::usage(format!("error: {e}")),
            other => Self::runtime(other.to_string()),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    run(cli)
}

/// Run a parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.line);
            ExitCode::from(f.code)
        }
    }
}

fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve(args) => {
            let config = load(args.config.as_deref(), &args.overrides())?;
            runtime()?.block_on(async {
                crate::server::serve(config)
                    .await
                    .map_err(|e| Failure::runtime(e.to_string()))
            })
        }
        Command::Config { command } => config_command(command),
        Command::Sessions { command } => {
            quiet_logs();
            match command {
                SessionsCommand::List { user, json, store } => with_engine(
                    &store,
                    |engine| async move { list(&engine, &user, json).await },
                ),
                SessionsCommand::Revoke { id, reason, store } => {
                    with_engine(&store, |engine| async move {
                        let reason = reason.unwrap_or(RevokeReason::RevokedByAdmin);
                        if engine.revoke(&id, reason).await? {
                            println!("revoked {id}");
                        } else {
                            println!("{id}: no live session, nothing revoked");
                        }
                        Ok(())
                    })
                }
                SessionsCommand::RevokeUser {
                    user,
                    except,
                    reason,
                    store,
                } => with_engine(&store, |engine| async move {
                    let reason = reason.unwrap_or(RevokeReason::RevokedByAdmin);
                    let revoked = engine.revoke_user(&user, except.as_deref(), reason).await?;
                    let n = revoked.len();
                    let plural = if n == 1 { "" } else { "s" };
                    println!("revoked {n} session{plural} of user {user:?}");
                    Ok(())
                }),
            }
        }
        Command::History {
            user,
            limit,
            cursor,
            json,
            store,
        } => {
            quiet_logs();
            with_engine(&store, |engine| async move {
                history(&engine, &user, limit, cursor.as_deref(), json).await
            })
        }
        Command::Events {
            command:
                EventsCommand::Tail {
                    user,
                    types,
                    oldest,
                    after,
                    no_follow,
                    store,
                },
        } => {
            quiet_logs();
            let from = match (after, oldest) {
                (Some(id), _) => match EventCursor::parse(&id) {
                    Some(cursor) => EventsFrom::After(cursor),
                    None => {
                        return Err(Failure::usage(format!(
                            "error: --after {id:?} is not an event id"
                        )));
                    }
                },
                (None, true) => EventsFrom::Oldest,
                (None, false) => EventsFrom::Now,
            };
            let kinds = types
                .as_deref()
                .map(parse_kinds)
                .transpose()
                .map_err(|m| Failure::usage(format!("error: {m}")))?
                .unwrap_or(EventKinds::ALL);
            let query = EventQuery {
                from,
                user_id: user,
                kinds,
                limit: 500,
            };
            let poll = store_config(&store)?.events.poll_interval;
            with_engine(&store, |engine| async move {
                tail(&engine, query, (!no_follow).then_some(poll)).await
            })
        }
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    config,
                    data_dir,
                    delay,
                    data,
                    key_file,
                },
        } => {
            let flags = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let config = load(config.as_deref(), &flags)?;
            if data {
                let Some(path) = key_file.or(config.encryption.key_file) else {
                    return Err(Failure::usage(
                        "error: --data needs encryption.key_file in the configuration, or --key-file FILE",
                    ));
                };
                let id = sessiond_engine::DataKeys::rotate(&path)
                    .map_err(|e| Failure::runtime(format!("cannot rotate the data keys: {e}")))?;
                println!(
                    "new data key {id} in {}: new writes are sealed with it (running servers read the file again within a second); records sealed with older keys stay readable",
                    path.display()
                );
                return Ok(());
            }
            if config.jwt.key_file.is_some() {
                return Err(Failure::usage(
                    "error: jwt.key_file is set: that key is managed outside sessiond, rotate it there",
                ));
            }
            let alg = crate::access_tokens::algorithm(&config)
                .map_err(|e| Failure::usage(format!("error: {e}")))?;
            let dir = crate::access_tokens::key_dir(&config);
            let now = crate::access_tokens::now_secs();
            let delay = delay.unwrap_or(config.jwt.rollover_delay);
            let (ring, kid) =
                sessiond_jwt::KeyRing::rotate(&dir, alg, config.jwt.access_ttl, now, delay)
                    .map_err(|e| {
                        Failure::runtime(format!("cannot rotate the signing keys: {e}"))
                    })?;
            let starts =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(ring.newest_signs_from());
            println!(
                "new signing key {kid} ({}) in {}: in the JWKS now, signing from {} (in {})",
                alg.as_str(),
                dir.display(),
                humantime::format_rfc3339_seconds(starts),
                crate::config::duration_text::format(std::time::Duration::from_secs(
                    ring.newest_signs_from().saturating_sub(now)
                )),
            );
            Ok(())
        }
        Command::Stats {
            user,
            url,
            json,
            store,
        } => {
            quiet_logs();
            stats(&store, user, url, json)
        }
    }
}

fn config_command(command: ConfigCommand) -> Result<(), Failure> {
    match command {
        ConfigCommand::Check { file } => {
            Config::check_file(&file).map_err(|e| Failure::usage(e.to_string()))?;
            println!("ok: {}", file.display());
            Ok(())
        }
        ConfigCommand::Print(args) => {
            let config = load(args.config.as_deref(), &args.overrides())?;
            print!("{}", config.masked().to_toml());
            Ok(())
        }
    }
}

/// The effective configuration; what loading noticed goes to stderr.
fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, Failure> {
    let loaded = Config::load(file, flags).map_err(|e| Failure::usage(e.to_string()))?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    Ok(loaded.config)
}

fn store_config(args: &StoreArgs) -> Result<Config, Failure> {
    load(
        args.config.as_deref(),
        &Overrides {
            store: args.store.clone(),
            ..Overrides::default()
        },
    )
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

/// Operator commands log errors only, to stderr.
fn quiet_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Load the config, open its store, run `work` on an engine over it, close
/// the store.
fn with_engine<F, Fut>(args: &StoreArgs, work: F) -> Result<(), Failure>
where
    F: FnOnce(Engine) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let config = store_config(args)?;
    runtime()?.block_on(async {
        let opened = stores::open(&config, stores::Caching::Off).await;
        let store: Arc<dyn Store> = opened
            .map_err(|e| {
                Failure::runtime(format!(
                    "cannot open the store {}: {e}",
                    crate::config::describe_store(&config.store_url())
                ))
            })?
            .store;
        let engine = Engine::new(Arc::clone(&store), config.policy());
        let result = work(engine).await;
        if let Err(e) = store.close().await {
            tracing::error!(error = %e, "closing the store");
        }
        result
    })
}

async fn list(engine: &Engine, user: &str, json: bool) -> Result<(), Failure> {
    let sessions = engine.list_user(user).await?;
    if json {
        let sessions: Vec<SessionView> = sessions.into_iter().map(SessionView::from).collect();
        let count = sessions.len();
        print_json(&SessionList { sessions, count })?;
        return Ok(());
    }
    if sessions.is_empty() {
        println!("no live sessions for user {user:?}");
        return Ok(());
    }
    print!("{}", session_table(&sessions));
    Ok(())
}

/// The kinds `types` names (comma-separated), or what is wrong with it.
fn parse_kinds(types: &str) -> Result<EventKinds, String> {
    EventKinds::parse_list(types).ok_or_else(|| {
        format!(
            "--types {types:?}: expected a comma-separated list of {}",
            EventKinds::accepted()
        )
    })
}

/// Print the events `query` selects, one JSON line each; with `follow`,
/// keep looking every so often for new ones, else stop when caught up.
async fn tail(engine: &Engine, query: EventQuery, follow: Option<Duration>) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut query = query;
    loop {
        let page = engine.events(&query).await?;
        let mut out = std::io::stdout().lock();
        for event in page.events {
            let line = serde_json::to_string(&EventView::from(event))
                .map_err(|e| Failure::runtime(format!("cannot print an event: {e}")))?;
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))?;
        }
        drop(out);
        let moved = query.from != EventsFrom::After(page.cursor.clone());
        query.from = EventsFrom::After(page.cursor);
        if !moved {
            match follow {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Ok(()),
            }
        }
    }
}

async fn history(
    engine: &Engine,
    user: &str,
    limit: Option<u32>,
    cursor: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let page = engine.history(user, limit, cursor).await?;
    if json {
        return print_json(&HistoryList::from(page));
    }
    if page.events.is_empty() {
        println!("no history for user {user:?}");
        return Ok(());
    }
    print!("{}", history_table(&page.events));
    if let Some(next) = page.next_cursor {
        println!("older events follow: add --cursor {next}");
    }
    Ok(())
}

/// Print `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::runtime(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `sessiond stats`: ask the server at `url` (default: the configured
/// `listen`); if none answers, the store.
fn stats(
    args: &StoreArgs,
    user: Option<String>,
    url: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    use crate::stats_command as sc;
    let config = store_config(args)?;
    let described = crate::config::describe_store(&config.store_url());
    let url = url.unwrap_or_else(|| sc::default_url(&config));
    let key =
        crate::api_key::existing(&config).map_err(|e| Failure::runtime(format!("API key: {e}")))?;
    let from_server = match key {
        Some(key) => runtime()?.block_on(async {
            let client = sessiond_client::Client::new(&url, key)
                .and_then(|c| c.with_timeout(sc::SERVER_TIMEOUT))
                .map_err(|e| Failure::usage(format!("error: --url {url:?}: {e}")))?;
            match client.stats().await {
                Ok(stats) => {
                    let user = match &user {
                        Some(u) => Some(sc::UserCount {
                            id: u.clone(),
                            live_sessions: client
                                .list_user(u)
                                .await
                                .map_err(|e| Failure::runtime(format!("{url}: {e}")))?
                                .len() as u64,
                        }),
                        None => None,
                    };
                    Ok(Some((stats, user)))
                }
                Err(sessiond_client::Error::Unauthorized) => Err(Failure::runtime(format!(
                    "the server at {url} refused the API key of this configuration"
                ))),
                Err(e) => {
                    eprintln!("note: no answer from a server at {url} ({e}); asking the store");
                    Ok(None)
                }
            }
        })?,
        None => {
            eprintln!("note: no API key configured or in the data directory; asking the store");
            None
        }
    };
    if let Some((stats, user)) = from_server {
        if json {
            return print_json(&sc::json(&stats, user.as_ref()));
        }
        print!("{}", sc::server_text(&url, &described, &stats));
        if let Some(user) = user {
            println!("user {:?}: {} live sessions", user.id, user.live_sessions);
        }
        return Ok(());
    }
    with_engine(args, |engine| async move {
        engine
            .ping()
            .await
            .map_err(|e| Failure::runtime(format!("store {described} unreachable: {e}")))?;
        let counted = sc::StoreOnly {
            live_sessions: engine.count_live().await?,
            store: "ok".to_owned(),
        };
        let user = match user {
            Some(id) => Some(sc::UserCount {
                live_sessions: engine.count_user(&id).await?,
                id,
            }),
            None => None,
        };
        if json {
            return print_json(&sc::json(&counted, user.as_ref()));
        }
        print!("{}", sc::store_text(&described, &counted));
        if let Some(user) = user {
            println!("user {:?}: {} live sessions", user.id, user.live_sessions);
        }
        Ok(())
    })
}

/// The table `history` prints: one header line and one line per event.
pub fn history_table(events: &[HistoryEvent]) -> String {
    let header = ["SEQ", "AT", "TYPE", "REASON", "SESSION", "DEVICE", "IP"].map(str::to_owned);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 7]> = events
        .iter()
        .map(|e| {
            [
                e.seq.to_string(),
                seconds(e.at),
                e.kind.as_str().to_owned(),
                dash(&e.reason),
                e.session_id.as_str().to_owned(),
                dash(&e.device_kind),
                dash(&e.ip),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// The table `sessions list` prints: one header line and one line per session.
pub fn session_table(sessions: &[Session]) -> String {
    let header = ["ID", "CREATED", "LAST SEEN", "EXPIRES", "DEVICE", "IP"].map(str::to_owned);
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .map(|s| {
            let d = &s.device;
            let device = format!(
                "{}/{}/{}",
                serde_json::to_value(d.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned()),
                d.browser.as_deref().unwrap_or("-"),
                d.os.as_deref().unwrap_or("-"),
            );
            [
                s.id.as_str().to_owned(),
                seconds(s.created_at),
                seconds(s.last_seen_at),
                seconds(s.expires_at.min(s.absolute_expires_at)),
                device,
                d.ip.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// `header` and `rows` in columns as wide as their widest cell, two spaces
/// apart.
fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn seconds(t: sessiond_engine::Timestamp) -> String {
    humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_operator_commands() {
        let cli = Cli::try_parse_from([
            "sessiond",
            "sessions",
            "revoke-user",
            "alice",
            "--reason",
            "password_changed",
            "--store",
            "embedded:/tmp/x",
        ])
        .unwrap();
        let Command::Sessions {
            command:
                SessionsCommand::RevokeUser {
                    user,
                    except,
                    reason,
                    store,
                },
        } = cli.command
        else {
            panic!("wrong command")
        };
        assert_eq!(user, "alice");
        assert_eq!(except, None);
        assert_eq!(reason, Some(RevokeReason::Other("password_changed".into())));
        assert_eq!(store.store.as_deref(), Some("embedded:/tmp/x"));

        for bad in [
            vec!["sessiond", "sessions", "revoke", "not-an-id"],
            vec![
                "sessiond",
                "sessions",
                "revoke-user",
                "u",
                "--reason",
                "two words",
            ],
            vec!["sessiond", "serve", "--log-format", "xml"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn parses_the_history_command() {
        let cli = Cli::try_parse_from([
            "sessiond", "history", "--user", "alice", "--limit", "5", "--json",
        ])
        .unwrap();
        let Command::History {
            user,
            limit,
            cursor,
            json,
            store,
        } = cli.command
        else {
            panic!("wrong command")
        };
        assert_eq!(
            (user.as_str(), limit, cursor, json, store.store),
            ("alice", Some(5), None, true, None)
        );
        for bad in [
            vec!["sessiond", "history"],
            vec!["sessiond", "history", "--user", "a", "--limit", "many"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn the_history_table_has_a_line_per_event() {
        use sessiond_engine::{HistoryKind, ShardTag, Timestamp};
        let id = SessionId::generate(&ShardTag::of_user("alice"));
        let event = |seq, kind: HistoryKind, reason: Option<&str>| HistoryEvent {
            seq,
            at: Timestamp::from_millis(1_795_000_000_123),
            kind,
            reason: reason.map(str::to_owned),
            session_id: id.clone(),
            user_id: "alice".into(),
            device_kind: Some("desktop".into()),
            ip: None,
        };
        let text = history_table(&[
            event(12, HistoryKind::Revoked, Some("signed_out_other_devices")),
            event(3, HistoryKind::Created, None),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("SEQ  AT"), "{text}");
        assert!(
            lines[1].starts_with("12   2026-11-18T11:06:40Z  revoked  signed_out_other_devices  "),
            "{text}"
        );
        assert!(lines[1].ends_with(&format!("{id}  desktop  -")), "{text}");
        assert!(lines[2].contains(" created  -  "), "{text}");
    }

    #[test]
    fn serve_flags_become_overrides() {
        let cli = Cli::try_parse_from([
            "sessiond",
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--log-format",
            "json",
            "--default-mode",
            "jwt",
            "--data-dir",
            "/d",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(
            args.overrides(),
            Overrides {
                listen: Some("127.0.0.1:1".into()),
                store: None,
                data_dir: Some(PathBuf::from("/d")),
                log_format: Some(LogFormat::Json),
                default_mode: Some(Mode::Jwt),
            }
        );
    }
}
