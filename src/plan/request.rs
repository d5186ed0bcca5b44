//! The HTTP request rules, written once: which destination a forwarded request names (http
//! listener and absolute-form), the `Host` the upstream receives, and what a request inside a
//! CONNECT tunnel to an HTTP port may name.

use crate::decide::DenyReason;
use crate::names::{Host, Target};
use crate::sniff::connect_head::parse_authority;

/// What the planner needs from a parsed HTTP/1.1 request head.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    /// The request-target's scheme (absolute-form only).
    pub scheme: Option<&'a str>,
    /// The request-target's authority (absolute-form only).
    pub authority: Option<&'a str>,
    /// The first `Host` header, when it is valid text.
    pub host: Option<&'a str>,
    /// How many `Host` headers the request carries.
    pub host_count: usize,
    /// The method is `CONNECT`: a tunnel request has no business on an HTTP forwarding path
    /// (forwarded, it would reach the origin as a `CONNECT /` and strand the tenant's
    /// connection in an upgrade nobody takes).
    pub connect_method: bool,
}

/// Where a forwarded request goes and the `Host` the upstream receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// The destination decided on.
    pub target: Target,
    /// `Host` for the upstream, rewritten from the decided authority (RFC 9112 §3.2.2), so a
    /// different `Host` from the client cannot front another site behind the same address.
    pub host_header: String,
}

/// The destination of a request: the absolute-form authority, else `Host`. Several `Host`s,
/// other schemes, userinfo and the `CONNECT` method are malformed. (`Content-Length` beside `Transfer-Encoding` never
/// reaches here: the one HTTP parser frames such a request as chunked, drops `Content-Length`
/// and closes the connection after it, as RFC 9112 §6.3 asks.)
pub fn target(head: &RequestHead<'_>, default_port: u16) -> Result<RequestTarget, DenyReason> {
    framing(head)?;
    if head
        .scheme
        .is_some_and(|scheme| !scheme.eq_ignore_ascii_case("http"))
    {
        return Err(DenyReason::MalformedRequest);
    }
    let authority = head
        .authority
        .or(head.host)
        .ok_or(DenyReason::MalformedRequest)?;
    let target = parse_with_default_port(authority, default_port)?;
    let host_header = match target.port {
        port if port == default_port => host_text(&target.host),
        port => format!("{}:{port}", host_text(&target.host)),
    };
    Ok(RequestTarget {
        target,
        host_header,
    })
}

/// A request inside a CONNECT tunnel to an HTTP port must name the tunnel's host (its port is
/// the tunnel's): another name is `host_mismatch`, a request with no usable `Host` is malformed.
pub fn within_tunnel(head: &RequestHead<'_>, tunnel: &Target) -> Result<(), DenyReason> {
    framing(head)?;
    let authority = head
        .authority
        .or(head.host)
        .ok_or(DenyReason::MalformedRequest)?;
    let named = parse_with_default_port(authority, tunnel.port)?;
    if named.host == tunnel.host {
        Ok(())
    } else {
        Err(DenyReason::HostMismatch)
    }
}

fn framing(head: &RequestHead<'_>) -> Result<(), DenyReason> {
    if head.host_count > 1 || head.connect_method {
        return Err(DenyReason::MalformedRequest);
    }
    Ok(())
}

fn parse_with_default_port(authority: &str, default_port: u16) -> Result<Target, DenyReason> {
    if authority.contains('@') {
        return Err(DenyReason::MalformedRequest);
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let parsed = if has_port {
        parse_authority(authority)
    } else {
        parse_authority(&format!("{authority}:{default_port}"))
    };
    parsed.map_err(|_| DenyReason::MalformedRequest)
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(authority: Option<&'a str>, host: Option<&'a str>) -> RequestHead<'a> {
        RequestHead {
            scheme: authority.map(|_| "http"),
            authority,
            host,
            host_count: usize::from(host.is_some()),
            connect_method: false,
        }
    }

    #[test]
    fn the_authority_decides_and_rewrites_host() {
        let fronted = target(&head(Some("allowed.test"), Some("other.test")), 80).unwrap();
        assert_eq!(fronted.target.to_string(), "allowed.test:80");
        assert_eq!(fronted.host_header, "allowed.test");
        let with_port = target(&head(Some("Allowed.Test:8080"), None), 80).unwrap();
        assert_eq!(with_port.host_header, "allowed.test:8080");
        let origin_form = target(&head(None, Some("web.test")), 8080).unwrap();
        assert_eq!(origin_form.target.to_string(), "web.test:8080");
        assert_eq!(origin_form.host_header, "web.test");
    }

    #[test]
    fn smuggling_shapes_and_other_schemes_are_malformed() {
        let malformed = Err(DenyReason::MalformedRequest);
        let mut two_hosts = head(None, Some("a.test"));
        two_hosts.host_count = 2;
        assert_eq!(target(&two_hosts, 80).map(|_| ()), malformed);
        let mut https = head(Some("a.test"), None);
        https.scheme = Some("https");
        assert_eq!(target(&https, 80).map(|_| ()), malformed);
        assert_eq!(
            target(&head(Some("u@a.test"), None), 80).map(|_| ()),
            malformed
        );
        assert_eq!(target(&head(None, None), 80).map(|_| ()), malformed);
        let mut connect = head(None, Some("a.test:80"));
        connect.connect_method = true;
        assert_eq!(target(&connect, 80).map(|_| ()), malformed);
        let tunnel = parse_authority("a.test:80").unwrap();
        assert_eq!(within_tunnel(&connect, &tunnel), malformed);
    }

    #[test]
    fn tunnel_requests_must_name_the_tunnel_host() {
        let tunnel = parse_authority("web.test:80").unwrap();
        assert_eq!(
            within_tunnel(&head(None, Some("web.test")), &tunnel),
            Ok(())
        );
        assert_eq!(
            within_tunnel(&head(None, Some("WEB.test:80")), &tunnel),
            Ok(())
        );
        assert_eq!(
            within_tunnel(&head(None, Some("other.test")), &tunnel),
            Err(DenyReason::HostMismatch)
        );
        assert_eq!(
            within_tunnel(&head(None, None), &tunnel),
            Err(DenyReason::MalformedRequest)
        );
    }
}
