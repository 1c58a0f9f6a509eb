//! Database plumbing shared by the services; the models stay private to the service that owns them.
//!
//! The URL scheme picks the backend: `postgres://` (production) or `sqlite://PATH` (embedded
//! default). Queries are written once against [`AnyConnection`], diesel's `MultiConnection` over
//! both backends; connections are established per backend so that a bad URL or a server that is
//! down gives its real error instead of a generic one.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub mod batch;
mod prepared;

pub use batch::{BatchLimits, Batcher};
pub use prepared::{Prepared, prepared};

/// One connection to either backend. Write queries against this type.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL: expected postgres://… or sqlite://PATH")]
    UnsupportedUrl,
    #[error("cannot connect to {backend}: {message}")]
    Connect {
        backend: &'static str,
        message: String,
    },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// The database cannot be reached (as opposed to a query that failed): callers answer 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Unavailable(_)
                | Self::Query(
                    DieselError::DatabaseError(
                        DatabaseErrorKind::ClosedConnection
                            | DatabaseErrorKind::UnableToSendCommand,
                        _,
                    ) | DieselError::BrokenTransactionManager
                )
        )
    }

    /// A unique or primary-key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<DbError> for tonic::Status {
    /// `UNAVAILABLE` when the database cannot be reached, `INTERNAL` otherwise; the detail goes to
    /// the log, never to the caller.
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            tonic::Status::unavailable("database unavailable")
        } else {
            tracing::error!(error = %e, "database error");
            tonic::Status::internal("internal error")
        }
    }
}

/// Where a URL points.
#[derive(Debug, Clone)]
enum Target {
    Postgres(String),
    Sqlite(String),
}

