//! Short-lived state shared by the replicas of a service: counters that expire (rate limits,
//! issuance quotas). [`RedisStore`] in production; [`MemoryStore`] as the embedded default, for a
//! single process.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("unsupported key-value store URL: expected redis://…, rediss://… or memory://")]
    UnsupportedUrl,
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
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
}

/// Opens the store a URL names: `redis://…`/`rediss://…`, or `memory://` for the in-process one.
/// `namespace` prefixes every key (one per service, or one per test).
pub async fn open(url: &str, namespace: &str) -> Result<Arc<dyn KvStore>, KvError> {
    if url == "memory://" || url == "memory" {
        Ok(Arc::new(MemoryStore::default()))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(RedisStore::connect(url, namespace).await?))
    } else {
        Err(KvError::UnsupportedUrl)
    }
}

/// Counters in this process only. Expired entries are dropped as they are touched and swept
/// when the map grows.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

const SWEEP_ABOVE: usize = 100_000;

#[async_trait]
impl KvStore for MemoryStore {
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, KvError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("kv lock");
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
        let entries = self.entries.lock().expect("kv lock");
        Ok(entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map_or(0, |(n, _)| *n))
    }

    async fn ping(&self) -> Result<(), KvError> {
        Ok(())
    }
}

/// Counters in Redis, shared by every replica. Reconnects by itself (connection manager).
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    namespace: String,
    incr: redis::Script,
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

impl RedisStore {
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, KvError> {
        let client = redis::Client::open(url).map_err(|_| KvError::UnsupportedUrl)?;
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
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[async_trait]
impl KvStore for RedisStore {
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, KvError> {
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.incr
            .key(self.key(key))
            .arg(by)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn get(&self, key: &str) -> Result<u64, KvError> {
        let mut conn = self.conn.clone();
        let value: Option<u64> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(value.unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), KvError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory store, plus Redis when `OPENWARN_TEST_REDIS_URL` is set (required under CI).
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
    }

    #[tokio::test]
    async fn concurrent_increments_are_not_lost() {
        for store in stores().await {
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
