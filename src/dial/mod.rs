//! Reaching the upstream: resolve, check every address against the deny list, dial exactly the
//! address that was checked (no second lookup, so DNS rebinding cannot slip past), all within the
//! connect timeout. The checked addresses of one destination are raced Happy-Eyeballs style
//! (`race.rs`).
//!
//! Returns a typed outcome; it never records metrics or logs.

pub mod parent;
pub mod parent_tls;
pub mod pool;
pub mod race;
pub mod resolve;
pub mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::decide::{AddressGuard, DenyReason, DialTarget};
use crate::names::Host;

pub use parent::{Parent, ParentRoutes};
pub use resolve::{DnsResolver, Resolve, ResolveFailure};
pub use upstream::Upstream;

/// Why no upstream connection was made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Every candidate address is on the deny list (or is the gateway itself).
    #[error("every upstream address is forbidden")]
    Forbidden,
    /// No name resolved.
    #[error("DNS lookup failed: {0}")]
    Dns(ResolveFailure),
    /// Every connect attempt was refused or failed.
    #[error("upstream unreachable: {0}")]
    Unreachable(std::io::Error),
    /// The connect timeout expired.
    #[error("upstream connect timed out")]
    Timeout,
    /// The parent proxy answered the `CONNECT` with this refusal (4xx).
    #[error("the parent proxy refused with status {0}")]
    ParentRefused(u16),
    /// The TLS handshake with the parent proxy failed (its certificate did not verify, or it
    /// does not speak TLS).
    #[error("TLS to the parent proxy failed: {0}")]
    ParentTls(std::io::Error),
}

impl DialError {
    /// The deny reason this failure is reported as.
    pub fn reason(&self) -> DenyReason {
        match self {
            Self::Forbidden => DenyReason::ForbiddenAddress,
            Self::Dns(_) => DenyReason::DnsFailure,
            Self::Unreachable(_) | Self::ParentTls(_) => DenyReason::UpstreamUnreachable,
            Self::Timeout => DenyReason::UpstreamTimeout,
            Self::ParentRefused(_) => DenyReason::ParentRefused,
        }
    }

    /// The `outcome` label of a failed parent attempt: the deny reason, except a failed TLS
    /// handshake, which is named on its own so a certificate or CA problem at the parent is told
    /// apart from the parent being down.
    pub fn parent_outcome(&self) -> &'static str {
        match self {
            Self::ParentTls(_) => "parent_tls_failed",
            other => other.reason().as_str(),
        }
    }
}

/// An open upstream connection and the address it went to.
#[derive(Debug)]
pub struct Dialed {
    /// The connection, `TCP_NODELAY` set.
    pub stream: Upstream,
    /// The address that was dialled (for the access log).
    pub addr: SocketAddr,
}

/// Dials upstreams for all listeners.
pub struct Dialer {
    resolver: Box<dyn Resolve>,
    own_addrs: Vec<SocketAddr>,
}

impl Dialer {
    /// `own_addrs` are the gateway's bound listeners, which are never dialled (no loops through
    /// the gateway itself, no reaching the admin port through a tunnel).
    pub fn new(resolver: Box<dyn Resolve>, own_addrs: Vec<SocketAddr>) -> Self {
        Self {
            resolver,
            own_addrs,
        }
    }

    /// Tries `targets` in order until one connects, within `timeout` overall.
    pub async fn dial(
        &self,
        targets: impl Iterator<Item = DialTarget>,
        guard: &AddressGuard,
        timeout: Duration,
    ) -> Result<Dialed, DialError> {
        // Each lookup and each connect is bounded by the same deadline, so a resolver that never
        // answers is a DNS failure and an upstream that never answers is a timeout.
        let deadline = Instant::now() + timeout;
        self.try_targets(targets, guard, deadline).await
    }

