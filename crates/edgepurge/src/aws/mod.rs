//! What the AWS APIs edgepurge calls share: request signing (SigV4).

pub mod sigv4;
