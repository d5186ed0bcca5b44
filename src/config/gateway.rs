//! `gateway.yaml` as written: listeners, TLS files, identity, enforcement, limits, timeouts.
//!
//! Every struct denies unknown keys, because a typo in a gateway setting must fail loudly rather
//! than silently widen or narrow policy. The doc comments double as the settings reference.
//! This module only mirrors the file; turning it into runtime policy is `snapshot::compile`'s job.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// The whole `gateway.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Tenant-facing listeners; an absent listener is off.
    #[serde(default)]
    pub listeners: Listeners,
    /// Admin server (metrics, health, config); absent means no admin server.
    pub admin: Option<AdminListener>,
    /// Serving certificate and tenant CA for `connect_tls`.
    pub tls: Option<TlsFiles>,
    /// How tenants are recognised.
    #[serde(default)]
    pub identity: Identity,
    /// Where the ServiceEntry allowlists live and how they default.
    #[serde(default)]
    pub serviceentries: ServiceEntries,
    /// Enforce or audit, globally and per namespace.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Address classes never dialled after a DNS lookup.
    #[serde(default)]
    pub upstream: Upstream,
    /// DNS resolver settings.
    #[serde(default)]
    pub dns: Dns,
    /// Per-tenant and per-request bounds.
    #[serde(default)]
    pub limits: Limits,
    /// Deadlines for each phase of a connection.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Process runtime settings.
    #[serde(default)]
    pub runtime: Runtime,
    /// The access log on stdout.
    #[serde(default)]
    pub access_log: AccessLogSettings,
    /// Writable folder (relative to `gateway.yaml`; in a pod, an `emptyDir`) where every config
    /// that loaded is copied. When the config is invalid at start-up, the gateway starts from
    /// that last good copy instead of exiting, and says so on `/readyz` and in
    /// `egress_config_last_good_in_use`. Absent: an invalid config at start-up is fatal.
    pub state_dir: Option<PathBuf>,
}

/// The four tenant-facing listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Plaintext HTTP/1.1 CONNECT proxy (plus absolute-form `http://` requests).
    pub connect: Option<PlainListener>,
    /// mTLS listener: HTTP/1.1 and HTTP/2 CONNECT chosen by ALPN; tenant from the SPIFFE ID.
    pub connect_tls: Option<PlainListener>,
    /// Transparent TLS passthrough: the destination is the ClientHello SNI.
    pub sni: Option<TransparentListener>,
    /// Transparent plain HTTP: the destination is each request's Host.
    pub http: Option<TransparentListener>,
}

/// A listener that only needs an address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainListener {
    /// Socket address to bind, e.g. `127.0.0.1:3128`.
    pub address: SocketAddr,
}

/// A transparent listener: the destination port comes from `SO_ORIGINAL_DST` when the
/// connection was redirected, else from `port`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparentListener {
    /// Socket address to bind.
    pub address: SocketAddr,
    /// Destination port assumed when the connection was not redirected.
    pub port: u16,
}

/// The admin server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminListener {
    /// Socket address to bind; keep it off tenant networks.
    pub address: SocketAddr,
}

/// PEM files for the mTLS listener, relative to `gateway.yaml`; watched and reloaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Serving certificate chain.
    pub cert: PathBuf,
    /// Private key of the serving certificate.
    pub key: PathBuf,
    /// CA bundle that tenant client certificates must chain to.
    pub client_ca: PathBuf,
}

/// How tenants are identified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// SPIFFE trust domain accepted in client certificates.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Source prefixes for plaintext listeners; the longest matching prefix names the tenant.
    #[serde(default)]
    pub sources: Vec<SourceRule>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            trust_domain: default_trust_domain(),
            sources: Vec::new(),
        }
    }
}

fn default_trust_domain() -> String {
    "cluster.local".to_owned()
}

/// One source-address rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRule {
    /// Source prefix, e.g. `10.1.0.0/16`.
    pub cidr: IpNet,
    /// Tenant namespace for connections from that prefix.
    pub namespace: String,
}

