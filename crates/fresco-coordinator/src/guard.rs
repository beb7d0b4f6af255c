//! The door of each gRPC service: [`Guarded`] wraps a generated service
//! server, asks the [`Authenticator`] who calls before any handler runs,
//! answers a refusal itself, and hands the [`fresco_core::Caller`] to the
//! handlers in the request's extensions (read by
//! [`crate::tenancy::caller`]). Each call runs in a span named for its
//! method, the child of the trace context the caller sent (W3C
//! `traceparent` metadata), so an exported trace follows a task across
//! processes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use fresco_core::CredentialKind;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;

use tracing::Instrument;

use crate::authentication::Authenticator;

/// A service server that only authenticated callers of the right kind
/// reach.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    authenticator: Authenticator,
    /// The credential kind this service is for.
    kind: CredentialKind,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, authenticator: Authenticator, kind: CredentialKind) -> Self {
        Self {
            inner,
            authenticator,
            kind,
        }
    }
}

/// The method a request calls: the last segment of `/package.Service/Method`.
fn method(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl<S, B> Service<Request<B>> for Guarded<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let authenticator = self.authenticator.clone();
        let kind = self.kind;
        let method = method(request.uri().path()).to_owned();
        let span = tracing::info_span!("grpc", otel.name = %method, rpc.method = %method);
        fresco_telemetry::traces::set_parent(
            &span,
            &fresco_telemetry::traces::extract(request.headers()),
        );
        Box::pin(
            async move {
                match authenticator.caller(request.headers(), kind, &method).await {
                    Ok(caller) => {
                        request.extensions_mut().insert(caller);
                        inner.call(request).await
                    }
                    Err(refused) => Ok(Status::from(refused).into_http()),
                }
            }
            .instrument(span),
        )
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_is_the_last_path_segment() {
        assert_eq!(method("/fresco.v1.JobService/GetJob"), "GetJob");
        assert_eq!(method("GetJob"), "GetJob");
    }
}
