//! Sekisho's storage (subsystems ⑥ registry and ⑦ history): the embedded store on SQLite with SQLCipher,
//! encrypted at rest with a raw 256-bit key, and the group-commit [`Writer`] that makes received
//! messages durable before the gateway acknowledges them.
//!
//! The seam for other backends: one **repository trait per aggregate** ([`prelude`]: registry, users,
//! detections, response, audit, updates, history, outbox, SIMs), bundled as [`Repos`]. [`Store`] is the
//! SQLite backend; its connection pool is private to this crate. Callers bring the traits into scope
//! with `use sekisho_store::prelude::*`.
//!
//! Architecture invariant: this crate knows tables and rows, not HTTP or TLS. It never logs the key, a
//! secret or a message body.

#![forbid(unsafe_code)]

pub mod audit;
pub mod carrier;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod detections;
pub mod history;
pub mod journal;
pub mod outbox;
pub mod records;
pub mod registry;
pub mod response;
pub mod update;
pub mod users;
pub mod writer;

use sqlx::AssertSqlSafe;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The repository traits, to bring into scope.
pub mod prelude {
    pub use crate::Repos;
    pub use crate::audit::AuditRepo;
    pub use crate::carrier::SimRepo;
    pub use crate::detections::DetectionRepo;
    pub use crate::history::HistoryRepo;
    pub use crate::outbox::OutboxRepo;
    pub use crate::registry::RegistryRepo;
    pub use crate::response::ResponseRepo;
    pub use crate::update::UpdateRepo;
    pub use crate::users::UserRepo;
}

/// Every repository a backend provides.
pub trait Repos:
    prelude::AuditRepo
    + prelude::SimRepo
    + prelude::DetectionRepo
    + prelude::HistoryRepo
    + prelude::OutboxRepo
    + prelude::RegistryRepo
    + prelude::ResponseRepo
    + prelude::UpdateRepo
    + prelude::UserRepo
{
}

impl<T> Repos for T where
    T: prelude::AuditRepo
        + prelude::SimRepo
        + prelude::DetectionRepo
        + prelude::HistoryRepo
        + prelude::OutboxRepo
        + prelude::RegistryRepo
        + prelude::ResponseRepo
        + prelude::UpdateRepo
        + prelude::UserRepo
{
}

pub use records::{AccountingRecord, AuthAttempt, MessageRecord, SecurityEvent, SimSessionRow};
pub use writer::Writer;

/// How every write transaction starts. `BEGIN IMMEDIATE` takes the write lock first (waiting up to the
/// busy timeout), so a transaction that reads before it writes cannot fail with `SQLITE_BUSY_SNAPSHOT`
/// (`database is locked`, code 517) because another connection committed in between, as a deferred
/// `BEGIN` can.
const WRITE_TX: &str = "BEGIN IMMEDIATE";

/// Storage failures, told apart where the caller answers differently.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not open the database (wrong key, or not a SQLCipher database).
    #[error("the database key does not open {0} (wrong key, or not a Sekisho database)")]
    BadKey(String),
    /// The writer's queue stayed full: the gateway is overloaded and refuses rather than drops.
    #[error("the store's write queue is full")]
    Overloaded,
    /// The writer task is gone (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// A uniqueness constraint refused the row.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The message log could not write or sync (full disk, I/O error); nothing was stored.
    #[error("message log: {0}")]
    Io(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    fn from_insert(e: sqlx::Error, what: &str) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Self::Conflict(what.to_owned()),
            _ => Self::Db(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How the store is opened.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `true`: fsync at every commit (`synchronous = FULL`); `false`: `NORMAL` (survives a process crash,
    /// may lose the last commits on power loss).
    pub sync_full: bool,
    /// Most queued write operations merged into one transaction.
    pub group_commit_max: usize,
    /// Capacity of the writer's queue (operations).
    pub queue_capacity: usize,
    /// How long a writer waits for room in the queue before refusing with [`StoreError::Overloaded`].
    pub enqueue_timeout: Duration,
    /// Read connections in the pool.
    pub pool_size: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync_full: true,
            group_commit_max: 512,
            queue_capacity: 8192,
            enqueue_timeout: Duration::from_secs(2),
            pool_size: 4,
        }
    }
}

