//! Validated names the rest of the gateway trades in: hostnames, host patterns, namespaces and
//! the `Target` a tenant asks for.
//!
//! Everything here is pure and allocation-light. A name that reaches policy has already been
//! normalised (lowercase, one trailing dot stripped) and validated, so matching is plain string
//! comparison. This module must not know about config files, sockets or metrics.

use std::fmt;
use std::net::IpAddr;

/// Longest DNS name we accept (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Why a string is not an acceptable hostname; each variant is one rule a user can fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty (or only a dot).
    #[error("empty host name")]
    Empty,
    /// Longer than DNS allows.
    #[error("host name longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// A byte outside letters, digits, `-` and `.` (includes any non-ASCII byte).
    #[error("host name contains {0:?}: only ASCII letters, digits, '-' and '.' are allowed")]
    BadCharacter(char),
    /// An empty label (`a..b`, leading dot) or one longer than 63 bytes.
    #[error("host name has an empty label or a label longer than {MAX_LABEL_LEN} characters")]
    BadLabel,
    /// A label starting or ending with `-`.
    #[error("host name label starts or ends with '-'")]
    HyphenEdge,
    /// `*` somewhere other than a whole leftmost label.
    #[error("wildcards are allowed only as the whole leftmost label (did you mean `*.{0}`?)")]
    PartialWildcard(String),
    /// The last label is a number (`127.1`, `2130706433`, `0x7f.1`): an IP address in a spelling
    /// resolvers and libraries read differently, never a host name (RFC 3696 §2).
    #[error(
        "the last label is all digits (or 0x-hex), which is an IP address, not a host name: \
         write IP addresses in dotted-quad or IPv6 form"
    )]
    NumericName,
    /// A bare `*`, which would match every destination.
    #[error("a bare '*' host would allow every destination; list the domains instead")]
    BareWildcard,
}

/// A normalised DNS name a tenant may ask for: lowercase ASCII, no trailing dot, valid labels.
///
/// Construction is the only validation point, so holders never re-check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(Box<str>);

impl Hostname {
    /// Normalises and validates `raw` (case folded, one trailing dot removed).
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = strip_trailing_dot(raw);
        validate_dns_name(name)?;
        Ok(Self(name.to_ascii_lowercase().into_boxed_str()))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host as written in a ServiceEntry: an exact name or `*.suffix` (Istio semantics: the wildcard
/// matches one or more labels in front of `suffix`, never `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches exactly this name.
    Exact(Hostname),
    /// Matches names ending in `.suffix`; holds `suffix` without the leading `*.`.
    Wildcard(Hostname),
}

impl HostPattern {
    /// Parses an allowlist host, applying istiod's rules (no bare `*`, no partial wildcards).
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = strip_trailing_dot(raw);
        if name == "*" {
            return Err(NameError::BareWildcard);
        }
        if let Some(suffix) = name.strip_prefix("*.") {
            return Ok(Self::Wildcard(Hostname::parse(suffix)?));
        }
        if let Some(rest) = name.strip_prefix('*') {
            return Err(NameError::PartialWildcard(
                rest.trim_start_matches('.').to_owned(),
            ));
        }
        Ok(Self::Exact(Hostname::parse(name)?))
    }

    /// Whether this pattern matches `host`.
    pub fn matches(&self, host: &Hostname) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Wildcard(suffix) => wildcard_covers(suffix.as_str(), host.as_str()),
        }
    }

    /// Whether this is a `*.suffix` pattern.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Self::Wildcard(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => write!(f, "{name}"),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// True when `host` ends in `.suffix` with at least one label before it.
fn wildcard_covers(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// A tenant: a Kubernetes namespace name (RFC 1123 label).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Box<str>);

impl Namespace {
    /// The label used for connections whose tenant could not be identified.
    pub const UNKNOWN: &'static str = "unknown";

    /// Validates a namespace name (lowercase RFC 1123 label, at most 63 characters).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_LABEL_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if valid {
            Ok(Self(raw.into()))
        } else {
            Err(format!(
                "{raw:?} is not a valid namespace name (lowercase letters, digits and '-', at most 63)"
            ))
        }
    }

    /// The namespace name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host part of a destination: a DNS name or an IP literal (never both).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, matched against the allowlist's hosts.
    Name(Hostname),
    /// An IP literal, matched only against entries' `addresses`.
    Ip(IpAddr),
}

