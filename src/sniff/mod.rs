//! Finding the destination in the first bytes a tenant sends: a proxy request head, or a TLS
//! ClientHello. Parsers here are pure functions over byte slices; readers add bounded buffering.

pub mod client_hello;
pub mod connect_head;
pub mod hello_reader;
pub mod original_dst;
