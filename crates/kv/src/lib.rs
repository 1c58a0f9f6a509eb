//! Short-lived state shared by the replicas of a service: counters that expire (rate limits,
//! issuance quotas). [`RedisStore`] in production; [`MemoryStore`] as the embedded default, for a
//! single process.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("unsupported key-value store URL: expected redis://…, rediss://… or memory://")]
    UnsupportedUrl,
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
    /// A CA certificate or password that cannot be used with this URL (never echoes either).
    #[error("{0}")]
    Options(&'static str),
}

/// What a store needs besides its URL. The URL stays the one secret holding an address (and
/// possibly a password); these come from their own settings so that a managed Redis's CA and
/// password can be mounted as files of their own.
#[derive(Clone, Default)]
pub struct Options {
    /// PEM of the CA(s) that sign the Redis server's certificate. Only for `rediss://`; without
    /// it a `rediss://` server must chain to the system's roots.
    pub ca_pem: Option<String>,
    /// Password for Redis `AUTH`, overriding one in the URL.
    pub password: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[async_trait]
pub trait KvStore: Send + Sync + std::fmt::Debug {
    /// Adds `by` to the counter `key` and returns the new value. A counter that did not exist
    /// starts at zero and expires `ttl` after it was created.
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, KvError>;

    /// The counter's current value (0 when missing or expired).
    async fn get(&self, key: &str) -> Result<u64, KvError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), KvError>;

    /// Takes the lease `key` for `holder` (a value unique to the taker) unless someone else holds
    /// it; it lapses by itself `ttl` later, so a crashed holder cannot block the others for ever.
    /// `true` when `holder` now holds it.
    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, KvError>;

    /// Gives the lease back if `holder` still holds it (a lapsed lease someone else took is left
    /// alone).
    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), KvError>;
}

/// Opens the store a URL names: `redis://…`/`rediss://…`, or `memory://` for the in-process one.
/// `namespace` prefixes every key (one per service, or one per test).
pub async fn open(url: &str, namespace: &str) -> Result<Arc<dyn KvStore>, KvError> {
    open_with(url, namespace, &Options::default()).await
}

/// [`open`] with a CA certificate for `rediss://` and a password from their own settings.
pub async fn open_with(
    url: &str,
    namespace: &str,
    options: &Options,
) -> Result<Arc<dyn KvStore>, KvError> {
    if url == "memory://" || url == "memory" {
        if options.ca_pem.is_some() || options.password.is_some() {
            return Err(KvError::Options(
                "OPENWARN_KV_CA_FILE or OPENWARN_KV_PASSWORD_FILE was given for the in-memory store",
            ));
        }
        Ok(Arc::new(MemoryStore::default()))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(
            RedisStore::connect_with(url, namespace, options).await?,
        ))
    } else {
        Err(KvError::UnsupportedUrl)
    }
}

/// Counters in this process only. Expired entries are dropped as they are touched and swept
/// when the map grows.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

const SWEEP_ABOVE: usize = 100_000;