impl Target {
    fn parse(url: &str) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path == ":memory:" {
                // Every pooled connection would get its own empty in-memory database.
                return Err(DbError::UnsupportedUrl);
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    fn establish(&self) -> Result<AnyConnection, DbError> {
        let connect_error = |e: diesel::ConnectionError| DbError::Connect {
            backend: self.backend().name(),
            message: redact(&e.to_string()),
        };
        match self {
            Self::Postgres(url) => PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(connect_error),
            Self::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(connect_error)?;
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| DbError::Connect {
                    backend: "SQLite",
                    message: e.to_string(),
                })?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping its query string.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| i + authority_start);
    let root = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The URL of the database `name` on the PostgreSQL server of `server_url` (a user that may create
/// databases), created first if it does not exist yet. `name` is a plain identifier
/// (`[a-z_][a-z0-9_]*`): anything else is refused rather than quoted.
pub fn ensure_database(server_url: &str, name: &str) -> Result<String, DbError> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(DbError::UnsupportedUrl);
    }
    let target = Target::parse(server_url)?;
    if !matches!(target, Target::Postgres(_)) {
        return Err(DbError::UnsupportedUrl);
    }
    let AnyConnection::Postgresql(mut conn) = target.establish()? else {
        return Err(DbError::UnsupportedUrl);
    };
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        #[allow(dead_code, reason = "only its presence counts")]
        one: i32,
    }
    use diesel::RunQueryDsl;
    let exists = !diesel::sql_query("SELECT 1 AS one FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .load::<Found>(&mut conn)?
        .is_empty();
    if !exists {
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
    }
    Ok(with_database(server_url, name))
}

/// Connection errors of libpq can quote the connection string; keep passwords out of messages.
fn redact(message: &str) -> String {
    message
        .split_whitespace()
        .map(|w| {
            if w.starts_with("password=") {
                "password=***"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug)]
struct Manager(Target);

/// A pooled connection and whether it is known to be dead.
struct Pooled {
    conn: AnyConnection,
    /// A query on it failed because the server is gone (a restart, a crash, a network cut):
    /// every later query on it would fail the same way, so the pool drops it and connects anew.
    broken: bool,
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = DbError;

    fn connect(&self) -> Result<Pooled, DbError> {
        Ok(Pooled {
            conn: self.0.establish()?,
            broken: false,
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), DbError> {
        pooled
            .conn
            .batch_execute("SELECT 1")
            .map_err(DbError::Query)
    }

    /// Checked whenever a connection goes back to the pool; no query (that would cost a round
    /// trip per use): a connection whose last use found the server gone, or whose transaction
    /// state is broken, is dropped.
    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        use diesel::connection::TransactionManager;
        pooled.broken
            || <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                &mut pooled.conn,
            )
    }
}

/// A pool of connections to one service's database.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    backend: Backend,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens a pool. One connection is made right away, so that a wrong URL or a server that is
    /// down fails here with its real error.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, DbError> {
        let target = Target::parse(url)?;
        let backend = target.backend();
        let probe_target = target.clone();
        tokio::task::spawn_blocking(move || probe_target.establish().map(drop))
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))??;
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(3))
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager(target));
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; returns the versions applied. On PostgreSQL an advisory lock
    /// keeps replicas that start together from migrating at once.
    /// `postgres` and `sqlite` are the service's `embed_migrations!` constants, one per backend.
    pub async fn migrate(
        &self,
        postgres: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError> {
        self.with_connection(move |conn| {
            let applied = match conn {
                AnyConnection::Postgresql(pg) => {
                    pg.batch_execute("SELECT pg_advisory_lock(7426)")?;
                    let result = pg
                        .run_pending_migrations(postgres)
                        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>());
                    pg.batch_execute("SELECT pg_advisory_unlock(7426)")?;
                    result
                }
                AnyConnection::Sqlite(lite) => lite
                    .run_pending_migrations(sqlite)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>()),
            };
            Ok(applied)
        })
        .await?
        .map_err(|e| DbError::Migration(e.to_string()))
    }

    /// Runs blocking diesel code on a pooled connection, off the async runtime.
    pub async fn run<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<R, DieselError> + Send + 'static,
    {
        self.with_connection(move |conn| f(conn).map_err(DbError::Query))
            .await
    }

    /// Runs `f` in one write transaction: all of it commits, or nothing does. On SQLite the
    /// transaction takes the write lock up front (`BEGIN IMMEDIATE`), so concurrent writers queue
    /// instead of failing on a lock upgrade. `f` must not open transactions of its own.
    pub async fn transaction<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<R, DieselError> + Send + 'static,
    {
        self.with_connection(move |conn| match conn {
            AnyConnection::Postgresql(_) => conn.transaction(f).map_err(DbError::Query),
            AnyConnection::Sqlite(_) => {
                conn.batch_execute("BEGIN IMMEDIATE")?;
                match f(conn) {
                    Ok(value) => match conn.batch_execute("COMMIT") {
                        Ok(()) => Ok(value),
                        Err(e) => {
                            let _ = conn.batch_execute("ROLLBACK");
                            Err(DbError::Query(e))
                        }
                    },
                    Err(e) => {
                        let _ = conn.batch_execute("ROLLBACK");
                        Err(DbError::Query(e))
                    }
                }
            }
        })
        .await
    }

    /// Succeeds when a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.batch_execute("SELECT 1")).await
    }

    async fn with_connection<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<R, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let waiting = std::time::Instant::now();
            let got = pool.get();
            metrics::histogram!("openwarn_db_pool_wait_seconds")
                .record(waiting.elapsed().as_secs_f64());
            sample_pool(&pool);
            let mut pooled = got.map_err(|e| DbError::Unavailable(e.to_string()))?;
            let result = f(&mut pooled.conn);
            if result.as_ref().is_err_and(DbError::is_unavailable) {
                pooled.broken = true;
            }
            drop(pooled);
            sample_pool(&pool);
            result
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }
}

