//! The web dashboard in a real headless Chromium against a real farm
//! (Postgres, Redis, S3, the real binaries): a job's progress bar reaches
//! 100% from server push without a reload while its gallery fills; an
//! image opens with its prompt and seed; a job is cancelled from its page
//! and the CLI agrees; a quarantined worker is marked; each tenant signs
//! in and sees only its own jobs; `fresco dev` serves it with no sign-in.
//! The README's screenshots are the ones these tests save under
//! `target/screenshots`.

use std::io::Read;
use std::time::Duration;

use fresco_e2e::browser::{Browser, Page};
use fresco_e2e::{
    FAST_SHAPES, Farm, FarmOptions, Proc, binary, free_port, stdout_json, wait_until,
};

/// A farm whose coordinator serves the dashboard; returns it and the
/// dashboard's URL once it answers.
async fn farm_with_dashboard(mut options: FarmOptions) -> (Farm, String) {
    let port = free_port();
    options
        .coordinator_args
        .extend(["--http-listen".into(), format!("127.0.0.1:{port}")]);
    let farm = Farm::start(options).await;
    let url = format!("http://127.0.0.1:{port}");
    wait_for_dashboard(&url).await;
    (farm, url)
}

async fn wait_for_dashboard(url: &str) {
    let login = format!("{url}/assets/dashboard.css");
    wait_until("the dashboard to answer", Duration::from_secs(30), || {
        let login = login.clone();
        async move {
            reqwest::get(&login)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
}

/// Signs in with `key` from the sign-in form the first page sends to.
async fn sign_in(page: &Page, url: &str, key: &str) {
    page.goto(&format!("{url}/")).await;
    assert_eq!(page.path().await, "/login", "no key yet: the sign-in form");
    page.fill("#key", key).await;
    page.click("form[action='/login'] button[type=submit]")
        .await;
    page.wait_true("the jobs list", "return !!document.querySelector('h1') && document.querySelector('h1').textContent === 'Jobs'")
        .await;
}

fn prompts(names: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = FAST_SHAPES.iter().map(|s| (*s).to_owned()).collect();
    for name in names {
        args.extend(["-p".to_owned(), (*name).to_owned()]);
    }
    args
}

fn submit(farm: &Farm, key: Option<&str>, args: &[String]) -> String {
    let mut all = vec!["submit"];
    all.extend(args.iter().map(String::as_str));
    let out = match key {
        Some(key) => farm.cli_as(key, &all),
        None => farm.cli(&all),
    };
    assert!(out.status.success(), "{}", fresco_e2e::describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `GET url` as a signed-in browser sends it (the key cookie).
async fn get_signed_in(url: &str, key: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(url)
        .header("cookie", format!("fresco_key={key}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.bytes().await.expect("the body").to_vec()
}

/// The ids of the jobs the list shows.
async fn listed(page: &Page) -> serde_json::Value {
    page.eval("return [...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId)")
        .await
}

/// Every form field is labelled and every image described.
async fn assert_accessible(page: &Page) {
    let unlabelled = page
        .eval(
            "return [...document.querySelectorAll('input:not([type=hidden]), select')]
                .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
                .map(e => e.name)",
        )
        .await;
    assert_eq!(unlabelled, serde_json::json!([]), "fields without a label");
    let undescribed = page
        .eval("return [...document.querySelectorAll('img')].filter(i => !i.alt).length")
        .await;
    assert_eq!(undescribed, serde_json::json!(0), "images without alt text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_renders_live_and_its_gallery_fills_without_a_reload() {
    let (mut farm, url) = farm_with_dashboard(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let names = [
        "a red circle on a white background",
        "a blue square on a black background",
        "a green triangle on a white background",
        "a yellow circle on a black background",
        "a red square on a white background",
        "a blue triangle on a black background",
    ];
    // Larger and finer than the other tests' tasks: the README's
    // screenshot shows these.
    let mut args: Vec<String> = [
        "--model",
        "fresco-shapes",
        "--steps",
        "8",
        "--width",
        "32",
        "--height",
        "32",
    ]
    .map(str::to_owned)
    .to_vec();
    for name in names {
        args.extend(["-p".to_owned(), name.to_owned()]);
    }
    let job = submit(&farm, None, &args);
    let other = submit(
        &farm,
        None,
        &[
            prompts(&["a green square"]),
            vec!["--label".into(), "team=posters".into()],
        ]
        .concat(),
    );
    let browser = Browser::start().await;
    let page = browser.session().await;
    sign_in(&page, &url, &farm.admin_key).await;

    // No worker yet: the page opens at 0%, then follows the job live.
    page.goto(&format!("{url}/jobs/{job}")).await;
    let bar = "return document.querySelector('#job progress').value";
    assert_eq!(page.eval(bar).await, serde_json::json!(0));
    page.eval("window.notReloaded = true; return true").await;
    farm.start_worker().await;
    page.wait_true(
        "the progress bar to reach 100%",
        "return document.querySelector('#job progress').value === 100",
    )
    .await;
    page.wait_true(
        "six thumbnails, each loaded",
        "const imgs = [...document.querySelectorAll('#gallery li img')];
         return imgs.length === 6 && imgs.every(i => i.complete && i.naturalWidth > 0)",
    )
    .await;
    assert_eq!(
        page.eval("return window.notReloaded === true").await,
        serde_json::json!(true),
        "the page updated itself: it was never reloaded"
    );
    assert_eq!(page.text("#job [data-role=state]").await, "succeeded");
    assert_eq!(
        page.eval("return document.querySelector('[data-role=while-active]').hidden")
            .await,
        serde_json::json!(true),
        "pause and cancel go once the job has finished"
    );
    assert_accessible(&page).await;
    page.screenshot("job-gallery").await;

    // The third thumbnail is task 2: its page names its prompt and seed.
    let status = farm.status(&job);
    let task = &status["tasks"][2];
    page.click("#gallery li:nth-child(3) a").await;
    assert_eq!(page.text("#prompt").await, names[2]);
    assert_eq!(
        page.text("#seed").await,
        task["outputs"][0]["seed"].to_string(),
        "{task}"
    );
    page.wait_true(
        "the full image to load",
        "const i = document.querySelector('#image'); return i.complete && i.naturalWidth > 0",
    )
    .await;

    // Download all: a tar of every image, byte for byte the bucket's; and
    // the manifest, one row per image.
    let tar = get_signed_in(&format!("{url}/jobs/{job}/images.tar"), &farm.admin_key).await;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut files = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let name = entry.path().expect("a name").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("the entry's bytes");
        files.push((name, bytes));
    }
    assert_eq!(files.len(), 6, "one file per image");
    for (n, (name, bytes)) in files.iter().enumerate() {
        assert_eq!(name, &format!("task-{n:06}-0.png"));
        let key = status["tasks"][n]["outputs"][0]["key"]
            .as_str()
            .expect("a key");
        assert_eq!(bytes, &farm.bucket_object(key).await, "{name} is {key}");
    }
    let manifest =
        get_signed_in(&format!("{url}/jobs/{job}/manifest.jsonl"), &farm.admin_key).await;
    let rows: Vec<serde_json::Value> = String::from_utf8(manifest)
        .expect("text")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 6, "one manifest row per image");
    assert_eq!(rows[2]["prompt"], names[2], "{}", rows[2]);

    // The list: searched by prompt text, filtered by label.
    page.goto(&format!("{url}/")).await;
    page.wait_true(
        "both jobs listed",
        &format!("return !!document.querySelector('tr[data-job-id=\"{job}\"]') && !!document.querySelector('tr[data-job-id=\"{other}\"]')"),
    )
    .await;
    assert_accessible(&page).await;
    page.screenshot("jobs").await;
    // By keyboard: Enter in the search field submits the filter.
    page.fill("#q", "yellow circle\u{E007}").await;
    page.wait_true(
        "only the job with that prompt",
        &format!("const rows = [...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId);
                  return rows.length === 1 && rows[0] === '{job}'"),
    )
    .await;
    page.goto(&format!("{url}/?label=team%3Dposters")).await;
    assert_eq!(listed(&page).await, serde_json::json!([other]));
    page.goto(&format!("{url}/?state=succeeded&model=fresco-shapes"))
        .await;
    assert_eq!(listed(&page).await, serde_json::json!([other, job]));
    page.goto(&format!("{url}/?state=bogus")).await;
    assert_eq!(page.text("h1").await, "Not accepted");
    assert!(
        page.text("[role=alert]").await.starts_with("state: "),
        "names the field"
    );

    // A gallery is paged: 65 tasks show 60, then the other 5.
    let many = submit(
        &farm,
        None,
        &[
            prompts(&["a red circle"]),
            vec!["--seeds".into(), "1-65".into()],
        ]
        .concat(),
    );
    farm.wait_finished(&many, Duration::from_secs(300)).await;
    page.goto(&format!("{url}/jobs/{many}")).await;
    let thumbs = "return document.querySelectorAll('#gallery li').length";
    assert_eq!(page.eval(thumbs).await, serde_json::json!(60));
    page.click("a[rel=next]").await;
    page.wait_true("the second page", "return location.search === '?from=60'")
        .await;
    assert_eq!(page.eval(thumbs).await, serde_json::json!(5));
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_worker_is_marked_and_a_job_is_cancelled_from_its_page() {
    let models = tempfile::tempdir().expect("temp dir");
    fresco_e2e::models::corrupt_dit_folder(&models.path().join("mended"), "mended");
    let (mut farm, url) = farm_with_dashboard(FarmOptions {
        workers: 0,
        coordinator_args: vec![
            "--quarantine-after".into(),
            "2".into(),
            "--quarantine-cooldown-seconds".into(),
            "3600".into(),
        ],
        ..FarmOptions::default()
    })
    .await;
    farm.start_worker_with(&["--models-dir".into(), models.path().display().to_string()])
        .await;
    let broken = [
        "--model",
        "mended",
        "--steps",
        "2",
        "--width",
        "16",
        "--height",
        "16",
        "--max-attempts",
        "1",
        "-p",
        "one",
        "-p",
        "two",
    ]
    .map(str::to_owned);
    let broken_job = submit(&farm, None, &broken);
    wait_until(
        "the worker to be quarantined",
        Duration::from_secs(60),
        || async {
            stdout_json(&farm.cli(&["workers", "--json"]))[0]["quarantined_at"].is_number()
        },
    )
    .await;

    let browser = Browser::start().await;
    let page = browser.session().await;
    sign_in(&page, &url, &farm.admin_key).await;
    page.goto(&format!("{url}/workers")).await;
    assert_eq!(
        page.text("#workers tbody tr td .state").await,
        "quarantined",
        "the worker's state"
    );
    let why = page.text("#workers tbody tr td details summary").await;
    assert_eq!(why, "2 failures in a row");
    assert_accessible(&page).await;
    page.screenshot("workers").await;

    // The failed job lists each failed task with its whole error history.
    page.goto(&format!("{url}/jobs/{broken_job}")).await;
    let failed = page
        .eval("return [...document.querySelectorAll('#failed .failed-task td.message')].map(c => c.textContent)")
        .await;
    let failed = failed.as_array().expect("messages");
    assert_eq!(failed.len(), 2, "one attempt each: {failed:?}");
    for message in failed {
        assert!(
            message
                .as_str()
                .is_some_and(|m| m.contains("loading the model")),
            "{message}"
        );
    }
    assert!(
        page.text("form[action$='/retry'] button")
            .await
            .starts_with("Retry")
    );
    page.click("form[action$='/retry'] button").await;
    page.wait_true(
        "the failed tasks queued again",
        "const c = document.querySelector('#job [data-role=counts]'); return !!c && c.textContent.startsWith('2 queued')",
    )
    .await;
    let retried = farm.status(&broken_job);
    assert_eq!(retried["counts"]["queued"], 2, "the CLI agrees: {retried}");

    // With its only worker quarantined, a job waits; the queues say why.
    let job = submit(
        &farm,
        None,
        &prompts(&["a red circle", "a blue square", "a green triangle"]),
    );
    page.goto(&format!("{url}/queues")).await;
    assert_accessible(&page).await;
    assert_eq!(
        page.text("#depths tr[data-model='fresco-shapes'] [data-role=queued]")
            .await,
        "3"
    );
    let reason = page
        .text(&format!("#waiting tr[data-job-id='{job}'] td:last-child"))
        .await;
    assert!(reason.contains("quarantined"), "{reason}");

    page.goto(&format!("{url}/jobs/{job}")).await;
    page.click("form[action$='/pause'] button").await;
    page.wait_true(
        "the job paused",
        "const s = document.querySelector('#job [data-role=state]'); return !!s && s.textContent === 'paused'",
    )
    .await;
    assert_eq!(farm.status(&job)["paused"], true, "the CLI agrees");
    page.click("form[action$='/resume'] button").await;
    page.wait_true(
        "the job resumed",
        "return !!document.querySelector(\"form[action$='/pause']\")",
    )
    .await;
    assert_eq!(farm.status(&job)["paused"], false, "the CLI agrees");
    page.click("a[href$='/cancel']").await;
    assert_eq!(
        page.path().await,
        format!("/jobs/{job}/cancel"),
        "asked first"
    );
    page.click("form button.danger").await;
    page.wait_true(
        "the job page to show it cancelled",
        "const s = document.querySelector('#job [data-role=state]'); return !!s && s.textContent === 'cancelled'",
    )
    .await;
    let status = farm.status(&job);
    assert_eq!(status["counts"]["cancelled"], 3, "{status}");
    assert_eq!(status["counts"]["queued"], 0, "{status}");
    assert_eq!(status["finished"], true, "{status}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_signs_in_and_sees_only_its_own_jobs() {
    let (farm, url) = farm_with_dashboard(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let key_b = farm.client_key("team-b", "submitter");
    // A's job is large: 100,000 tasks (one prompt, a sweep of seeds).
    let job_a = submit(
        &farm,
        None,
        &[
            prompts(&["a red circle"]),
            vec!["--seeds".into(), "1-100000".into()],
        ]
        .concat(),
    );
    let job_b = submit(&farm, Some(&key_b), &prompts(&["a blue square"]));

    let browser = Browser::start().await;
    let page = browser.session().await;
    page.goto(&format!("{url}/jobs/{job_b}")).await;
    assert_eq!(
        page.path().await,
        "/login",
        "no key: the sign-in form first"
    );
    assert_accessible(&page).await;
    page.fill("#key", "fresco_k_000000000000_not-a-real-secret")
        .await;
    page.click("form[action='/login'] button[type=submit]")
        .await;
    let refused = page.text("#login-error").await;
    assert!(
        !refused.is_empty(),
        "a wrong key is refused with the API's reason"
    );

    page.fill("#key", &key_b).await;
    page.click("form[action='/login'] button[type=submit]")
        .await;
    page.wait_true(
        "B's job page after signing in",
        &format!(
            "return location.pathname === '/jobs/{job_b}' && !!document.querySelector('#job')"
        ),
    )
    .await;
    page.goto(&format!("{url}/")).await;
    assert_eq!(
        listed(&page).await,
        serde_json::json!([job_b]),
        "only B's job"
    );
    page.goto(&format!("{url}/jobs/{job_a}")).await;
    assert_eq!(
        page.text("h1").await,
        "Not found",
        "A's job is hidden from B"
    );
    page.goto(&format!("{url}/?all_tenants=on")).await;
    assert_eq!(
        page.text("h1").await,
        "Not allowed",
        "every tenant's jobs are for admins"
    );
    page.goto(&format!("{url}/workers")).await;
    assert_eq!(
        page.text("h1").await,
        "Not allowed",
        "workers are for admins"
    );
    page.close().await;

    // A's 100,000-task job opens a page at a time.
    let page = browser.session().await;
    sign_in(&page, &url, &farm.admin_key).await;
    page.goto(&format!("{url}/jobs/{job_a}")).await;
    assert_eq!(
        page.text("#job [data-role=counts]").await,
        "100000 queued of 100000"
    );
    assert_eq!(
        page.eval("return document.querySelectorAll('#gallery li').length")
            .await,
        serde_json::json!(0)
    );
    page.goto(&format!("{url}/")).await;
    assert_eq!(
        listed(&page).await,
        serde_json::json!([job_a]),
        "its own tenant's"
    );
    page.click("#all_tenants").await;
    page.click("form.filters button[type=submit]").await;
    page.wait_true(
        "every tenant's jobs",
        "return location.search.includes('all_tenants=on')",
    )
    .await;
    assert_eq!(
        listed(&page).await,
        serde_json::json!([job_b, job_a]),
        "an admin sees all"
    );
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresco_dev_serves_the_dashboard_without_a_sign_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (grpc, http) = (free_port(), free_port());
    let _dev = Proc::spawn(
        "fresco dev",
        binary("fresco")
            .args(["dev", "--workers", "1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let url = format!("http://127.0.0.1:{http}");
    wait_for_dashboard(&url).await;
    let browser = Browser::start().await;
    let page = browser.session().await;
    page.goto(&format!("{url}/")).await;
    assert_eq!(page.path().await, "/", "no sign-in without keys");
    assert_eq!(page.text("h1").await, "Jobs");
    let signout = page
        .eval("return !!document.querySelector('form.signout')")
        .await;
    assert_eq!(signout, serde_json::json!(false), "nothing to sign out of");
    page.close().await;
}