impl Host {
    /// Recognises IP literals (IPv6 with or without brackets; brackets hold IPv6 only, as in a
    /// URI) and otherwise parses a hostname.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let inner = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        match (inner.unwrap_or(raw).parse::<IpAddr>(), inner.is_some()) {
            (Ok(ip @ IpAddr::V6(_)), _) | (Ok(ip @ IpAddr::V4(_)), false) => Ok(Self::Ip(ip)),
            _ => Hostname::parse(raw).map(Self::Name),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => write!(f, "{name}"),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Where a tenant wants to go: host and port, already normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Destination host.
    pub host: Host,
    /// Destination port (1–65535).
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            host => write!(f, "{host}:{}", self.port),
        }
    }
}

fn strip_trailing_dot(raw: &str) -> &str {
    raw.strip_suffix('.').unwrap_or(raw)
}

/// Checks LDH rules on an already dot-stripped name without allocating.
fn validate_dns_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        if bad == '*' {
            return Err(NameError::PartialWildcard(
                name.trim_start_matches(['*', '.']).to_owned(),
            ));
        }
        return Err(NameError::BadCharacter(bad));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(NameError::BadLabel);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(NameError::HyphenEdge);
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_numeric_label(last) {
        return Err(NameError::NumericName);
    }
    Ok(())
}

/// Decimal, or `0x` hexadecimal: what `inet_aton` would read as (part of) an address.
fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_normalised() {
        assert_eq!(
            Hostname::parse("API.GitHub.com.").unwrap().as_str(),
            "api.github.com"
        );
        assert_eq!(
            Hostname::parse("a-b.example").unwrap().as_str(),
            "a-b.example"
        );
    }

    #[test]
    fn invalid_hostnames_are_refused_with_their_rule() {
        assert_eq!(Hostname::parse(""), Err(NameError::Empty));
        assert_eq!(Hostname::parse("."), Err(NameError::Empty));
        assert_eq!(Hostname::parse("a..b"), Err(NameError::BadLabel));
        assert_eq!(Hostname::parse("-"), Err(NameError::HyphenEdge));
        assert_eq!(
            Hostname::parse("bücher.de"),
            Err(NameError::BadCharacter('ü'))
        );
        assert_eq!(Hostname::parse("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(Hostname::parse(&"a".repeat(64)), Err(NameError::BadLabel));
        assert_eq!(Hostname::parse(&"a.".repeat(130)), Err(NameError::TooLong));
        for spelling in [
            "127.1",
            "2130706433",
            "0x7f.1",
            "0x7F000001",
            "203.0.113.7",
            "a.0x",
        ] {
            assert_eq!(
                Hostname::parse(spelling),
                Err(NameError::NumericName),
                "{spelling}"
            );
        }
        assert!(Hostname::parse("0xcafe.example").is_ok());
        assert!(Hostname::parse("1password.com").is_ok());
    }

    #[test]
    fn wildcards_follow_istio_semantics() {
        let pattern = HostPattern::parse("*.Example.com").unwrap();
        let host = |s| Hostname::parse(s).unwrap();
        assert!(pattern.matches(&host("a.example.com")));
        assert!(pattern.matches(&host("a.b.example.com")));
        assert!(!pattern.matches(&host("example.com")));
        assert!(!pattern.matches(&host("badexample.com")));
        assert_eq!(HostPattern::parse("*"), Err(NameError::BareWildcard));
        assert!(matches!(
            HostPattern::parse("*example.com"),
            Err(NameError::PartialWildcard(s)) if s == "example.com"
        ));
        assert!(matches!(
            HostPattern::parse("a.*.com"),
            Err(NameError::PartialWildcard(_))
        ));
    }

    #[test]
    fn hosts_recognise_ip_literals() {
        assert_eq!(
            Host::parse("10.0.0.1").unwrap(),
            Host::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        let target = Target {
            host: Host::parse("::1").unwrap(),
            port: 443,
        };
        assert_eq!(target.to_string(), "[::1]:443");
        // Brackets hold IPv6 only: `[192.0.2.10]` is neither an address nor a name.
        assert!(Host::parse("[192.0.2.10]").is_err());
        assert!(Host::parse("[allowed.test]").is_err());
    }

    #[test]
    fn namespaces_are_rfc1123_labels() {
        assert!(Namespace::parse("app-1").is_ok());
        assert!(Namespace::parse("App").is_err());
        assert!(Namespace::parse("").is_err());
        assert!(Namespace::parse("-a").is_err());
    }
}
