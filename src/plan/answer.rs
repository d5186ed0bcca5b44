//! What a tenant is told when the plan refuses it: an HTTP status on proxy listeners and inside
//! HTTP tunnels, a TLS alert where the tenant speaks TLS to its destination.

use crate::decide::DenyReason;

/// TLS alert descriptions the gateway sends (RFC 8446 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// `access_denied` (49): policy refused the destination.
    AccessDenied = 49,
    /// `unrecognized_name` (112): no SNI to decide on.
    UnrecognizedName = 112,
    /// `internal_error` (80): the gateway could not reach the destination.
    InternalError = 80,
}

impl Alert {
    /// The alert that fits a deny reason.
    pub fn for_reason(reason: DenyReason) -> Self {
        match reason {
            DenyReason::MissingSni => Self::UnrecognizedName,
            DenyReason::DnsFailure
            | DenyReason::UpstreamUnreachable
            | DenyReason::UpstreamTimeout => Self::InternalError,
            _ => Self::AccessDenied,
        }
    }

    /// A fatal alert record (TLS 1.2 record version, as servers send before a version is agreed).
    pub fn record(self) -> [u8; 7] {
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, self as u8]
    }
}

/// How a refusal reaches the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An HTTP answer with this status and `X-Egress-Deny-Reason`.
    Status(u16),
    /// A fatal TLS alert, then close.
    Alert(Alert),
}

impl Refusal {
    /// The refusal of `reason` for a tenant that speaks HTTP to the gateway (`alerts` false) or
    /// TLS to its destination (`alerts` true).
    pub fn of(reason: DenyReason, alerts: bool) -> Self {
        if alerts {
            Self::Alert(Alert::for_reason(reason))
        } else {
            Self::Status(reason.http_status())
        }
    }
}
