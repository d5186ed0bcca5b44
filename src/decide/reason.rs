//! The closed set of reasons a connection does not go out, shared by every stage and used as a
//! metric label. Adding a variant is a contract change (docs/deny-reasons.md).

use std::fmt;

/// Why a connection was denied (or, in audit mode, would have been).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No namespace could be derived from the peer (source address or certificate).
    UnknownTenant,
    /// No ServiceEntry visible to the tenant names the host.
    NotAllowlisted,
    /// The host is allowlisted, but not on this port.
    PortNotAllowed,
    /// The ClientHello in a CONNECT tunnel names a different host than the CONNECT.
    SniMismatch,
    /// A TLS destination without SNI, so the host cannot be checked.
    MissingSni,
    /// Every address the name resolved to is on the deny list (loopback, private, metadata...).
    ForbiddenAddress,
    /// The name did not resolve.
    DnsFailure,
    /// The upstream refused or reset the connection.
    UpstreamUnreachable,
    /// The upstream did not answer within `timeouts.connect`.
    UpstreamTimeout,
    /// The tenant is at its concurrent connection limit.
    TenantConnectionLimit,
    /// The request could not be parsed or broke a protocol rule.
    MalformedRequest,
    /// The client did not send its request head or ClientHello within `timeouts.sniff`.
    SniffTimeout,
    /// A request inside a CONNECT tunnel to an HTTP port names another host than the CONNECT.
    HostMismatch,
    /// The ClientHello carries Encrypted Client Hello: its SNI is only the public name of a front
    /// that may serve any host, so the real destination cannot be checked.
    EncryptedClientHello,
    /// The parent proxy (`upstream.proxy`) refused the `CONNECT` (a 4xx answer): its own policy,
    /// or credentials it did not accept.
    ParentRefused,
}

impl DenyReason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [DenyReason; 15] = [
        Self::UnknownTenant,
        Self::NotAllowlisted,
        Self::PortNotAllowed,
        Self::SniMismatch,
        Self::MissingSni,
        Self::ForbiddenAddress,
        Self::DnsFailure,
        Self::UpstreamUnreachable,
        Self::UpstreamTimeout,
        Self::TenantConnectionLimit,
        Self::MalformedRequest,
        Self::SniffTimeout,
        Self::HostMismatch,
        Self::EncryptedClientHello,
        Self::ParentRefused,
    ];

    /// Position in [`Self::ALL`], for tables indexed by reason.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The label value and `X-Egress-Deny-Reason` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownTenant => "unknown_tenant",
            Self::NotAllowlisted => "not_allowlisted",
            Self::PortNotAllowed => "port_not_allowed",
            Self::SniMismatch => "sni_mismatch",
            Self::MissingSni => "missing_sni",
            Self::ForbiddenAddress => "forbidden_address",
            Self::DnsFailure => "dns_failure",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::TenantConnectionLimit => "tenant_connection_limit",
            Self::MalformedRequest => "malformed_request",
            Self::SniffTimeout => "sniff_timeout",
            Self::HostMismatch => "host_mismatch",
            Self::EncryptedClientHello => "encrypted_client_hello",
            Self::ParentRefused => "parent_refused",
        }
    }

    /// Allowlist reasons, the only ones audit mode relaxes; the address deny list, identity and
    /// limits always hold.
    pub const fn is_allowlist(self) -> bool {
        matches!(
            self,
            Self::NotAllowlisted
                | Self::PortNotAllowed
                | Self::SniMismatch
                | Self::MissingSni
                | Self::HostMismatch
                | Self::EncryptedClientHello
        )
    }

    /// The HTTP status a CONNECT client gets (docs/deny-reasons.md).
    pub const fn http_status(self) -> u16 {
        match self {
            Self::MalformedRequest => 400,
            Self::TenantConnectionLimit => 429,
            Self::DnsFailure | Self::UpstreamUnreachable => 502,
            Self::UpstreamTimeout => 504,
            Self::SniffTimeout => 408,
            _ => 403,
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
