//! A tenant CA that can issue any certificate an attacker would present: several URI SANs, odd
//! SPIFFE paths, a SPIFFE ID only in the CN, expired, self-signed. The `connect_tls` world of
//! `common::mtls` is reused with this CA's files written over its own.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::common::mtls::{world, World};
use crate::common::pki::Issued;

/// What goes into a client certificate.
#[derive(Default)]
pub struct Leaf<'a> {
    /// URI SANs, in order.
    pub uris: Vec<&'a str>,
    /// DNS SANs.
    pub dns: Vec<&'a str>,
    /// Subject common name.
    pub cn: Option<&'a str>,
    /// Validity ended in 2021.
    pub expired: bool,
}

/// A CA and its signing key.
pub struct Authority {
    cert: Certificate,
    key: KeyPair,
    /// The CA certificate PEM.
    pub pem: String,
}

impl Authority {
    /// A new self-signed CA.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        Self {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client certificate as described by `leaf`.
    pub fn client(&self, leaf: &Leaf<'_>) -> Issued {
        self.sign(params(leaf))
    }

    /// A server certificate for the gateway.
    pub fn server(&self) -> Issued {
        let mut params =
            CertificateParams::new(vec!["gateway.test".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }
}

fn params(leaf: &Leaf<'_>) -> CertificateParams {
    let dns: Vec<String> = leaf.dns.iter().map(|d| (*d).to_owned()).collect();
    let mut params = CertificateParams::new(dns).expect("params");
    for uri in &leaf.uris {
        params
            .subject_alt_names
            .push(SanType::URI((*uri).try_into().expect("ia5 uri")));
    }
    if let Some(cn) = leaf.cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if leaf.expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    params
}

/// A self-signed client certificate (no CA vouches for it).
pub fn self_signed(leaf: &Leaf<'_>) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params(leaf).self_signed(&key).expect("self-sign");
    Issued {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The `connect_tls` world of `common::mtls` (config `extra` appended) with `ca` as tenant CA
/// and a gateway certificate it signed.
pub fn mtls_world(ca: &Authority, extra: &str) -> World {
    let world = world(extra);
    let certs = world.config.path().join("certs");
    let server = ca.server();
    std::fs::write(certs.join("gw.pem"), &server.cert).expect("write");
    std::fs::write(certs.join("gw-key.pem"), &server.key).expect("write");
    std::fs::write(certs.join("ca.pem"), &ca.pem).expect("write");
    world
}
