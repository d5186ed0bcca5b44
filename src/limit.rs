//! Per-tenant concurrency limits: one counter per namespace that outlives config reloads, so a
//! reload never resets how many connections a tenant holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Open connections per namespace.
#[derive(Default)]
pub struct TenantLimiter {
    counters: RwLock<HashMap<Box<str>, Arc<AtomicUsize>>>,
}

/// One admitted connection; releases its slot when dropped.
#[derive(Debug)]
pub struct Permit {
    counter: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TenantLimiter {
    /// Admits one more connection for `namespace` if it holds fewer than `limit`.
    pub fn try_acquire(&self, namespace: &str, limit: usize) -> Option<Permit> {
        let counter = self.counter(namespace);
        let admitted = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| Permit { counter })
    }

    /// Connections `namespace` holds now.
    pub fn open(&self, namespace: &str) -> usize {
        self.counter(namespace).load(Ordering::Acquire)
    }

    fn counter(&self, namespace: &str) -> Arc<AtomicUsize> {
        if let Some(counter) = self
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
        {
            return counter.clone();
        }
        self.counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.into())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_does_not_affect_another() {
        let limiter = TenantLimiter::default();
        let a1 = limiter.try_acquire("a", 2).unwrap();
        let _a2 = limiter.try_acquire("a", 2).unwrap();
        assert!(limiter.try_acquire("a", 2).is_none());
        assert!(limiter.try_acquire("b", 2).is_some());
        drop(a1);
        assert_eq!(limiter.open("a"), 1);
        assert!(limiter.try_acquire("a", 2).is_some());
    }
}
