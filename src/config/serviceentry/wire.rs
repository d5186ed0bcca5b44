//! The serde mirror of an Istio `networking.istio.io` ServiceEntry (v1, v1beta1, v1alpha3 share
//! the schema), field for field. Spec structs deny unknown keys so a typo cannot silently change
//! policy; `metadata` accepts every Kubernetes key because it is not policy.
//!
//! These types only describe the YAML; they carry no validation (see `validate/`) and never reach
//! the hot path.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::names::Namespace;

/// A ServiceEntry document: one allowlist entry owned by a namespace (the tenant).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntry {
    /// `networking.istio.io/v1`, `/v1beta1` or `/v1alpha3`; all three mean the same schema here.
    pub api_version: String,
    /// Always `ServiceEntry` (the loader dispatches on it before deserializing).
    pub kind: String,
    /// Name and owning namespace; everything else in it is accepted and ignored.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// What the entry allows. Missing is a validation error, not a parse error, so it is reported
    /// with the rule it breaks.
    #[serde(default)]
    pub spec: Option<ServiceEntrySpec>,
    /// Kubernetes status as printed by `kubectl get -o yaml`; ignored.
    #[serde(default)]
    pub status: Option<serde_yaml::Value>,
}

impl ServiceEntry {
    /// `namespace/name` as written (either part may be empty), for messages.
    pub fn display_name(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or(""),
            self.metadata.name.as_deref().unwrap_or("")
        )
    }
}

/// Kubernetes object metadata. Only `name`, `namespace`, `labels` and the `egress-gateway.io/*`
/// annotations (read from `rest` by [`super::EntryAnnotations`]) mean anything to the gateway;
/// every other key (`uid`, `resourceVersion`, `managedFields`, ...) is kept in `rest` and ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The entry's name; required and unique per namespace. Appears in decisions and access logs.
    #[serde(default)]
    pub name: Option<String>,
    /// The tenant that owns the entry. When absent, the loader uses the entry's top folder under
    /// `serviceentries/`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object labels. Only `istio.io/use-waypoint` is looked at (by the `DYNAMIC_DNS` rules).
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Every other metadata key, accepted and ignored.
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_yaml::Value>,
}

/// The `spec` of a ServiceEntry: which hosts and ports a namespace may reach, and how the gateway
/// finds the upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// Destination names the tenant may ask for: FQDNs or `*.suffix` wildcards (matching any name
    /// ending in `.suffix`, not `suffix` itself). Case-insensitive; one trailing dot ignored.
    /// Required.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hosts: Vec<String>,
    /// IPs or CIDRs the entry also covers; a CONNECT to an IP literal is allowed only through
    /// these. CIDRs need resolution `NONE` or `STATIC`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    /// Ports allowed for these hosts. The protocol decides what the gateway inspects: SNI on
    /// TLS/HTTPS, the Host header on HTTP, nothing on TCP. A `null` element is an error.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<Option<ServicePort>>,
    /// Inside or outside the mesh; informative only. Absent means `MESH_EXTERNAL`.
    #[serde(default)]
    pub location: Option<Location>,
    /// How the gateway finds the upstream address. Absent means `NONE`.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// Upstreams to dial instead of the requested host (`STATIC`: IPs, `DNS`: names or IPs). A
    /// `null` element is an error.
    #[serde(default, deserialize_with = "null_as_default")]
    pub endpoints: Vec<Option<WorkloadEntry>>,
    /// Istio selects in-mesh workloads with this; accepted and ignored by the egress gateway.
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces that may use the entry: `.` (its own), `*` (all), `~` (none) or namespace names.
    /// Absent means the gateway's `default_export_to`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub export_to: Vec<String>,
    /// Istio verifies upstream certificates against these; accepted and ignored by the egress
    /// gateway, which never terminates upstream TLS.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subject_alt_names: Vec<String>,
}

impl ServiceEntrySpec {
    /// The resolution with Istio's default (`NONE`) applied.
    pub fn resolution(&self) -> Resolution {
        self.resolution.unwrap_or(Resolution::None)
    }

    /// The location with Istio's default (`MESH_EXTERNAL`) applied.
    pub fn location(&self) -> Location {
        self.location.unwrap_or(Location::MeshExternal)
    }
}

/// One allowed port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    /// The port clients connect to (1-65535). Parsed as `u32` so an out-of-range value is reported
    /// with its rule rather than as a parse error.
    pub number: u32,
    /// The application protocol, case-insensitive (see [`Protocol`]). Absent means TCP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// A DNS label naming the port, unique in the entry; endpoints' `ports` maps refer to it.
    #[serde(default)]
    pub name: Option<String>,
    /// The upstream port to dial instead of `number` (1-65535); no effect with resolution `NONE`.
    #[serde(default)]
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// The port's protocol parsed the way Istio does (case-insensitive, absent or empty = TCP), or
    /// the unrecognized string.
    pub fn protocol(&self) -> Result<Protocol, &str> {
        match self.protocol.as_deref() {
            None | Some("") => Ok(Protocol::Tcp),
            Some(raw) => Protocol::parse(raw).ok_or(raw),
        }
    }
}

/// An upstream endpoint (Istio `WorkloadEntry`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// What to dial: an IP (`STATIC`), a resolvable name or IP (`DNS`), or `unix:///abs/path`
    /// (`STATIC` only).
    #[serde(default)]
    pub address: Option<String>,
    /// Per-port override: spec port name -> upstream port number for this endpoint.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels; validated as Kubernetes labels, otherwise ignored.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Istio network of the endpoint; ignored by the gateway.
    #[serde(default)]
    pub network: Option<String>,
    /// Istio locality (`region/zone/subzone`); ignored by the gateway.
    #[serde(default)]
    pub locality: Option<String>,
    /// Load-balancing weight; ignored by the gateway.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Istio service account of the endpoint; ignored by the gateway.
    #[serde(default)]
    pub service_account: Option<String>,
}

