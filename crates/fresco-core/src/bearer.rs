//! The client side of authentication: [`Bearer`], a tonic interceptor that
//! puts `authorization: Bearer <key>` on every call of a client (the CLI's
//! API key, a worker's token), or nothing on a farm served without keys.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds the key, if any, to every request.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Bearer(<key>)",
            None => "Bearer(none)",
        })
    }
}

/// A key that cannot travel in gRPC metadata (not visible ASCII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key holds characters a request cannot carry (only visible ASCII)")]
pub struct UnsendableKey;

impl Bearer {
    /// Sends `key` (trimmed) with every request; none sends nothing.
    pub fn new(key: Option<&str>) -> Result<Self, UnsendableKey> {
        let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
            return Ok(Self(None));
        };
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UnsendableKey);
        }
        let value = format!("Bearer {key}").parse().map_err(|_| UnsendableKey)?;
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_rides_on_every_request_and_none_adds_nothing() {
        let mut bearer = Bearer::new(Some(" fresco_k_abc \n")).expect("a sendable key");
        let request = bearer.call(Request::new(())).expect("intercepted");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer fresco_k_abc")
        );
        let mut none = Bearer::new(None).expect("no key");
        let request = none.call(Request::new(())).expect("intercepted");
        assert!(request.metadata().get("authorization").is_none());
        assert!(Bearer::new(Some("")).is_ok());
        assert_eq!(
            Bearer::new(Some("key with space")).err(),
            Some(UnsendableKey)
        );
        assert_eq!(Bearer::new(Some("clé")).err(), Some(UnsendableKey));
        assert!(!format!("{bearer:?}").contains("abc"));
    }
}