    async fn try_targets(
        &self,
        targets: impl Iterator<Item = DialTarget>,
        guard: &AddressGuard,
        deadline: Instant,
    ) -> Result<Dialed, DialError> {
        let mut forbidden = false;
        let mut dns_failure = None;
        let mut last_error = None;
        for target in targets {
            let candidates = match target {
                DialTarget::Trusted(addr) => vec![(addr, true)],
                DialTarget::Checked(addr) => vec![(addr, false)],
                DialTarget::Resolve(name, port) => {
                    let lookup = tokio::time::timeout_at(deadline, self.resolver.lookup(&name));
                    match lookup.await {
                        Ok(Ok(ips)) => ips
                            .into_iter()
                            .map(|ip| (SocketAddr::new(ip, port), false))
                            .collect(),
                        Ok(Err(failure)) => {
                            dns_failure = Some(failure);
                            continue;
                        }
                        Err(_) => {
                            dns_failure = Some(ResolveFailure(format!("{name}: timed out")));
                            continue;
                        }
                    }
                }
            };
            let mut allowed = Vec::with_capacity(candidates.len());
            for (addr, trusted) in candidates {
                if self.is_self(addr) || (!trusted && guard.is_forbidden(addr.ip())) {
                    forbidden = true;
                } else {
                    allowed.push(addr);
                }
            }
            let attempt = move |addr| connect(addr, deadline);
            match race::race(race::interleave(allowed), race::STAGGER, attempt).await {
                Ok((tcp, addr)) => {
                    let stream = Upstream::Tcp(tcp);
                    return Ok(Dialed { stream, addr });
                }
                Err(Some(err)) => last_error = Some(err),
                Err(None) => {}
            }
        }
        Err(match (last_error, forbidden, dns_failure) {
            (Some(err), _, _) if err.kind() == std::io::ErrorKind::TimedOut => DialError::Timeout,
            (Some(err), _, _) => DialError::Unreachable(err),
            (None, true, _) => DialError::Forbidden,
            (None, false, Some(failure)) => DialError::Dns(failure),
            (None, false, None) => DialError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the entry has no dialable endpoint",
            )),
        })
    }

    /// Asks `parent` for a tunnel to each of `targets` in turn, within `timeout` overall. IP
    /// literals still pass the deny list; names are resolved by the parent. The parent's own
    /// addresses are the only ones exempt from the deny list.
    pub async fn dial_via(
        &self,
        parent: &Parent,
        targets: impl Iterator<Item = DialTarget>,
        guard: &AddressGuard,
        timeout: Duration,
    ) -> Result<Dialed, DialError> {
        let deadline = Instant::now() + timeout;
        let mut failure = None;
        for target in targets {
            let authority = match target {
                DialTarget::Trusted(addr) => addr.to_string(),
                DialTarget::Checked(addr) if guard.is_forbidden(addr.ip()) => {
                    failure.get_or_insert(DialError::Forbidden);
                    continue;
                }
                DialTarget::Checked(addr) => addr.to_string(),
                DialTarget::Resolve(name, port) => format!("{name}:{port}"),
            };
            match self.through(parent, &authority, deadline).await {
                Ok(dialed) => return Ok(dialed),
                Err(DialError::Timeout) => return Err(DialError::Timeout),
                Err(err) => failure = Some(err),
            }
        }
        Err(failure.unwrap_or_else(|| {
            DialError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the entry has no dialable endpoint",
            ))
        }))
    }

    /// One tunnel through `parent` to `authority`: resolve and dial the parent (raced like any
    /// upstream), speak TLS to it when configured, send `CONNECT`, read its answer.
    async fn through(
        &self,
        parent: &Parent,
        authority: &str,
        deadline: Instant,
    ) -> Result<Dialed, DialError> {
        let addrs = match &parent.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, parent.port)],
            Host::Name(name) => {
                match tokio::time::timeout_at(deadline, self.resolver.lookup(name)).await {
                    Ok(Ok(ips)) => ips
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, parent.port))
                        .collect(),
                    Ok(Err(failure)) => return Err(DialError::Dns(failure)),
                    Err(_) => return Err(DialError::Timeout),
                }
            }
        };
        let addrs = addrs.into_iter().filter(|addr| !self.is_self(*addr));
        let attempt = move |addr| connect(addr, deadline);
        let (tcp, addr) =
            match race::race(race::interleave(addrs.collect()), race::STAGGER, attempt).await {
                Ok(connected) => connected,
                Err(Some(err)) if err.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(DialError::Timeout)
                }
                Err(Some(err)) => return Err(DialError::Unreachable(err)),
                Err(None) => return Err(DialError::Forbidden),
            };
        let mut stream = match &parent.tls {
            None => Upstream::Tcp(tcp),
            Some(tls) => match tokio::time::timeout_at(deadline, tls.connect(tcp)).await {
                Err(_) => return Err(DialError::Timeout),
                Ok(Err(err)) => return Err(DialError::ParentTls(err)),
                Ok(Ok(session)) => Upstream::Tls(Box::new(session)),
            },
        };
        let answer = tokio::time::timeout_at(deadline, parent.handshake(&mut stream, authority));
        match answer.await {
            Err(_) => Err(DialError::Timeout),
            Ok(Err(err)) => Err(DialError::Unreachable(err)),
            Ok(Ok(200..=299)) => Ok(Dialed { stream, addr }),
            Ok(Ok(status @ 400..=499)) => Err(DialError::ParentRefused(status)),
            Ok(Ok(status)) => Err(DialError::Unreachable(std::io::Error::other(format!(
                "the parent proxy answered {status}"
            )))),
        }
    }

    fn is_self(&self, addr: SocketAddr) -> bool {
        self.own_addrs.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip() == addr.ip() || (own.ip().is_unspecified() && addr.ip().is_loopback()))
        })
    }
}

async fn connect(addr: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