/// Where ServiceEntry files are read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntries {
    /// Folder (relative to `gateway.yaml`) searched recursively for `*.yaml` / `*.yml`. Symlinks
    /// are followed only while they stay inside this folder (the kubelet's `..data` links do); a
    /// link leading out of it is an error. A file below `<dir>/<namespace>/` may only hold entries
    /// of that namespace; files directly in `<dir>` name theirs in `metadata.namespace`.
    #[serde(default = "default_serviceentries_dir")]
    pub dir: PathBuf,
    /// `exportTo` for entries that do not set it. Istio defaults to `*`; a gateway defaults to
    /// the entry's own namespace so one tenant's entry never opens egress for another.
    #[serde(default = "default_export_to")]
    pub default_export_to: Vec<String>,
}

impl Default for ServiceEntries {
    fn default() -> Self {
        Self {
            dir: default_serviceentries_dir(),
            default_export_to: default_export_to(),
        }
    }
}

fn default_serviceentries_dir() -> PathBuf {
    PathBuf::from("serviceentries")
}

fn default_export_to() -> Vec<String> {
    vec![".".to_owned()]
}

/// Whether a policy deny is enforced or only reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny what the allowlist does not allow.
    #[default]
    Enforce,
    /// Let would-be-denied connections through, but log and count them as `audit`.
    Audit,
}

/// Enforcement settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    /// Mode for namespaces without an override.
    #[serde(default)]
    pub default: Mode,
    /// Per-namespace overrides, e.g. `{app2: audit}`.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Mode>,
    /// In CONNECT tunnels to TLS ports, the ClientHello SNI must name the CONNECT host.
    #[serde(default = "yes")]
    pub require_sni_match: bool,
}

impl Default for Enforcement {
    fn default() -> Self {
        Self {
            default: Mode::Enforce,
            namespaces: BTreeMap::new(),
            require_sni_match: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// Upstream address classes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Prefixes added to the built-in deny list for DNS-resolved addresses.
    #[serde(default)]
    pub deny_cidrs: Vec<IpNet>,
    /// Holes punched in the deny list, for operators who mean it.
    #[serde(default)]
    pub allow_cidrs: Vec<IpNet>,
    /// A parent proxy every namespace's connections go through, for networks whose only way out
    /// is a corporate proxy; absent means dialling destinations directly.
    #[serde(default)]
    pub proxy: Option<ParentProxy>,
    /// Per-namespace routes that replace `proxy`: another parent, or `direct`.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceUpstream>,
    /// Idle upstream connections kept for forwarded HTTP/1.1 requests.
    #[serde(default)]
    pub pool: UpstreamPool,
}

/// Keep-alive for forwarded HTTP/1.1: an idle upstream connection serves the same tenant's next
/// request to the same destination. Never shared across tenants; `max_idle: 0` turns it off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPool {
    /// Idle connections kept per tenant and destination.
    #[serde(default = "default_pool_per_upstream")]
    pub max_idle_per_upstream: usize,
    /// Idle connections kept in all (per replica).
    #[serde(default = "default_pool_max_idle")]
    pub max_idle: usize,
    /// An idle connection unused this long is closed.
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        Self {
            max_idle_per_upstream: default_pool_per_upstream(),
            max_idle: default_pool_max_idle(),
            idle_timeout: default_pool_idle_timeout(),
        }
    }
}

fn default_pool_per_upstream() -> usize {
    32
}

fn default_pool_max_idle() -> usize {
    1024
}

fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

/// A parent proxy reached with `CONNECT host:port` once the gateway has decided.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentProxy {
    /// `host:port` of the parent (plaintext HTTP/1.1). A name is resolved with the gateway's
    /// resolver, and only the parent's own addresses are exempt from the deny list.
    pub address: String,
    /// A file holding `user:password` for Basic `Proxy-Authorization`, relative to
    /// `gateway.yaml`; read at start-up and on every reload, never logged.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Speak TLS to the parent (its certificate verified against `ca_file`) instead of
    /// plaintext, so credentials and destinations never cross the network in the clear.
    #[serde(default)]
    pub tls: Option<ParentProxyTls>,
}

