//! Idle upstream connections kept for the next request to the same place: forwarded HTTP/1.1
//! pays one TCP (and parent) handshake per connection instead of per request.
//!
//! The pool only stores and hands out values under a key; what a key means (tenant, target,
//! snapshot generation) and whether a value may be reused (its connection still idle and
//! healthy) is the caller's, so this module knows nothing of HTTP. Bounds hold per key and in
//! total; an entry idle longer than the idle timeout is dropped, which closes its connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How much the pool may hold, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept per key (per tenant and upstream).
    pub per_upstream: usize,
    /// Idle connections kept in all.
    pub total: usize,
    /// An idle connection older than this is closed instead of reused.
    pub idle: Duration,
}

struct Entry<T> {
    value: T,
    since: Instant,
}

struct Inner<K, T> {
    by_key: HashMap<K, Vec<Entry<T>>>,
    total: usize,
}

/// Idle values by key, most recently returned first out.
pub struct IdlePool<K, T> {
    inner: Mutex<Inner<K, T>>,
}

impl<K, T> Default for IdlePool<K, T> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_key: HashMap::new(),
                total: 0,
            }),
        }
    }
}

impl<K: Hash + Eq, T> IdlePool<K, T> {
    /// The freshest idle value for `key` that is younger than `limits.idle` and `usable`; stale
    /// and unusable ones met on the way are dropped (closing their connections).
    pub fn take(&self, key: &K, limits: PoolLimits, usable: impl Fn(&T) -> bool) -> Option<T> {
        let now = Instant::now();
        let mut dropped = Vec::new();
        let found = {
            let mut inner = self.lock();
            let Inner { by_key, total } = &mut *inner;
            let entries = by_key.get_mut(key)?;
            let mut found = None;
            while let Some(entry) = entries.pop() {
                *total -= 1;
                if now.duration_since(entry.since) < limits.idle && usable(&entry.value) {
                    found = Some(entry.value);
                    break;
                }
                dropped.push(entry.value);
            }
            if entries.is_empty() {
                by_key.remove(key);
            }
            found
        };
        drop(dropped);
        found
    }

    /// Keeps `value` for `key` unless a bound is reached; returns it back when it is not kept.
    pub fn put(&self, key: K, value: T, limits: PoolLimits) -> Result<(), T> {
        let mut inner = self.lock();
        if inner.total >= limits.total {
            return Err(value);
        }
        let entries = inner.by_key.entry(key).or_default();
        if entries.len() >= limits.per_upstream {
            return Err(value);
        }
        entries.push(Entry {
            value,
            since: Instant::now(),
        });
        inner.total += 1;
        Ok(())
    }

    /// Drops every value idle longer than `idle`.
    pub fn expire(&self, idle: Duration) {
        let now = Instant::now();
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            let Inner { by_key, total } = &mut *inner;
            by_key.retain(|_, entries| {
                let before = entries.len();
                let (fresh, stale): (Vec<_>, Vec<_>) = std::mem::take(entries)
                    .into_iter()
                    .partition(|entry| now.duration_since(entry.since) < idle);
                *entries = fresh;
                *total -= before - entries.len();
                dropped.extend(stale);
                !entries.is_empty()
            });
        }
        drop(dropped);
    }

    /// Drops everything (the drain: idle connections carry nothing and must not hold it up).
    pub fn clear(&self) {
        let dropped = {
            let mut inner = self.lock();
            inner.total = 0;
            std::mem::take(&mut inner.by_key)
        };
        drop(dropped);
    }

    /// Idle values held now.
    pub fn len(&self) -> usize {
        self.lock().total
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PoolLimits = PoolLimits {
        per_upstream: 2,
        total: 3,
        idle: Duration::from_secs(90),
    };

    #[test]
    fn values_come_back_only_under_their_own_key_freshest_first() {
        let pool = IdlePool::default();
        pool.put("app1/a", 1, LIMITS).unwrap();
        pool.put("app1/a", 2, LIMITS).unwrap();
        assert_eq!(pool.take(&"app2/a", LIMITS, |_| true), None);
        assert_eq!(pool.take(&"app1/a", LIMITS, |_| true), Some(2));
        assert_eq!(pool.take(&"app1/a", LIMITS, |_| true), Some(1));
        assert!(pool.is_empty());
    }

    #[test]
    fn bounds_hold_per_key_and_in_total() {
        let pool = IdlePool::default();
        pool.put("a", 1, LIMITS).unwrap();
        pool.put("a", 2, LIMITS).unwrap();
        assert_eq!(pool.put("a", 3, LIMITS), Err(3));
        pool.put("b", 4, LIMITS).unwrap();
        assert_eq!(pool.put("c", 5, LIMITS), Err(5));
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn unusable_values_are_dropped_on_the_way() {
        let pool = IdlePool::default();
        pool.put("a", 1, LIMITS).unwrap();
        pool.put("a", 2, LIMITS).unwrap();
        assert_eq!(pool.take(&"a", LIMITS, |v| *v == 1), Some(1));
        assert!(pool.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_values_expire() {
        let pool = IdlePool::default();
        pool.put("a", 1, LIMITS).unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        pool.put("a", 2, LIMITS).unwrap();
        tokio::time::advance(Duration::from_secs(45)).await;
        pool.expire(LIMITS.idle);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(&"a", LIMITS, |_| true), Some(2));
        pool.put("a", 3, LIMITS).unwrap();
        tokio::time::advance(Duration::from_secs(91)).await;
        assert_eq!(pool.take(&"a", LIMITS, |_| true), None);
        pool.put("b", 4, LIMITS).unwrap();
        pool.clear();
        assert!(pool.is_empty());
    }
}
