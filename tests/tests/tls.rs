//! gRPC over TLS on a real farm, with a CA made in the test: the CLI and
//! the workers reach an `https://` coordinator trusting that CA; a client
//! that does not trust it, or speaks plain HTTP to it, fails saying why;
//! with `--tls-client-ca`, only workers presenting a certificate that CA
//! signed may use the worker API, while the CLI needs none.

use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, Proc, TestPki, binary, describe, wait_until};

/// A job of two tiny tasks.
const JOB: &[&str] = &[
    "--model",
    "tiny-random-dit",
    "--prompt",
    "a red circle",
    "--prompt",
    "a blue square",
    "--steps",
    "2",
    "--width",
    "32",
    "--height",
    "32",
];

async fn tls_farm(pki: TestPki, workers: usize) -> Farm {
    Farm::start(FarmOptions {
        workers,
        tls: Some(pki),
        ..FarmOptions::default()
    })
    .await
}

/// The real CLI against `endpoint` with exactly `args` (no TLS flags but
/// those given).
fn fresco(endpoint: &str, args: &[&str]) -> std::process::Output {
    binary("fresco")
        .args(["--coordinator", endpoint])
        .args(args)
        .output()
        .expect("running fresco")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_submitted_over_tls_completes_on_a_worker_connected_over_tls() {
    // Workers verified too: the CLI, without a client certificate, still
    // reaches the client API.
    let farm = tls_farm(TestPki::verifying_workers(), 1).await;
    assert!(farm.endpoint.starts_with("https://"), "{}", farm.endpoint);

    let job = farm.submit(JOB);
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        2,
        "{status}\n{}",
        farm.logs()
    );
    let listed = farm.cli(&["list", "--json"]);
    assert!(listed.status.success(), "{}", describe(&listed));
    assert!(
        !farm.log("coordinator").contains("worker API call refused"),
        "the worker with its certificate was never refused\n{}",
        farm.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_trust_the_ca_or_speaks_plain_http_is_refused_saying_why() {
    let farm = tls_farm(TestPki::new(), 0).await;
    let https = farm.endpoint.clone();

    let untrusting = fresco(&https, &["list"]);
    assert!(!untrusting.status.success(), "{}", describe(&untrusting));
    let message = stderr(&untrusting);
    assert!(
        message.starts_with(&format!(
            "error: TLS handshake with the coordinator at {https} failed: its certificate is not \
             signed by a CA this client trusts"
        )) || message.contains("no system CA certificates"),
        "{message}"
    );
    assert!(message.contains("pass --tls-ca"), "{message}");

    let plain = https.replacen("https://", "http://", 1);
    let out = fresco(&plain, &["list"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let message = stderr(&out);
    assert!(
        message.starts_with(&format!("error: cannot reach the coordinator at {plain}: ")),
        "{message}"
    );
    assert!(
        message.ends_with(
            "(if the coordinator serves TLS, use an https:// URL and, for a private CA, --tls-ca)\n"
        ),
        "{message}"
    );
    wait_until(
        "the coordinator to log the plain-HTTP handshake",
        Duration::from_secs(10),
        || async { farm.log("coordinator").contains("tls accept error") },
    )
    .await;

    let missing = farm.dir.path().join("no-such-ca.pem");
    let out = fresco(
        &https,
        &["--tls-ca", missing.to_str().expect("utf-8"), "list"],
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: --tls-ca {}: cannot read it: ",
            missing.display()
        )),
        "{}",
        describe(&out)
    );

    let trusting = farm.cli(&["list"]);
    assert!(trusting.status.success(), "{}", describe(&trusting));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_client_ca_only_workers_with_a_certificate_it_signed_register() {
    let pki = TestPki::verifying_workers();
    let mut farm = tls_farm(pki.clone(), 0).await;
    let ca_only = vec!["--tls-ca".to_owned(), pki.ca.display().to_string()];

    // No certificate: refused at registration; the worker stops, saying why.
    let mut bare = Proc::spawn(
        "worker without a certificate",
        &mut farm.worker_command("no-cert", &ca_only),
    );
    let exit = bare.wait_exit(Duration::from_secs(60));
    assert!(!exit.success(), "{exit:?}");
    let said = farm.log("no-cert");
    assert!(
        said.contains(
            "the worker API needs a client certificate signed by the coordinator's \
             --tls-client-ca: start the worker with --tls-cert and --tls-key"
        ),
        "{said}"
    );
    assert!(
        farm.log("coordinator")
            .contains("worker API call refused: no client certificate"),
        "{}",
        farm.logs()
    );

    // A certificate of another CA: the handshake itself fails.
    let foreign = pki.foreign_client();
    let foreign_args = [ca_only.clone(), TestPki::cert_args(&foreign)].concat();
    let _rogue = Proc::spawn(
        "worker with another CA's certificate",
        &mut farm.worker_command("foreign-cert", &foreign_args),
    );
    wait_until(
        "the coordinator to refuse the foreign certificate",
        Duration::from_secs(30),
        || async {
            farm.log("coordinator")
                .lines()
                .any(|l| l.contains("tls accept error") && l.contains("UnknownIssuer"))
        },
    )
    .await;
    wait_until(
        "the foreign worker to retry after the refusal",
        Duration::from_secs(30),
        || async {
            farm.log("foreign-cert")
                .contains("coordinator call failed; retrying")
        },
    )
    .await;
    assert_eq!(
        farm.registered_workers().await,
        0,
        "neither worker appears in the workers table\n{}",
        farm.logs()
    );

    // The CA's own worker certificate: it registers and renders.
    farm.start_worker().await;
    let pool = farm.db.pool().await;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM workers")
        .fetch_all(&pool)
        .await
        .expect("listing workers");
    assert_eq!(
        names,
        ["worker-0"],
        "only the worker with the CA's certificate"
    );
    let job = farm.submit(JOB);
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        2,
        "{status}\n{}",
        farm.logs()
    );
}
