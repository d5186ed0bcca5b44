//! Who a connection belongs to, decided once when it is accepted and carried unchanged through
//! every request and stream on it.
//!
//! [`Tenant`] can only be made by [`identify`]: no code below the accept step can name another
//! tenant for a connection, whatever a request on it says.

use std::net::IpAddr;

use super::listener::Listener;
use crate::identify::{spiffe_namespace, Presented};
use crate::names::Namespace;
use crate::snapshot::Snapshot;

/// The tenant of one connection and the identity it presented, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    namespace: Option<Namespace>,
    identity: Box<str>,
}

impl Tenant {
    /// The namespace, or `None` when the presented identity names no tenant.
    pub fn namespace(&self) -> Option<&Namespace> {
        self.namespace.as_ref()
    }

    /// The SPIFFE ID or source address presented (or why a certificate named nobody), for the
    /// access log's `identity` field.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// A tenant taken on trust, for `explain --namespace`, which asks what a workload of that
    /// namespace would get without presenting anything.
    pub fn assumed(namespace: Namespace) -> Self {
        Self {
            identity: format!("namespace {namespace}").into(),
            namespace: Some(namespace),
        }
    }
}

/// Names the tenant of a connection accepted on `listener` from what it presented: the
/// certificate on certificate listeners, the source address everywhere else. A certificate on a
/// source-address listener, or a source address on a certificate listener, names nobody.
pub fn identify(snapshot: &Snapshot, listener: Listener, presented: &Presented) -> Tenant {
    match (listener.identifies_by_certificate(), presented) {
        (false, Presented::SourceAddress(ip)) => by_source(snapshot, *ip),
        (true, Presented::Certificate { uri_sans }) => by_certificate(snapshot, uri_sans),
        (_, Presented::SourceAddress(ip)) => Tenant {
            namespace: None,
            identity: ip.to_string().into(),
        },
        (_, Presented::Certificate { .. }) => Tenant {
            namespace: None,
            identity: "certificate-on-plaintext-listener".into(),
        },
    }
}

fn by_source(snapshot: &Snapshot, ip: IpAddr) -> Tenant {
    Tenant {
        namespace: snapshot.tenants.namespace_of(ip).cloned(),
        identity: ip.to_string().into(),
    }
}

/// An X.509-SVID carries exactly one URI SAN; anything else names no tenant.
fn by_certificate(snapshot: &Snapshot, uri_sans: &[String]) -> Tenant {
    match uri_sans {
        [] => Tenant {
            namespace: None,
            identity: "no-spiffe-id".into(),
        },
        [only] => Tenant {
            namespace: spiffe_namespace(only, &snapshot.trust_domain),
            identity: only.as_str().into(),
        },
        [..] => Tenant {
            namespace: None,
            identity: "several-uri-sans".into(),
        },
    }
}
