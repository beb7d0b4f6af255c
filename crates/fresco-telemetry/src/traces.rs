//! Optional trace export over OTLP (gRPC), and the W3C trace context a
//! task carries between processes.
//!
//! With an endpoint (`--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`),
//! every `tracing` span is also an OpenTelemetry span, exported in batches
//! to that collector under the binary's `service.name`; without one nothing
//! changes. [`TraceExport`] flushes what is left when the binary stops.
//!
//! Propagation is the W3C `traceparent` text: [`traceparent`] reads it from
//! the current span, [`set_parent`] makes a span the child of one, and
//! [`inject`] / [`extract`] carry it in gRPC metadata.

use std::collections::HashMap;

use anyhow::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The metadata key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The exporter, while the binary runs: dropped or [`TraceExport::shutdown`],
/// it flushes the spans not sent yet.
#[derive(Debug, Default)]
pub struct TraceExport {
    provider: Option<SdkTracerProvider>,
}

impl TraceExport {
    /// Sends what is left and stops exporting.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("could not flush the last spans: {err}");
        }
    }
}

impl Drop for TraceExport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The OTLP endpoint to export to: `flag`, else `OTEL_EXPORTER_OTLP_ENDPOINT`;
/// none when both are unset or empty.
pub fn endpoint(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var(opentelemetry_otlp::OTEL_EXPORTER_OTLP_ENDPOINT).ok())
        .filter(|e| !e.trim().is_empty())
}

/// A provider exporting to `endpoint` as `service`, and the layer that
/// turns `tracing` spans into its spans. Must be called inside a Tokio
/// runtime (the gRPC client runs on it).
pub(crate) fn otlp_layer<S>(
    endpoint: &str,
    service: &'static str,
) -> anyhow::Result<(impl Layer<S> + use<S>, TraceExport)>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("setting up the OTLP exporter to {endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((
        layer,
        TraceExport {
            provider: Some(provider),
        },
    ))
}

/// The W3C `traceparent` of `span` (empty when it is not traced).
pub fn traceparent(span: &Span) -> String {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT).unwrap_or_default()
}

/// Whether `span` is exported (there is an OTLP endpoint and the span is
/// not filtered out): only then is there a trace context to carry.
pub fn is_traced(span: &Span) -> bool {
    span.context().span().span_context().is_valid()
}

/// Makes `span` a child of the context `traceparent` names (nothing when
/// it is empty or malformed).
pub fn set_parent(span: &Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    // A span that is not exported has nothing to attach the parent to.
    let _ = span.set_parent(context);
}

/// Adds the current span's trace context to outgoing gRPC metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// The `traceparent` of incoming gRPC headers (empty when none).
pub fn extract(headers: &tonic::codegen::http::HeaderMap) -> String {
    HeaderExtractor(headers)
        .get(TRACEPARENT)
        .unwrap_or_default()
        .to_owned()
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_endpoint_is_none() {
        assert_eq!(endpoint(Some("")), None);
        assert_eq!(
            endpoint(Some("http://collector:4317")).as_deref(),
            Some("http://collector:4317")
        );
    }

    #[test]
    fn an_untraced_span_has_no_traceparent() {
        assert!(!is_traced(&Span::none()));
        assert_eq!(traceparent(&Span::none()), "");
    }
}
