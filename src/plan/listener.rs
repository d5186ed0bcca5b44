//! The gateway's front ends as a type: every metric label, access-log field and config key that
//! names a listener comes from [`Listener`], so no front end can invent a spelling.

use std::fmt;

/// One kind of listener; what a connection arrived on decides how it is identified and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Plaintext HTTP/1.1 `CONNECT` and absolute-form `http://` requests; tenant by source address.
    Connect,
    /// mTLS: HTTP/1.1 or HTTP/2 `CONNECT` (and absolute-form) by ALPN; tenant by certificate.
    ConnectTls,
    /// Transparent TLS: the destination is the ClientHello's SNI; tenant by source address.
    Sni,
    /// Transparent plain HTTP: each request's Host; tenant by source address.
    Http,
}

impl Listener {
    /// Every listener, in the order metric handle tables use.
    pub const ALL: [Listener; 4] = [Self::Connect, Self::ConnectTls, Self::Sni, Self::Http];

    /// The `listener` label value, access-log value and `listeners.<key>` config key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ConnectTls => "connect_tls",
            Self::Sni => "sni",
            Self::Http => "http",
        }
    }

    /// Position in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether tenants on this listener are named by a client certificate rather than their
    /// source address.
    pub const fn identifies_by_certificate(self) -> bool {
        matches!(self, Self::ConnectTls)
    }

    /// Whether denies are TLS alerts (the client speaks TLS to its destination) rather than HTTP
    /// answers.
    pub const fn answers_with_alerts(self) -> bool {
        matches!(self, Self::Sni)
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Listener {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
                format!("unknown listener {raw:?}: one of {}", names.join(", "))
            })
    }
}
