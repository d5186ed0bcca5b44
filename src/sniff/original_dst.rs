//! The destination a redirected connection was originally sent to (`SO_ORIGINAL_DST`, or
//! `IP6T_SO_ORIGINAL_DST` for IPv6, set by an iptables/ip6tables/nftables REDIRECT or DNAT), so
//! transparent listeners learn the port the pod dialled.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// A transparent listener: where it is bound, and the port it assumes for connections that
/// were not redirected.
#[derive(Debug, Clone, Copy)]
pub struct TransparentPort {
    /// The listener's bound address.
    pub bound: SocketAddr,
    /// The destination port when the connection was addressed to the listener directly.
    pub default_port: u16,
}

impl TransparentPort {
    /// The port the tenant dialled: the original destination's when the connection was
    /// redirected, else `default_port`. One `getsockopt`, no other syscall.
    pub fn destination_port<S: AsFd>(&self, socket: &S) -> u16 {
        original_destination(socket, self.bound.is_ipv6())
            .filter(|original| self.redirected(*original))
            .map_or(self.default_port, |original| original.port())
    }

    /// A connection whose original destination is the listener itself was not redirected; on a
    /// wildcard bind only the port can tell.
    fn redirected(&self, original: SocketAddr) -> bool {
        if self.bound.ip().is_unspecified() {
            original.port() != self.bound.port()
        } else {
            original != self.bound
        }
    }
}

/// The pre-NAT destination of `socket` (`None` without a conntrack entry). A socket of an IPv6
/// (or dual-stack) listener may have only an IPv6 answer, so it costs a second `getsockopt`;
/// sockets of IPv4 listeners stay at one, redirected or not.
fn original_destination<S: AsFd>(socket: &S, ipv6_listener: bool) -> Option<SocketAddr> {
    if let Ok(raw) = getsockopt(socket, sockopt::OriginalDst) {
        let ip = Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr));
        let port = u16::from_be(raw.sin_port);
        return Some(SocketAddr::V4(SocketAddrV4::new(ip, port)));
    }
    if !ipv6_listener {
        return None;
    }
    let raw = getsockopt(socket, sockopt::Ip6tOriginalDst).ok()?;
    let ip = Ipv6Addr::from(raw.sin6_addr.s6_addr);
    let port = u16::from_be(raw.sin6_port);
    Some(SocketAddr::V6(SocketAddrV6::new(
        ip,
        port,
        raw.sin6_flowinfo,
        raw.sin6_scope_id,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_connection_is_not_redirected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let transparent = TransparentPort {
            bound: local,
            default_port: 443,
        };
        assert_eq!(transparent.destination_port(&accepted), 443);
    }

    #[test]
    fn a_direct_ipv6_connection_is_not_redirected() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            panic!("IPv6 loopback is needed for this test");
        };
        let local = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let transparent = TransparentPort {
            bound: local,
            default_port: 80,
        };
        assert_eq!(transparent.destination_port(&accepted), 80);
    }
}