/// How the parent proxy's TLS certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentProxyTls {
    /// PEM bundle of the CA certificates the parent's chain must lead to, relative to
    /// `gateway.yaml`; read at start-up and on every reload.
    pub ca_file: PathBuf,
    /// The name (or IP) the parent's certificate must carry; the host of `address` by default.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// One namespace's route to the world when it differs from `upstream.proxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceUpstream {
    /// The namespace's own parent proxy.
    #[serde(default)]
    pub proxy: Option<ParentProxy>,
    /// Dial this namespace's destinations directly even though `upstream.proxy` is set.
    #[serde(default)]
    pub direct: bool,
}

/// DNS settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Name servers as `ip:port`; empty means the system configuration (`/etc/resolv.conf`).
    #[serde(default)]
    pub servers: Vec<SocketAddr>,
}

/// Bounds that keep one tenant or one request from exhausting the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections (and HTTP/2 streams) per tenant namespace.
    #[serde(default = "default_max_connections")]
    pub max_connections_per_namespace: usize,
    /// Per-namespace overrides of `max_connections_per_namespace`.
    #[serde(default)]
    pub namespaces: BTreeMap<String, usize>,
    /// Concurrent HTTP/2 CONNECT streams on one connection.
    #[serde(default = "default_max_streams")]
    pub max_streams_per_connection: u32,
    /// Largest request head (request line plus headers) accepted.
    #[serde(default = "default_head_bytes")]
    pub max_request_head_bytes: usize,
    /// Largest ClientHello accepted while sniffing SNI.
    #[serde(default = "default_head_bytes")]
    pub max_client_hello_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections_per_namespace: default_max_connections(),
            namespaces: BTreeMap::new(),
            max_streams_per_connection: default_max_streams(),
            max_request_head_bytes: default_head_bytes(),
            max_client_hello_bytes: default_head_bytes(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}

fn default_max_streams() -> u32 {
    256
}

fn default_head_bytes() -> usize {
    16 * 1024
}

/// Deadlines, written as `10s`, `5s`, `1h`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Time a client has to send its request head or ClientHello.
    #[serde(default = "default_sniff", with = "humantime_serde")]
    pub sniff: Duration,
    /// Time to establish the upstream TCP connection (DNS included).
    #[serde(default = "default_connect", with = "humantime_serde")]
    pub connect: Duration,
    /// A tunnel with no bytes either way for this long is closed.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle: Duration,
    /// On SIGTERM, how long open tunnels may run before they are closed.
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            sniff: default_sniff(),
            connect: default_connect(),
            idle: default_idle(),
            drain: default_drain(),
        }
    }
}

fn default_sniff() -> Duration {
    Duration::from_secs(10)
}

fn default_connect() -> Duration {
    Duration::from_secs(5)
}

fn default_idle() -> Duration {
    Duration::from_secs(3600)
}

fn default_drain() -> Duration {
    Duration::from_secs(30)
}

/// The access log on stdout; read at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    /// Most lines queued for stdout at once. When stdout blocks (a log shipper that stalls) and
    /// this many lines wait, further lines are dropped and counted in
    /// `egress_access_log_dropped_total` instead of holding up connections or growing memory.
    #[serde(default = "default_buffer_lines")]
    pub buffer_lines: NonZeroUsize,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            buffer_lines: default_buffer_lines(),
        }
    }
}

fn default_buffer_lines() -> NonZeroUsize {
    NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN)
}

/// Process runtime settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Tokio worker threads; absent means one per CPU.
    pub worker_threads: Option<usize>,
    /// Plain TCP tunnels move bytes with `splice(2)` (no userspace copy, no buffer while idle);
    /// `false` selects the portable userspace copy, e.g. to compare the two.
    #[serde(default = "yes")]
    pub zero_copy: bool,
    /// After each wake-up a worker keeps polling for events this long before it sleeps again:
    /// lower latency on virtual machines for up to one core per worker while traffic flows or
    /// tunnels are open (`0s`, the default, is off). Read at start, like `worker_threads`.
    #[serde(default, with = "humantime_serde")]
    pub busy_poll: Duration,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            worker_threads: None,
            zero_copy: true,
            busy_poll: Duration::ZERO,
        }
    }
}