/// Locks one of the maps, also after a panic elsewhere while it was held: every update is one map
/// operation that leaves the map whole, so what a poisoned lock guards is still valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, KvError> {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, (_, expires)| *expires > now);
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now + ttl));
        if entry.1 <= now {
            *entry = (0, now + ttl);
        }
        entry.0 = entry.0.saturating_add(by);
        Ok(entry.0)
    }

    async fn get(&self, key: &str) -> Result<u64, KvError> {
        let now = Instant::now();
        let entries = lock(&self.entries);
        Ok(entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map_or(0, |(n, _)| *n))
    }

    async fn ping(&self) -> Result<(), KvError> {
        Ok(())
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        match leases.get(key) {
            Some((_, expires)) if *expires > now => Ok(false),
            _ => {
                leases.insert(key.to_owned(), (holder.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), KvError> {
        let mut leases = lock(&self.leases);
        if leases.get(key).is_some_and(|(h, _)| h == holder) {
            leases.remove(key);
        }
        Ok(())
    }
}

/// Counters in Redis, shared by every replica. Reconnects by itself (connection manager).
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    namespace: String,
    incr: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> KvError {
    KvError::Unavailable(e.to_string())
}

/// Runs `command` on the connection, and once more when its connection had been dropped (a
/// Redis that restarted): the connection manager reconnects on that first failure, so the
/// second try goes over the new connection instead of failing the caller's first request after
/// every restart. (A retried increment that had in fact been applied counts one too many: the
/// counters are limits, where that errs on the safe side.)
async fn retried<T, F, Fut>(conn: &redis::aio::ConnectionManager, command: F) -> Result<T, KvError>
where
    F: Fn(redis::aio::ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match command(conn.clone()).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => {
            command(conn.clone()).await.map_err(unavailable)
        }
        other => other.map_err(unavailable),
    }
}

impl RedisStore {
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, KvError> {
        Self::connect_with(url, namespace, &Options::default()).await
    }

    /// Connects over TLS for `rediss://` (rustls; the CA of `options`, else the system's roots).
    pub async fn connect_with(
        url: &str,
        namespace: &str,
        options: &Options,
    ) -> Result<Self, KvError> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|_| KvError::UnsupportedUrl)?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let client = match &options.ca_pem {
            None => redis::Client::open(info).map_err(|_| KvError::UnsupportedUrl)?,
            Some(_) if !tls => {
                return Err(KvError::Options(
                    "OPENWARN_KV_CA_FILE was given for a URL without TLS (expected rediss://)",
                ));
            }
            Some(pem) => {
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(KvError::Options(
                        "OPENWARN_KV_CA_FILE holds no PEM certificate",
                    ));
                }
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone().into_bytes()),
                    },
                )
                .map_err(|_| {
                    KvError::Options("OPENWARN_KV_CA_FILE holds no valid PEM certificate")
                })?
            }
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            namespace: namespace.to_owned(),
            // INCRBY and the expiry of a new counter in one atomic step.
            incr: redis::Script::new(
                "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                 if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
                 return n",
            ),
            // Delete the lease only while it is still ours.
            release: redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
                 return 0",
            ),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[async_trait]
