//! Certificates generated at test time (rcgen): a tenant CA, gateway and origin server
//! certificates, tenant client certificates with SPIFFE URI SANs, expired ones, and an unknown CA.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Issued {
    /// Certificate PEM.
    pub cert: String,
    /// Private key PEM.
    pub key: String,
}

/// A certificate authority that issues test certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate PEM (what a verifier trusts).
    pub pem: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.clone().self_signed(&key).expect("self-sign");
        Self {
            pem: cert.pem(),
            params,
            key,
        }
    }

    fn issue(&self, mut params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let issuer = self.params.clone().self_signed(&self.key).expect("issuer");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &issuer, &self.key).expect("sign");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `names`.
    pub fn server(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A tenant client certificate carrying `spiffe` as URI SAN (and optionally DNS SANs / CN).
    pub fn client(&self, spiffe: Option<&str>, dns: &[&str], expired: bool) -> Issued {
        let names: Vec<String> = dns.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        if let Some(first) = dns.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        if let Some(spiffe) = spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(spiffe.try_into().expect("ia5 uri")));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        self.issue(params)
    }
}
