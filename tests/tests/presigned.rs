//! Presigned output URLs (`OutputUrls`) are refused by the object store
//! whenever they should be, on a real farm whose outputs live on an S3
//! server that checks signatures:
//! 1. a fresh URL answers 200 with the object, byte for byte what
//!    object_store's own S3 client reads back, and as long as `bytes` says;
//! 2. the same URL with its path changed to the job's other output answers
//!    403 SignatureDoesNotMatch: a URL opens only the object it was signed
//!    for;
//! 3. a URL asked for with `expires_seconds = 1` and used 1.5 s after the
//!    answer's `expires_at` answers 403 "Request has expired";
//! 4. tenant B asking for the URLs of tenant A's job gets NOT_FOUND, so it
//!    never holds a URL to open.
//!
//! After each case the farm's objects (listed by object_store, not fresco)
//! are exactly as they were.
//!
//! Why not moto, the farm's usual S3: its server serves a presigned URL
//! whatever its signature and expiry, so cases 2 and 3 would pass a GET that
//! S3 refuses. These run against the signing server that
//! `scripts/services.sh` starts next to it (`fresco_e2e::signing_s3`), and
//! fail, rather than skip, when it is not there. What that server cannot
//! show: it answers unsigned requests too, so "no signature" is not tested.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fresco_e2e::{Farm, FarmOptions, TestStorage, describe};
use fresco_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status and body of an HTTP/1.1 GET of the `http://` URL `url`, its
/// path and query sent byte for byte as written (no client to re-encode an
/// edited URL), with `Connection: close`.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not an http:// URL"));
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = if target.is_empty() { "/" } else { target };
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("reading the response");
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(&response)
            )
        });
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = &response[end + 4..];
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, body)
}

/// A chunked HTTP/1.1 body, decoded.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = String::from_utf8_lossy(&data[..line]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).expect("a hex chunk size");
        data = &data[line + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The object keys under the farm's prefix on the signing server.
async fn farm_keys(farm: &Farm, storage: &TestStorage) -> BTreeSet<String> {
    let prefix = farm
        .storage_url
        .strip_prefix(&format!("s3://{}/", storage.bucket))
        .unwrap_or_else(|| panic!("{} is not in {}", farm.storage_url, storage.bucket));
    storage.keys(prefix).await
}

/// The instant of a protobuf timestamp's `seconds` and `nanos`.
fn instant(seconds: i64, nanos: i32) -> SystemTime {
    UNIX_EPOCH
        + Duration::new(
            u64::try_from(seconds).expect("a time after 1970"),
            u32::try_from(nanos).expect("nanoseconds"),
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_open_their_own_object_until_they_expire_and_only_for_its_tenant() {
    let storage = TestStorage::signing_from_env().expect(
        "FRESCO_TEST_SIGNING_S3_ENDPOINT, FRESCO_TEST_SIGNING_S3_KEY_ID, \
         FRESCO_TEST_SIGNING_S3_SECRET and FRESCO_TEST_BUCKET must be set: run the tests with \
         scripts/test.sh, whose scripts/services.sh starts the S3 server that checks signatures",
    );
    let farm = Farm::start(FarmOptions {
        workers: 1,
        storage: Some(storage.clone()),
        ..FarmOptions::default()
    })
    .await;
    let ours = farm.client_key("ours", "submitter");
    let theirs = farm.client_key("theirs", "viewer");
    let submitted = farm.cli_as(
        &ours,
        &[
            "submit",
            "--model",
            "tiny-random-dit",
            "--prompt",
            "a red circle",
            "-n",
            "2",
            "--steps",
            "2",
            "--width",
            "32",
            "--height",
            "32",
        ],
    );
    assert!(submitted.status.success(), "{}", describe(&submitted));
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        1,
        "{status}\n{}",
        farm.logs()
    );

    let request = |expires_seconds: u32| pb::OutputUrlsRequest {
        job_id: job.clone(),
        expires_seconds,
        ..Default::default()
    };
    let mut client = farm.job_client_as(&ours).await;
    let mut signed = client
        .output_urls(request(60))
        .await
        .expect("OutputUrls of the caller's own job")
        .into_inner();
    signed.urls.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(signed.urls.len(), 2, "two images: {signed:?}");
    let (first, second) = (&signed.urls[0], &signed.urls[1]);
    assert_ne!(first.key, second.key);
    let objects = farm_keys(&farm, &storage).await;
    assert_eq!(
        objects,
        BTreeSet::from([first.key.clone(), second.key.clone()]),
        "the job's two outputs, on the signing server\n{}",
        farm.logs()
    );

    // 1. A fresh URL: 200, the object byte for byte.
    let on_server = format!("{}/{}/{}?", storage.endpoint, storage.bucket, first.key);
    assert!(
        first.url.starts_with(&on_server),
        "{} is a URL of the signing server's {}",
        first.url,
        first.key
    );
    let (code, body) = http_get(&first.url).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert_eq!(body.len() as u64, first.bytes, "the size OutputUrls gave");
    assert!(
        body == storage.get(&first.key).await,
        "the URL's body is {} as object_store reads it",
        first.key
    );
    assert_eq!(farm_keys(&farm, &storage).await, objects);

    // 2. The same URL edited to name the job's other output: 403.
    let edited = first.url.replacen(
        &on_server,
        &format!("{}/{}/{}?", storage.endpoint, storage.bucket, second.key),
        1,
    );
    assert_ne!(edited, first.url);
    let (code, body) = http_get(&edited).await;
    let said = String::from_utf8_lossy(&body);
    assert_eq!(code, 403, "{said}");
    assert!(
        said.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{said}"
    );
    assert_eq!(farm_keys(&farm, &storage).await, objects);

    // 3. A one-second URL used 1.5 s after the expiry OutputUrls answered.
    let short = client
        .output_urls(pb::OutputUrlsRequest {
            keys: vec![first.key.clone()],
            ..request(1)
        })
        .await
        .expect("OutputUrls for one second")
        .into_inner();
    assert_eq!(short.urls.len(), 1, "{short:?}");
    let expires_at = short.expires_at.expect("an expires_at");
    let stale = instant(expires_at.seconds, expires_at.nanos) + Duration::from_millis(1500);
    while SystemTime::now() < stale {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, body) = http_get(&short.urls[0].url).await;
    let said = String::from_utf8_lossy(&body);
    assert_eq!(code, 403, "{said}");
    assert!(said.contains("Request has expired"), "{said}");
    assert_eq!(farm_keys(&farm, &storage).await, objects);

    // 4. Tenant B asking for A's URLs, all of them or one named: NOT_FOUND.
    let mut intruder = farm.job_client_as(&theirs).await;
    for asked in [
        request(60),
        pb::OutputUrlsRequest {
            keys: vec![first.key.clone()],
            ..request(60)
        },
    ] {
        let refused = intruder
            .output_urls(asked)
            .await
            .expect_err("URLs of another tenant's job");
        assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
        assert_eq!(refused.message(), format!("job {job} not found"));
    }
    assert_eq!(farm_keys(&farm, &storage).await, objects);
}