impl KvStore for RedisStore {
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, KvError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key(key);
        retried(&self.conn, |mut conn| {
            let mut invocation = self.incr.key(&key);
            invocation.arg(by).arg(ttl_ms);
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<u64, KvError> {
        let key = self.key(key);
        let value: Option<u64> = retried(&self.conn, |mut conn| {
            let key = key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
        })
        .await?;
        Ok(value.unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), KvError> {
        retried(&self.conn, |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(drop)
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, KvError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key(key);
        let set: Option<String> = retried(&self.conn, |mut conn| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(holder).arg("NX").arg("PX").arg(ttl_ms);
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        if set.is_some() {
            return Ok(true);
        }
        // Ours after all when a retried SET found the lease its first try had taken.
        let current: Option<String> = retried(&self.conn, |mut conn| {
            let key = key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
        })
        .await?;
        Ok(current.as_deref() == Some(holder))
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), KvError> {
        let key = self.key(key);
        retried(&self.conn, |mut conn| {
            let mut invocation = self.release.key(&key);
            invocation.arg(holder);
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        })
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod redis_tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory store, plus Redis when `OPENWARN_TEST_REDIS_URL` is set (required under CI).
    #[allow(
        clippy::disallowed_methods,
        reason = "tests only: the test environment (OPENWARN_TEST_REDIS_URL, CI) picks the stores \
                  under test; no service configuration is read here"
    )]
    async fn stores() -> Vec<Arc<dyn KvStore>> {
        let mut stores: Vec<Arc<dyn KvStore>> = vec![Arc::new(MemoryStore::default())];
        match std::env::var("OPENWARN_TEST_REDIS_URL") {
            Ok(url) => {
                let namespace = format!("test-{}", uuid::Uuid::new_v4());
                stores.push(
                    open(&url, &namespace)
                        .await
                        .expect("OPENWARN_TEST_REDIS_URL must be reachable"),
                );
            }
            Err(_) => assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but OPENWARN_TEST_REDIS_URL is not set"
            ),
        }
        stores
    }

    #[tokio::test]
    async fn counters_count_and_expire() {
        for store in stores().await {
            check_counters_count_and_expire(store).await;
        }
    }

    /// Shared with the tests over TLS.
    pub(crate) async fn check_counters_count_and_expire(store: Arc<dyn KvStore>) {
        assert_eq!(store.get("c").await.unwrap(), 0);
        assert_eq!(
            store
                .incr("c", 1, Duration::from_millis(300))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .incr("c", 2, Duration::from_millis(300))
                .await
                .unwrap(),
            3
        );
        assert_eq!(store.get("c").await.unwrap(), 3);
        assert_eq!(
            store
                .incr("other", 1, Duration::from_secs(60))
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(store.get("c").await.unwrap(), 0, "{store:?}");
        assert_eq!(
            store.incr("c", 1, Duration::from_secs(60)).await.unwrap(),
            1,
            "{store:?}"
        );
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_increments_are_not_lost() {
        for store in stores().await {
            check_concurrent_increments_are_not_lost(store).await;
        }
    }

    /// Shared with the tests over TLS.
    pub(crate) async fn check_concurrent_increments_are_not_lost(store: Arc<dyn KvStore>) {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.incr("n", 1, Duration::from_secs(60)).await.unwrap()
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "{store:?}");
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_released_or_lapsed() {
        for store in stores().await {
            check_a_lease_has_one_holder_until_released_or_lapsed(store).await;
        }
    }

    /// Shared with the tests over TLS.
    pub(crate) async fn check_a_lease_has_one_holder_until_released_or_lapsed(
        store: Arc<dyn KvStore>,
    ) {
        let ttl = Duration::from_millis(400);
        assert!(store.try_lease("run", "a", ttl).await.unwrap());
        assert!(
            !store.try_lease("run", "b", ttl).await.unwrap(),
            "{store:?}"
        );
        // Only the holder can give it back.
        store.release_lease("run", "b").await.unwrap();
        assert!(
            !store.try_lease("run", "b", ttl).await.unwrap(),
            "{store:?}"
        );
        store.release_lease("run", "a").await.unwrap();
        assert!(store.try_lease("run", "b", ttl).await.unwrap(), "{store:?}");
        // A crashed holder's lease lapses.
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert!(store.try_lease("run", "c", ttl).await.unwrap(), "{store:?}");
        // b's late release does not free c's lease.
        store.release_lease("run", "b").await.unwrap();
        assert!(
            !store.try_lease("run", "a", ttl).await.unwrap(),
            "{store:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_takers_get_one_lease() {
        for store in stores().await {
            check_concurrent_takers_get_one_lease(store).await;
        }
    }

    /// Shared with the tests over TLS.
    pub(crate) async fn check_concurrent_takers_get_one_lease(store: Arc<dyn KvStore>) {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .try_lease("once", &format!("t{i}"), Duration::from_secs(60))
                    .await
                    .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1, "{store:?}");
    }

    /// A connection Redis dropped (a restart, a timeout, `CLIENT KILL`) costs the caller nothing:
    /// each command is tried once more over the reconnected connection, instead of the first
    /// request after every drop failing (the first publishing run after a Redis restart did).
    #[tokio::test]
    #[allow(
        clippy::disallowed_methods,
        reason = "tests only: OPENWARN_TEST_REDIS_URL names the Redis under test"
    )]
    async fn a_dropped_connection_is_reconnected_for_the_same_command() {
        let Ok(url) = std::env::var("OPENWARN_TEST_REDIS_URL") else {
            return; // `stores()` fails the run under CI without it.
        };
        let namespace = format!("test-{}", uuid::Uuid::new_v4());
        let store = RedisStore::connect(&url, &namespace).await.unwrap();
        store.incr("k", 2, Duration::from_secs(60)).await.unwrap();
        for round in 0..3 {
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut store.conn.clone())
                .await
                .unwrap();
            let mut admin = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut admin)
                .await
                .unwrap();
            assert_eq!(killed, 1, "round {round}");
            assert_eq!(store.get("k").await.unwrap(), 2, "round {round}");
        }
    }

    #[tokio::test]
    async fn unknown_urls_are_refused_and_a_down_redis_is_unavailable() {
        assert!(matches!(
            open("http://x", "n").await,
            Err(KvError::UnsupportedUrl)
        ));
        assert!(matches!(
            open("redis://127.0.0.1:1", "n").await,
            Err(KvError::Unavailable(_))
        ));
    }
}