/// Istio's in-mesh workload selector; accepted and ignored by the egress gateway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Label key -> exact value of the selected workloads.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `spec.location`: whether the service is part of the mesh. Informative for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Location {
    /// Outside the mesh (the default).
    #[serde(rename = "MESH_EXTERNAL")]
    MeshExternal,
    /// Inside the mesh.
    #[serde(rename = "MESH_INTERNAL")]
    MeshInternal,
}

/// `spec.resolution`: how the gateway finds the upstream address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Resolution {
    /// Dial the host the client asked for, resolved by the gateway and deny-list checked (the
    /// default; what Istio requires for wildcard hosts without endpoints).
    #[serde(rename = "NONE")]
    None,
    /// Dial `endpoints[].address` (IPs, trusted).
    #[serde(rename = "STATIC")]
    Static,
    /// Resolve the host (or the endpoints' names) and dial any answer, deny-list checked.
    #[serde(rename = "DNS")]
    Dns,
    /// Like `DNS`, with at most one endpoint.
    #[serde(rename = "DNS_ROUND_ROBIN")]
    DnsRoundRobin,
    /// Resolve the requested name under a wildcard host at request time.
    #[serde(rename = "DYNAMIC_DNS")]
    DynamicDns,
}

impl Resolution {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Static => "STATIC",
            Self::Dns => "DNS",
            Self::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Self::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port protocol as Istio names it (parsed case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (Host header checked).
    Http,
    /// TLS carrying HTTP (SNI checked).
    Https,
    /// gRPC over HTTP/2 (Host/authority checked).
    Grpc,
    /// gRPC-Web (Host checked).
    GrpcWeb,
    /// Cleartext HTTP/2 (authority checked).
    Http2,
    /// HTTP proxy protocol (Host checked).
    HttpProxy,
    /// MongoDB wire protocol (opaque TCP).
    Mongo,
    /// MySQL wire protocol (opaque TCP).
    Mysql,
    /// Redis protocol (opaque TCP).
    Redis,
    /// Opaque TCP (the default when no protocol is given).
    Tcp,
    /// TLS of any payload (SNI checked).
    Tls,
    /// UDP; not proxied by the egress gateway.
    Udp,
}

/// What the gateway can check on a port's traffic to be sure it goes to an allowed host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Inspection {
    /// The TLS ClientHello's SNI must name an allowed host.
    Sni,
    /// The HTTP Host header (or `:authority`) must name an allowed host.
    HostHeader,
    /// Nothing: only the CONNECT target (or the address) is checked.
    None,
}

impl Protocol {
    /// Every protocol, in the order messages list them.
    pub const ALL: [Protocol; 12] = [
        Self::Http,
        Self::Https,
        Self::Grpc,
        Self::GrpcWeb,
        Self::Http2,
        Self::HttpProxy,
        Self::Mongo,
        Self::Mysql,
        Self::Redis,
        Self::Tcp,
        Self::Tls,
        Self::Udp,
    ];

    /// Parses a protocol name case-insensitively, as Istio's `protocol.Parse` does; `None` for a
    /// name Istio does not know.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(raw))
    }

    /// The canonical (upper-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Grpc => "GRPC",
            Self::GrpcWeb => "GRPC-WEB",
            Self::Http2 => "HTTP2",
            Self::HttpProxy => "HTTP_PROXY",
            Self::Mongo => "MONGO",
            Self::Mysql => "MYSQL",
            Self::Redis => "REDIS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Udp => "UDP",
        }
    }

    /// What the gateway checks on this port.
    pub fn inspection(self) -> Inspection {
        match self {
            Self::Https | Self::Tls => Inspection::Sni,
            Self::Http | Self::Http2 | Self::Grpc | Self::GrpcWeb | Self::HttpProxy => {
                Inspection::HostHeader
            }
            Self::Tcp | Self::Mongo | Self::Mysql | Self::Redis | Self::Udp => Inspection::None,
        }
    }

    /// Istio's `IsHTTP`: the host is known from each request.
    pub fn is_http(self) -> bool {
        self.inspection() == Inspection::HostHeader
    }

    /// Istio's `IsTLS`: the host is known from the SNI.
    pub fn is_tls(self) -> bool {
        self.inspection() == Inspection::Sni
    }

    /// Istio's `IsTCP`: served by a TCP (not HTTP) listener, TLS included.
    pub fn is_tcp(self) -> bool {
        !self.is_http() && self != Self::Udp
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `spec.exportTo` value: which namespaces may use the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExportTo {
    /// `.`: only the entry's own namespace.
    OwnNamespace,
    /// `*`: every namespace.
    All,
    /// `~`: no namespace (Istio: only the service's own proxies); no tenant may use the entry.
    Nobody,
    /// A namespace name.
    Namespace(Namespace),
}

impl ExportTo {
    /// Parses one `exportTo` value; the error says what is accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "." => Ok(Self::OwnNamespace),
            "*" => Ok(Self::All),
            "~" => Ok(Self::Nobody),
            other => Namespace::parse(other).map(Self::Namespace).map_err(|_| {
                format!(
                    "exportTo value {other:?} is not `.`, `*`, `~` or a namespace name \
                     (lowercase letters, digits and '-', at most 63)"
                )
            }),
        }
    }
}

/// Treats an explicit YAML `null` like an absent key (Kubernetes does).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
