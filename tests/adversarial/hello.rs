//! Hand-built TLS ClientHellos for SNI attacks: any list of server names (several, empty, NUL,
//! raw UTF-8, non-host types), ECH, padding, and any cut into records.

/// `host_name` in a `ServerNameList` (RFC 6066 §3).
pub const HOST_NAME: u8 = 0;
const EXT_SERVER_NAME: u16 = 0;
const EXT_PADDING: u16 = 21;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_ECH: u16 = 0xfe0d;

/// What goes into one ClientHello.
#[derive(Debug, Clone, Default)]
pub struct Hello<'a> {
    /// `ServerNameList` entries (type, name); empty leaves the extension out.
    pub names: Vec<(u8, &'a [u8])>,
    /// Send the `server_name` extension twice.
    pub twice: bool,
    /// Add an `encrypted_client_hello` extension.
    pub ech: bool,
    /// Bytes of padding extension.
    pub padding: usize,
}

impl<'a> Hello<'a> {
    /// A hello naming `name` once.
    pub fn named(name: &'a str) -> Self {
        Self {
            names: vec![(HOST_NAME, name.as_bytes())],
            ..Self::default()
        }
    }

    /// The handshake message (type 1, 24-bit length, body).
    pub fn handshake(&self) -> Vec<u8> {
        let mut extensions = Vec::new();
        if !self.names.is_empty() {
            let mut list = Vec::new();
            for (kind, name) in &self.names {
                list.push(*kind);
                list.extend_from_slice(&(name.len() as u16).to_be_bytes());
                list.extend_from_slice(name);
            }
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&list);
            for _ in 0..if self.twice { 2 } else { 1 } {
                push_extension(&mut extensions, EXT_SERVER_NAME, &data);
            }
        }
        push_extension(&mut extensions, EXT_SUPPORTED_VERSIONS, &[2, 3, 4]);
        if self.ech {
            // An outer ECH extension: type outer, a cipher suite, config id, enc, payload.
            let mut ech = vec![0, 0, 1, 0, 1, 7, 0, 32];
            ech.extend_from_slice(&[0xab; 32]);
            ech.extend_from_slice(&[0, 64]);
            ech.extend_from_slice(&[0xcd; 64]);
            push_extension(&mut extensions, EXT_ECH, &ech);
        }
        if self.padding > 0 {
            push_extension(&mut extensions, EXT_PADDING, &vec![0; self.padding]);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(&extensions);
        let mut handshake = vec![1];
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        handshake
    }

    /// The hello in one record.
    pub fn record(&self) -> Vec<u8> {
        self.records(usize::MAX)
    }

    /// The hello cut into handshake records of at most `size` bytes each.
    pub fn records(&self, size: usize) -> Vec<u8> {
        records(&self.handshake(), size)
    }
}

fn push_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// `handshake` in records of type 22 of at most `size` bytes of fragment each.
pub fn records(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for fragment in handshake.chunks(size.max(1)) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        out.extend_from_slice(fragment);
    }
    out
}