/// Records the pool's connections in use and idle (`openwarn_db_pool_connections{state}`) and
/// its size, as of now.
fn sample_pool(pool: &Pool<Manager>) {
    let state = pool.state();
    let idle = f64::from(state.idle_connections);
    metrics::gauge!("openwarn_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("openwarn_db_pool_connections", "state" => "in_use")
        .set(f64::from(state.connections) - idle);
    metrics::gauge!("openwarn_db_pool_max_connections").set(f64::from(pool.max_size()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }

    /// A database is created when missing and found when present (its tables kept); a name that
    /// would need quoting, or a server that is not PostgreSQL, is refused.
    #[test]
    fn databases_are_created_once() {
        assert!(matches!(
            ensure_database("postgres://h/db", "bad-name"),
            Err(DbError::UnsupportedUrl)
        ));
        assert!(matches!(
            ensure_database("sqlite:///tmp/x.db", "fine"),
            Err(DbError::UnsupportedUrl)
        ));
        let Some(server) = openwarn_testkit::postgres_url() else {
            return;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("openwarn_ensure_{}_{nanos}", std::process::id());
        let url = ensure_database(&server, &name).unwrap();
        assert_eq!(url, with_database(&server, &name));
        let mut conn = PgConnection::establish(&url).unwrap();
        conn.batch_execute("CREATE TABLE kept (x INT)").unwrap();
        drop(conn);
        assert_eq!(ensure_database(&server, &name).unwrap(), url);
        let mut conn = PgConnection::establish(&url).unwrap();
        conn.batch_execute("SELECT x FROM kept").unwrap();
        drop(conn);
        let mut admin = PgConnection::establish(&server).unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    }

    /// The pool's gauges count a checked-out connection as in use and a returned one as idle.
    #[tokio::test]
    async fn pool_connections_are_sampled_by_state() {
        let db = openwarn_testkit::TestDatabase::sqlite();
        let database = Database::open(db.url(), 3).await.unwrap();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let pool = database.pool.clone();
        let text = tokio::task::spawn_blocking(move || {
            metrics::with_local_recorder(&recorder, || {
                let held = pool.get().unwrap();
                sample_pool(&pool);
                let busy = handle.render();
                drop(held);
                sample_pool(&pool);
                (busy, handle.render())
            })
        })
        .await
        .unwrap();
        assert!(
            text.0
                .contains("openwarn_db_pool_connections{state=\"in_use\"} 1"),
            "{}",
            text.0
        );
        assert!(
            text.1
                .contains("openwarn_db_pool_connections{state=\"in_use\"} 0"),
            "{}",
            text.1
        );
        assert!(
            text.1
                .contains("openwarn_db_pool_connections{state=\"idle\"} 1"),
            "{}",
            text.1
        );
        assert!(
            text.1.contains("openwarn_db_pool_max_connections 3"),
            "{}",
            text.1
        );
    }

    #[test]
    fn url_scheme_picks_the_backend() {
        assert_eq!(
            Target::parse("postgres://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            Target::parse("postgresql://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db").unwrap().backend(),
            Backend::Sqlite
        );
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(DbError::UnsupportedUrl)
        ));
        assert!(matches!(
            Target::parse("sqlite://:memory:"),
            Err(DbError::UnsupportedUrl)
        ));
        assert!(matches!(
            Target::parse("/tmp/x.db"),
            Err(DbError::UnsupportedUrl)
        ));
    }

    /// After PostgreSQL closed a pooled connection (a restart, a crash), the failing query is an
    /// outage (503) and the pool connects anew: the next query succeeds. Before, the dead
    /// connection went back to the pool and every later query failed.
    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        use diesel::RunQueryDsl;
        let Some(db) = openwarn_testkit::databases()
            .into_iter()
            .find(|d| d.url().starts_with("postgres"))
        else {
            return;
        };
        let pool = Database::open(db.url(), 1).await.unwrap();
        let pid: i32 = pool
            .run(|conn| {
                #[derive(diesel::QueryableByName)]
                struct Pid {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    pid: i32,
                }
                diesel::sql_query("SELECT pg_backend_pid() AS pid")
                    .get_result::<Pid>(conn)
                    .map(|p| p.pid)
            })
            .await
            .unwrap();
        // What a server restart does to the pooled connection.
        let mut admin = PgConnection::establish(db.url()).unwrap();
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut admin)
            .unwrap();
        let lost = pool.ping().await.unwrap_err();
        assert!(lost.is_unavailable(), "{lost}");
        pool.ping().await.unwrap();
        pool.ping().await.unwrap();
    }

    #[test]
    fn a_broken_transaction_manager_is_an_outage() {
        assert!(DbError::Query(DieselError::BrokenTransactionManager).is_unavailable());
    }

    #[tokio::test]
    async fn a_server_that_is_down_gives_its_real_error() {
        // Port 1 on loopback: nothing listens there.
        let err = Database::open("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", 1)
            .await
            .unwrap_err();
        assert!(err.is_unavailable());
        let message = err.to_string();
        assert!(
            message.starts_with("cannot connect to PostgreSQL"),
            "{message}"
        );
        assert!(
            message.contains("127.0.0.1") || message.contains("refused"),
            "{message}"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("host=x password=secret user=y"),
            "host=x password=*** user=y"
        );
    }

    #[tokio::test]
    async fn sqlite_transactions_commit_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Database::open(&url, 4).await.unwrap();
        db.run(|c| c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            .await
            .unwrap();
        let err = db
            .transaction(|c| {
                c.batch_execute("INSERT INTO t VALUES (1)")?;
                c.batch_execute("INSERT INTO t VALUES (1)")
            })
            .await
            .unwrap_err();
        assert!(err.is_unique_violation());
        db.transaction(|c| c.batch_execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"))
            .await
            .unwrap();
        // The failed transaction left nothing behind: inserting 1 again would fail, 3 succeeds.
        db.ping().await.unwrap();
        assert!(
            db.run(|c| c.batch_execute("INSERT INTO t VALUES (1)"))
                .await
                .unwrap_err()
                .is_unique_violation()
        );
        db.run(|c| c.batch_execute("INSERT INTO t VALUES (3)"))
            .await
            .unwrap();
    }
}
