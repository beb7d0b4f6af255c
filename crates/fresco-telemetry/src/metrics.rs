//! The Prometheus endpoint every fresco daemon can serve
//! (`--metrics-listen ADDR`): one global recorder of the `metrics` crate,
//! rendered in the Prometheus text format at `http://ADDR/metrics` (any
//! path answers). Histograms (every metric named `…_seconds`) are
//! exported with the buckets of [`DURATION_BUCKETS`], so dashboards can
//! take quantiles over many processes.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Bucket bounds, in seconds, of every duration histogram: from a
/// millisecond (a request handler) to ten minutes (a long sampling run or
/// a queue wait).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// Why the endpoint could not be served.
pub type MetricsError = BuildError;

/// Installs the global recorder and serves it over HTTP on `listen`, on
/// the current Tokio runtime, for the rest of the process. Fails when the
/// address cannot be bound or a recorder is already installed.
pub fn serve_metrics(listen: SocketAddr) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)?
        .install()?;
    tracing::info!(%listen, "serving Prometheus metrics");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[tokio::test]
    async fn the_endpoint_serves_histograms_with_buckets() {
        let listen: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address")
        };
        serve_metrics(listen).expect("serving");
        metrics::histogram!("fresco_test_wait_seconds").record(0.2);
        metrics::counter!("fresco_test_things_total").increment(3);
        let body = tokio::task::spawn_blocking(move || scrape(listen))
            .await
            .expect("scraped");
        assert!(
            body.contains("fresco_test_wait_seconds_bucket{le=\"0.25\"} 1"),
            "{body}"
        );
        assert!(body.contains("fresco_test_things_total 3"), "{body}");
        assert!(serve_metrics(listen).is_err(), "one recorder per process");
    }

    /// `GET /metrics` over a plain socket, retried while the listener
    /// starts.
    fn scrape(listen: SocketAddr) -> String {
        for _ in 0..100 {
            if let Ok(mut stream) = std::net::TcpStream::connect(listen) {
                let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                stream.write_all(request.as_bytes()).expect("request");
                let mut body = String::new();
                stream.read_to_string(&mut body).expect("response");
                return body;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the endpoint never answered");
    }
}
