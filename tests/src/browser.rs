//! A real headless Chromium for the dashboard's tests, driven over
//! WebDriver: Debian's `chromedriver` started on a free port for one test,
//! a fresh browser profile per session, and screenshots written under
//! `target/screenshots` (the README's come from there).
//!
//! `scripts/services.sh` installs both and names them in
//! `FRESCO_TEST_CHROMIUM` and `FRESCO_TEST_CHROMEDRIVER`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::{Proc, free_port, wait_until};

/// How long a page may take to show what a test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

fn program(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the dashboard's tests need Chromium and ChromeDriver \
         (scripts/services.sh installs them and sets {variable})"
    );
    path
}

/// A ChromeDriver serving one test.
pub struct Browser {
    driver: Proc,
    url: String,
    chromium: String,
}

impl Browser {
    /// Starts ChromeDriver and waits until it answers.
    pub async fn start() -> Self {
        let chromium = program("FRESCO_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("FRESCO_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Proc::spawn(
            "chromedriver",
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until("chromedriver to answer", Duration::from_secs(30), || {
            let status = status.clone();
            async move { reqwest::get(&status).await.is_ok() }
        })
        .await;
        Self {
            driver,
            url,
            chromium,
        }
    }

    /// A new browser window with an empty profile (no cookies).
    pub async fn session(&self) -> Page {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    "--no-first-run", "--disable-extensions",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver");
        Page { client }
    }

    /// The ChromeDriver's process id (for diagnostics).
    pub fn pid(&self) -> u32 {
        self.driver.pid()
    }
}

/// One browser window.
pub struct Page {
    pub client: Client,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("opening a page");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running {script:?} in the page: {e}"))
    }

    /// Waits until `script` returns `true` in the page.
    pub async fn wait_true(&self, what: &str, script: &str) {
        wait_until(what, PAGE_TIMEOUT, || async {
            self.client
                .execute(script, Vec::new())
                .await
                .is_ok_and(|v| v == json!(true))
        })
        .await;
    }

    /// The first element matching `css`, once there is one.
    async fn element(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// The text of the first element matching `css`, once there is one.
    pub async fn text(&self, css: &str) -> String {
        self.element(css)
            .await
            .text()
            .await
            .expect("an element's text")
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the field matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        self.element(css)
            .await
            .send_keys(text)
            .await
            .expect("typing into a field");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_owned()
    }

    /// Saves a screenshot of the window as `target/screenshots/NAME.png`;
    /// returns where.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("creating target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing a screenshot");
        path
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) {
        self.client.close().await.expect("closing the browser");
    }
}
