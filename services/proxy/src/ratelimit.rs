//! Per-client rate limiting at the edge without keeping addresses.
//!
//! The counter key is `HMAC(day_key, client network)` where `day_key = HMAC(secret, day number)`:
//! the key of a client changes every rotation period, and nothing stored (Redis keys expire after
//! one window) can be turned back into an address without the secret. IPv6 clients are counted
//! per /64 (a phone's address changes within its /64); IPv4-mapped addresses count as IPv4.

use openwarn_kv::{KvError, KvStore};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limiter {
    kv: Arc<dyn KvStore>,
    secret: Vec<u8>,
    pub limit: u64,
    pub window: Duration,
    pub rotation: Duration,
}

/// A request over the limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    openwarn_domain::hmac_sha256(key, &[data])
}

/// The bytes that identify a client: the IPv4 address, or the /64 prefix of an IPv6 address.
pub fn network_of(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets()[..8].to_vec(),
        },
    }
}

impl Limiter {
    pub fn new(
        kv: Arc<dyn KvStore>,
        secret: Vec<u8>,
        limit: u64,
        window: Duration,
        rotation: Duration,
    ) -> Self {
        Self {
            kv,
            secret,
            limit,
            window,
            rotation,
        }
    }

    /// The counter key of a client at time `now` (unix seconds).
    pub fn key(&self, ip: IpAddr, now: u64) -> String {
        let period = now / self.rotation.as_secs().max(1);
        let period_key = mac(&self.secret, &period.to_be_bytes());
        let client = mac(&period_key, &network_of(ip));
        let window = now / self.window.as_secs().max(1);
        format!("rl:{}:{window}", hex::encode(&client[..12]))
    }

    /// Counts a request; `Err(Limited)` over the limit.
    pub async fn check(&self, ip: IpAddr, now: u64) -> Result<Result<(), Limited>, KvError> {
        let count = self.kv.incr(&self.key(ip, now), 1, self.window).await?;
        if count > self.limit {
            let window = self.window.as_secs().max(1);
            Ok(Err(Limited {
                retry_after_secs: window - now % window,
            }))
        } else {
            Ok(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(kv: Arc<dyn KvStore>, limit: u64) -> Limiter {
        Limiter::new(
            kv,
            b"secret".to_vec(),
            limit,
            Duration::from_secs(60),
            Duration::from_secs(86_400),
        )
    }

    #[test]
    fn keys_hide_the_address_and_rotate() {
        let l = limiter(Arc::new(openwarn_kv::MemoryStore::default()), 1);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let key = l.key(ip, 1_000_000);
        assert!(!key.contains("203") && !key.contains("113"), "{key}");
        assert_eq!(key, l.key(ip, 1_000_010), "same window, same key");
        assert_ne!(key, l.key("203.0.113.8".parse().unwrap(), 1_000_000));
        // Next day: another key for the same client.
        let next_day = l.key(ip, 1_000_000 + 86_400);
        assert_ne!(key.split(':').nth(1), next_day.split(':').nth(1));
        // Another secret: another key.
        let other = Limiter::new(
            Arc::new(openwarn_kv::MemoryStore::default()),
            b"other".to_vec(),
            1,
            Duration::from_secs(60),
            Duration::from_secs(86_400),
        );
        assert_ne!(key, other.key(ip, 1_000_000));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let l = limiter(Arc::new(openwarn_kv::MemoryStore::default()), 1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(l.key(a, 0), l.key(b, 0));
        assert_ne!(l.key(a, 0), l.key(c, 0));
        assert_eq!(
            l.key("::ffff:198.51.100.1".parse().unwrap(), 0),
            l.key("198.51.100.1".parse().unwrap(), 0)
        );
    }

    #[tokio::test]
    async fn over_the_limit_is_limited_until_the_window_ends() {
        for (name, kv) in openwarn_testkit::kv_stores().await {
            let l = limiter(kv, 3);
            let ip: IpAddr = "192.0.2.1".parse().unwrap();
            let now = 6_000_030; // 30 s into a window
            for _ in 0..3 {
                assert_eq!(l.check(ip, now).await.unwrap(), Ok(()), "{name}");
            }
            assert_eq!(
                l.check(ip, now).await.unwrap(),
                Err(Limited {
                    retry_after_secs: 30
                }),
                "{name}"
            );
            assert_eq!(
                l.check("192.0.2.2".parse().unwrap(), now).await.unwrap(),
                Ok(()),
                "others are not affected"
            );
            assert_eq!(
                l.check(ip, now + 30).await.unwrap(),
                Ok(()),
                "{name}: a new window"
            );
        }
    }
}
