//! The destination a redirected connection was originally sent to (`SO_ORIGINAL_DST`, set by an
//! iptables/nftables REDIRECT or DNAT), so transparent listeners learn the port the pod dialled.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// The pre-NAT destination of `socket`, or `None` when the connection was not redirected (no
/// conntrack entry, or the original destination is the listener itself).
pub fn original_destination<S: AsFd>(socket: &S, local: SocketAddr) -> Option<SocketAddr> {
    let raw = getsockopt(socket, sockopt::OriginalDst).ok()?;
    let ip = Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr));
    let port = u16::from_be(raw.sin_port);
    let original = SocketAddr::V4(SocketAddrV4::new(ip, port));
    (original != local).then_some(original)
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
        assert_eq!(original_destination(&accepted, local), None);
    }
}
