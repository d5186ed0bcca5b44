//! The SNI rule, written once: what a ClientHello must say before its bytes go upstream, on the
//! SNI listener (where the SNI is the destination) and inside CONNECT tunnels to TLS ports (where
//! it must name the tunnel's host).

use crate::decide::DenyReason;
use crate::names::Hostname;
use crate::sniff::hello_reader::HelloSummary;

/// The destination a ClientHello names, or why it names none the gateway can trust.
///
/// - several `host_name` entries (RFC 6066 allows one; the origin may serve another): malformed;
/// - no SNI: `missing_sni`;
/// - an SNI that is not a host name (an IP literal, NUL, non-ASCII): malformed;
/// - `expected` given and the SNI names another host: `sni_mismatch`;
/// - the ECH extension present while `refuse_ech` (the outer SNI is only the public name of a
///   front that may serve anything): `encrypted_client_hello`.
pub fn judge(
    hello: &HelloSummary,
    expected: Option<&Hostname>,
    refuse_ech: bool,
) -> Result<Hostname, DenyReason> {
    if hello.server_name_count > 1 {
        return Err(DenyReason::MalformedRequest);
    }
    let raw = hello.server_name.as_deref().ok_or(DenyReason::MissingSni)?;
    let sni = Hostname::parse(raw).map_err(|_| DenyReason::MalformedRequest)?;
    if expected.is_some_and(|host| *host != sni) {
        return Err(DenyReason::SniMismatch);
    }
    if hello.ech && refuse_ech {
        return Err(DenyReason::EncryptedClientHello);
    }
    Ok(sni)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(names: &[&str], ech: bool) -> HelloSummary {
        HelloSummary {
            server_name: names.first().map(|n| (*n).to_owned()),
            server_name_count: names.len(),
            ech,
            ..HelloSummary::default()
        }
    }

    /// SNI names sent, ECH present, host the tunnel expects, the judgement.
    type Case<'a> = (
        &'a [&'a str],
        bool,
        Option<&'a Hostname>,
        Result<&'a str, DenyReason>,
    );

    #[test]
    fn one_table_for_every_front_end() {
        let host = Hostname::parse("api.example.com").unwrap();
        let cases: [Case<'_>; 11] = [
            (
                &["api.example.com"],
                false,
                Some(&host),
                Ok("api.example.com"),
            ),
            (
                &["API.Example.com."],
                false,
                Some(&host),
                Ok("api.example.com"),
            ),
            (&["api.example.com"], false, None, Ok("api.example.com")),
            (&[], false, Some(&host), Err(DenyReason::MissingSni)),
            (
                &["other.example.com"],
                false,
                Some(&host),
                Err(DenyReason::SniMismatch),
            ),
            (
                &["api.example.com", "other.example.com"],
                false,
                Some(&host),
                Err(DenyReason::MalformedRequest),
            ),
            (
                &["203.0.113.7"],
                false,
                None,
                Err(DenyReason::MalformedRequest),
            ),
            (
                &["api.example.com\0x"],
                false,
                Some(&host),
                Err(DenyReason::MalformedRequest),
            ),
            (
                &["api.example.com"],
                true,
                Some(&host),
                Err(DenyReason::EncryptedClientHello),
            ),
            (
                &["api.example.com"],
                true,
                None,
                Err(DenyReason::EncryptedClientHello),
            ),
            (
                &["other.example.com"],
                true,
                Some(&host),
                Err(DenyReason::SniMismatch),
            ),
        ];
        for (names, ech, expected, want) in cases {
            let got = judge(&hello(names, ech), expected, true);
            assert_eq!(
                got.as_ref().map(Hostname::as_str).map_err(|r| *r),
                want,
                "{names:?} ech={ech} expected={expected:?}"
            );
        }
        let ech_allowed = judge(&hello(&["api.example.com"], true), Some(&host), false);
        assert!(
            ech_allowed.is_ok(),
            "ECH passes when require_sni_match is off"
        );
    }
}