/// The open store: a pool for reads and administrative writes, and the group-commit writer.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    pub writer: Writer,
}

impl Store {
    /// Closes the store: the writer commits what is queued and closes its connection, then the pool
    /// closes. Call before the process exits.
    pub async fn close(&self) {
        self.writer.shutdown().await;
        self.pool.close().await;
    }
}

/// The database key: 32 random bytes, shown to SQLCipher as a raw hex key (no PBKDF2).
pub struct DbKey([u8; 32]);

impl DbKey {
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Parses 64 hex digits (surrounding white space allowed).
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s.trim()).ok()?;
        Some(Self(v.try_into().ok()?))
    }

    /// The key's bytes, for keys derived from it (the message log's segment keys).
    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}

fn connect_options(path: &Path, key: &DbKey, opts: &StoreOptions) -> Result<SqliteConnectOptions> {
    let url = format!("sqlite://{}", path.display());
    Ok(SqliteConnectOptions::from_str(&url)?
        .pragma("key", format!("\"x'{}'\"", key.to_hex()))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if opts.sync_full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .disable_statement_logging())
}

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_detection.sql"),
    include_str!("migrations/0003_carrier.sql"),
    include_str!("migrations/0004_response.sql"),
    include_str!("migrations/0005_mfa.sql"),
    include_str!("migrations/0006_audit.sql"),
    include_str!("migrations/0007_update.sql"),
    include_str!("migrations/0008_log_cursors.sql"),
    include_str!("migrations/0009_message_log_offset.sql"),
];

/// Opens (creating if needed) the encrypted store at `path`, checks the key, applies migrations and
/// starts the writer.
pub async fn open(path: &Path, key: &DbKey, opts: StoreOptions) -> Result<Store> {
    let co = connect_options(path, key, &opts)?;
    // A wrong key only shows at the first read: check before anything else.
    let mut conn = co
        .connect()
        .await
        .map_err(|_| StoreError::BadKey(path.display().to_string()))?;
    sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&mut conn)
        .await
        .map_err(|_| StoreError::BadKey(path.display().to_string()))?;
    migrate(&mut conn).await?;
    conn.close().await?;

    let pool = SqlitePoolOptions::new()
        .max_connections(opts.pool_size.max(1))
        .connect_with(co.clone())
        .await?;
    let writer_conn = co.connect().await?;
    let writer = Writer::start(writer_conn, &opts);
    Ok(Store { pool, writer })
}

async fn migrate(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("PRAGMA user_version = {}", i + 1)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub struct TempDir(pub std::path::PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "sekisho-store-{tag}-{}-{}",
                std::process::id(),
                now_ms()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub async fn open_temp(tag: &str) -> (Store, TempDir) {
        let dir = TempDir::new(tag);
        let store = open(
            &dir.0.join("t.db"),
            &DbKey::from_bytes([7; 32]),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wrong_key_is_refused_and_the_file_is_not_plain_sqlite() {
        let dir = test_util::TempDir::new("key");
        let path = dir.0.join("k.db");
        let store = open(&path, &DbKey::from_bytes([1; 32]), StoreOptions::default())
            .await
            .unwrap();
        store.close().await;
        let err = open(&path, &DbKey::from_bytes([2; 32]), StoreOptions::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::BadKey(_)), "{err}");
        let head = std::fs::read(&path).unwrap();
        assert_ne!(&head[..16], b"SQLite format 3\0");
        // The right key opens it again, and the schema is there.
        let store = open(&path, &DbKey::from_bytes([1; 32]), StoreOptions::default())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fields")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
        store.close().await;
    }

    #[test]
    fn keys_parse_and_never_print() {
        let k = DbKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(k.to_hex(), "ab".repeat(32));
        assert_eq!(format!("{k:?}"), "DbKey(<redacted>)");
        assert!(DbKey::from_hex("abc").is_none());
    }
}

/// The conformance suite on the SQLite backend.
#[cfg(test)]
mod sqlite_conformance {
    crate::conformance_suite!(crate::test_util::open_temp);
}
