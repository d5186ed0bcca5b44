//! Name resolution behind a small trait, so tests and the load tool can map names to local
//! servers, and production uses hickory's async resolver with its cache.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use crate::names::Hostname;

/// A boxed lookup future, so resolvers can be trait objects.
pub type Lookup<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, ResolveFailure>> + Send + 'a>>;

/// The name did not resolve (NXDOMAIN, no records, server failure or timeout).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ResolveFailure(pub String);

/// Something that turns a hostname into addresses.
pub trait Resolve: Send + Sync {
    /// All addresses of `name`, in preference order.
    fn lookup<'a>(&'a self, name: &'a Hostname) -> Lookup<'a>;
}

/// hickory's caching resolver.
pub struct DnsResolver {
    inner: TokioResolver,
}

impl DnsResolver {
    /// Uses `servers` (UDP then TCP) when given, else the system configuration; answers are
    /// cached per record TTL.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Self, String> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
        } else {
            let mut config = ResolverConfig::new();
            for server in servers {
                config.add_name_server(NameServerConfig::new(*server, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*server, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 2;
        // A and AAAA, asked at once: the dialler races both families (RFC 8305). Where IPv6 has
        // no route, its attempt fails at once and the IPv4 one starts without waiting.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.use_hosts_file = ResolveHosts::Always;
        options.cache_size = 4096;
        Ok(Self {
            inner: builder.build(),
        })
    }
}

impl Resolve for DnsResolver {
    fn lookup<'a>(&'a self, name: &'a Hostname) -> Lookup<'a> {
        Box::pin(async move {
            // Absolute name: tenants' egress names are public, never search-domain relative.
            let absolute = format!("{name}.");
            match self.inner.lookup_ip(absolute.as_str()).await {
                Ok(answer) => {
                    let addrs: Vec<IpAddr> = answer.iter().collect();
                    if addrs.is_empty() {
                        Err(ResolveFailure(format!("{name}: no addresses")))
                    } else {
                        Ok(addrs)
                    }
                }
                Err(err) => Err(ResolveFailure(format!("{name}: {err}"))),
            }
        })
    }
}
