//! The portal in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over W3C WebDriver as a person uses it: fields found by their labels, buttons and links
//! by their text. An administrator enrols with a TOTP authenticator and creates an officer; the
//! officer enrols in a second browser, signs in and issues a teleTAN; a phone registers that
//! teleTAN through the proxy, gets a TAN and uploads keys that submission then streams; the
//! administrator finds the issue in the audit log. Every page passes an axe-core audit (WCAG 2.1
//! A/AA and best practices) in the browser, and the sign-in page's focus order is checked with the
//! Tab key.
//!
//! Needs `chromium`, `chromedriver` and `tests/browser/node_modules/axe-core` (`npm ci --prefix
//! tests/browser`): skipped without them, failed under `CI=true` (`.ci/run` installs them). With
//! `OPENWARN_SCREENSHOTS=<dir>` the sign-in, issued and audit pages are saved there as PNG (how
//! docs/screenshots/ was made).
//!
//! The WebDriver client is the few commands below over the workspace's reqwest: fantoccini would
//! bring the `webdriver` crate (MPL-2.0, outside deny.toml's licences) and a second generation of
//! icu, thiserror and cookie.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use base64::Engine as _;
use openwarn_e2e::payload;
use openwarn_e2e::portal::{PASSWORD, PortalStack, totp_code};
use openwarn_protocol::Message;
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/browser/node_modules/axe-core/axe.min.js"
);
/// How long a page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(20);
/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's code of the Tab key.
const TAB: &str = "\u{E004}";

/// axe-core's source, or `None` (skip) when a tool is missing; under `CI=true` that fails.
fn tools() -> Option<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push("Chromium at /usr/bin/chromium (apt-get install chromium)");
    }
    let driver = Command::new(CHROMEDRIVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !driver.is_ok_and(|s| s.success()) {
        missing.push("chromedriver (apt-get install chromium-driver)");
    }
    let axe = std::fs::read_to_string(AXE).ok();
    if axe.is_none() {
        missing.push("axe-core (npm ci --prefix tests/browser)");
    }
    if missing.is_empty() {
        return axe;
    }
    let why = format!("the browser test needs {}", missing.join(", "));
    assert!(
        !openwarn_testkit::ci(),
        "CI=true but {why}: .ci/run installs them"
    );
    eprintln!("skipped: {why}");
    None
}

#[allow(
    clippy::disallowed_methods,
    reason = "test switch: where to save screenshots for docs/, not a service setting"
)]
fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("OPENWARN_SCREENSHOTS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// chromedriver on a free loopback port, in its own process group with every Chromium it starts:
/// the group is ended on drop, also when the test fails half-way.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start() -> Self {
        let port = openwarn_testkit::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--log-level=SEVERE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: openwarn_testkit::http_client(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let status = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await;
            if let Ok(answer) = status
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver is not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser with a profile of its own (no cookies shared with another).
    async fn browser(&self) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-breakpad".into(),
            "--lang=en-US".into(),
            "--window-size=1280,900".into(),
            "--force-device-scale-factor=1".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {"intl.accept_languages": "en-US,en"},
            },
        }}});
        let answer: Value = self
            .http
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"));
        let browser = Browser {
            http: self.http.clone(),
            session: format!("{}/session/{id}", self.url),
            _profile: profile,
        };
        browser
            .cmd(
                Method::POST,
                "/timeouts",
                json!({"script": 60_000, "pageLoad": 30_000}),
            )
            .await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session (a window and its cookies).
struct Browser {
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn try_cmd(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("chromedriver answers");
        let ok = answer.status().is_success();
        let mut answer = answer.json::<Value>().await.expect("a JSON answer");
        let value = answer["value"].take();
        if ok { Ok(value) } else { Err(value) }
    }

    async fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        let body = (method != Method::GET && method != Method::DELETE).then_some(body);
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(Method::GET, path, Value::Null).await
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn find(&self, xpath: &str) -> Option<String> {
        let found = self
            .try_cmd(
                Method::POST,
                "/element",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// The element at `xpath`, once the page shows it.
    async fn wait(&self, xpath: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(element) = self.find(xpath).await {
                return element;
            }
            if Instant::now() > deadline {
                let url = self.get("/url").await;
                let text = self
                    .execute(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await;
                panic!("no {xpath} within {WAIT:?} on {url}:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the page whose heading is `title`.
    async fn wait_page(&self, title: &str) {
        self.wait(&format!("//h1[normalize-space()={}]", quote(title)))
            .await;
    }

    async fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn property(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/property/{name}"))
            .await
    }

    async fn click(&self, element: &str) {
        self.cmd(
            Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    /// The form field labelled `label` (through the label's `for`).
    async fn field(&self, label: &str) -> String {
        let label_element = self
            .wait(&format!("//label[normalize-space()={}]", quote(label)))
            .await;
        let id = self
            .attribute(&label_element, "for")
            .await
            .unwrap_or_else(|| panic!("the label {label:?} names no field"));
        self.wait(&format!("//*[@id={}]", quote(&id))).await
    }

    /// Types `value` into the field labelled `label`.
    async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        self.cmd(
            Method::POST,
            &format!("/element/{field}/value"),
            json!({ "text": value }),
        )
        .await;
    }

    async fn press(&self, button: &str) {
        let button = self
            .wait(&format!("//button[normalize-space()={}]", quote(button)))
            .await;
        self.click(&button).await;
    }

    async fn execute(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    async fn tab(&self) {
        self.cmd(
            Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": TAB},
                {"type": "keyUp", "value": TAB},
            ]}]}),
        )
        .await;
    }

    /// The focused element as `tag#id` (a field) or `tag: text`.
    async fn focused(&self) -> String {
        let described = self
            .execute(
                "const e = document.activeElement;
                 if (!e || e === document.body) return 'body';
                 const tag = e.tagName.toLowerCase();
                 return e.id && tag !== 'main' ? tag + '#' + e.id : tag + ': ' + e.textContent.trim();",
                json!([]),
            )
            .await;
        described.as_str().unwrap_or_default().to_owned()
    }

    async fn screenshot(&self, dir: Option<&Path>, name: &str) {
        let Some(dir) = dir else { return };
        let png = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a Base64 screenshot"))
            .expect("Base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(dir).expect("the screenshot directory");
        std::fs::write(dir.join(name), png).expect("write the screenshot");
        println!("screenshot: {}", dir.join(name).display());
    }

    async fn quit(self) {
        self.cmd(Method::DELETE, "", Value::Null).await;
    }
}

/// `s` as an XPath string literal.
fn quote(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

/// Runs axe-core on the page and fails with every violation (rule, impact, help, elements).
/// axe is injected over WebDriver: script execution through the driver is not subject to the
/// page's Content-Security-Policy, which forbids every script of the page itself.
async fn audit(browser: &Browser, axe: &str, page: &str) {
    let loaded = browser
        .execute(&format!("{axe}\n;return typeof window.axe;"), json!([]))
        .await;
    assert_eq!(loaded, "object", "axe-core loads into {page}");
    let results = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})
               .then(r => done({
                 passes: r.passes.length,
                 incomplete: r.incomplete.map(v => v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.html).join(', ') + ')'),
                 violations: r.violations.map(v => ({
                   id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                   nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary})),
                 })),
               }))
               .catch(e => done({error: String(e)}));",
            json!([]),
        )
        .await;
    assert!(
        results["error"].is_null(),
        "axe failed on {page}: {results}"
    );
    let violations = results["violations"].as_array().expect("violations");
    println!(
        "axe {page}: {} rules pass, {} violations, needs review: {}",
        results["passes"],
        violations.len(),
        results["incomplete"]
    );
    let report: Vec<String> = violations
        .iter()
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("    {} {}\n      {}", n["target"], n["html"], n["summary"]))
                .collect();
            format!(
                "  {} ({}): {} <{}>\n{}",
                v["id"],
                v["impact"],
                v["help"],
                v["url"],
                nodes.join("\n")
            )
        })
        .collect();
    assert!(
        violations.is_empty(),
        "accessibility violations on the {page} page:\n{}",
        report.join("\n")
    );
}

/// An authenticator app: RFC 6238 codes of the secret read off the enrolment page. Each TOTP step
/// signs an account in once, so every code is for a step not used yet.
struct Authenticator {
    secret: String,
    last_step: i64,
}

impl Authenticator {
    fn enrol(secret: String) -> (Self, String) {
        let step = openwarn_bootstrap::lifecycle::unix_now() / 30;
        let code = totp_code(&secret, step * 30);
        (
            Self {
                secret,
                last_step: step,
            },
            code,
        )
    }

    /// The current step's code, or the next step's (one step of skew is accepted); waits for the
    /// clock only when both were used.
    async fn next_code(&mut self) -> String {
        loop {
            let now = openwarn_bootstrap::lifecycle::unix_now();
            for step in [now / 30, now / 30 + 1] {
                if step > self.last_step {
                    self.last_step = step;
                    return totp_code(&self.secret, step * 30);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Opens an enrolment link, sets the password, adds the key to an authenticator and answers with
/// its code; ends on the sign-in page.
async fn enrol(browser: &Browser, link: &str, axe: &str) -> Authenticator {
    browser.goto(link).await;
    browser.wait_page("Set up your account").await;
    audit(browser, axe, "enrolment").await;
    // The key as a person types it into their app (shown in groups), the same as the form's.
    let shown = browser
        .wait("//figcaption[contains(., 'Key for manual entry')]/code")
        .await;
    let key: String = browser
        .text(&shown)
        .await
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let hidden = browser.wait("//input[@name='secret']").await;
    assert_eq!(browser.property(&hidden, "value").await, key.as_str());
    let (authenticator, code) = Authenticator::enrol(key);
    browser.fill("Password", PASSWORD).await;
    browser.fill("Repeat the password", PASSWORD).await;
    browser.fill("One-time code", &code).await;
    browser.press("Finish setting up").await;
    browser.wait_page("Sign in").await;
    browser
        .wait("//p[@role='status'][starts-with(normalize-space(), 'Your account is ready')]")
        .await;
    authenticator
}

async fn sign_in(browser: &Browser, username: &str, authenticator: &mut Authenticator) {
    browser.wait_page("Sign in").await;
    browser.fill("Username", username).await;
    browser.fill("Password", PASSWORD).await;
    let code = authenticator.next_code().await;
    browser.fill("One-time code", &code).await;
    browser.press("Sign in").await;
}

/// Tab from the top of the sign-in page: skip link, language, the three fields, the button.
async fn focus_order(browser: &Browser, portal: &str) -> Vec<String> {
    browser.goto(&format!("{portal}/sign-in")).await;
    browser.wait_page("Sign in").await;
    assert_eq!(browser.focused().await, "body");
    let mut order = Vec::new();
    for _ in 0..6 {
        browser.tab().await;
        order.push(browser.focused().await);
        if order.len() == 1 {
            // The skip link, hidden off-screen until focused, is then in view.
            let left = browser
                .execute(
                    "return document.activeElement.getBoundingClientRect().left",
                    json!([]),
                )
                .await;
            assert!(left.as_f64().unwrap_or(-1.0) >= 0.0, "skip link at {left}");
        }
    }
    order
}

/// The page's Content-Security-Policy stops a script the page itself adds, while axe runs through
/// WebDriver: the audit does not need the policy loosened.
async fn page_scripts_are_blocked(browser: &Browser) {
    let ran = browser
        .execute(
            "const s = document.createElement('script');
             s.textContent = 'window.pageScriptRan = true';
             document.head.appendChild(s);
             return window.pageScriptRan === true;",
            json!([]),
        )
        .await;
    assert_eq!(ran, false, "the CSP lets an inline script run");
}

async fn the_whole_flow(driver: &Driver, stack: &PortalStack, axe: &str, shots: Option<&Path>) {
    let portal = stack.url();
    assert_eq!(portal, stack.public_url);

    // The first administrator enrols from create-admin's link and signs in.
    let admin_link = stack.create_admin("admin").await;
    let admin = driver.browser().await;
    let mut admin_app = enrol(&admin, &admin_link, axe).await;
    audit(&admin, axe, "sign-in (after enrolment)").await;
    let order = focus_order(&admin, &portal).await;
    println!("focus order on the sign-in page: {order:?}");
    assert_eq!(
        order,
        [
            "a: Skip to content",
            "a: Deutsch",
            "input#username",
            "input#password",
            "input#code",
            "button: Sign in"
        ]
    );
    admin.goto(&format!("{portal}/sign-in")).await;
    admin.wait_page("Sign in").await;
    audit(&admin, axe, "sign-in").await;
    page_scripts_are_blocked(&admin).await;
    admin.screenshot(shots, "portal-sign-in.png").await;
    sign_in(&admin, "admin", &mut admin_app).await;
    admin.wait_page("Accounts").await;
    audit(&admin, axe, "accounts").await;

    // They create an officer and read the enrolment link off the page.
    admin.fill("Username", "officer.one").await;
    admin.fill("Full name", "Olga Officer").await;
    let officer_role = admin.field("Officer (issues teleTANs)").await;
    admin.click(&officer_role).await;
    assert_eq!(admin.property(&officer_role, "checked").await, true);
    admin.press("Create account").await;
    let shown = admin
        .wait("//section[h2[starts-with(., 'One-time enrolment link for officer.one')]]//code")
        .await;
    let officer_link = admin.text(&shown).await;
    assert!(
        officer_link.starts_with(&format!("{}/enrol/", stack.public_url)),
        "{officer_link}"
    );
    audit(&admin, axe, "accounts (new enrolment link)").await;

    // The officer, in a browser of their own, enrols, signs in and issues a teleTAN.
    let officer = driver.browser().await;
    let mut officer_app = enrol(&officer, &officer_link, axe).await;
    sign_in(&officer, "officer.one", &mut officer_app).await;
    officer.wait_page("Issue a teleTAN").await;
    audit(&officer, axe, "issue").await;
    officer.press("Issue teleTAN").await;
    officer.wait_page("teleTAN issued").await;
    let shown = officer
        .wait("//p[@class='teletan']/span[@aria-hidden='true']")
        .await;
    let grouped = officer.text(&shown).await;
    let tele_tan: String = grouped.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(
        grouped.split_whitespace().count(),
        4,
        "{grouped:?} in groups"
    );
    assert!(
        tele_tan.len() == 10 && tele_tan.chars().all(|c| c.is_ascii_alphanumeric()),
        "{grouped:?}"
    );
    audit(&officer, axe, "issued").await;
    officer.screenshot(shots, "portal-issued.png").await;

    // A phone registers the teleTAN through the proxy, gets a TAN and uploads its keys.
    let phone = openwarn_testkit::http_client();
    let tan = stack.phone_gets_a_tan(&tele_tan).await;
    let upload = phone
        .post(stack.chain.proxy_url("diagnosis-keys"))
        .header("content-type", "application/x-protobuf")
        .header("cwa-authorization", tan)
        .header("cwa-fake", "0")
        .body(payload(7, 77).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status().as_u16(), 200, "the upload is accepted");
    let keys = stack.chain.streamed_keys().await;
    assert_eq!(keys.len(), 7, "submission streams the uploaded keys");
    assert!(keys.iter().all(|k| k.key_data[1] == 77));

    // The administrator finds the issue in the audit log (without the teleTAN itself).
    let audit_link = admin.wait("//nav//a[normalize-space()='Audit log']").await;
    admin.click(&audit_link).await;
    admin.wait_page("Audit log").await;
    admin
        .wait("//tbody/tr[td/code[normalize-space()='teletan_issued']][td[contains(., 'officer.one')]]")
        .await;
    let source = admin.get("/source").await;
    assert!(!source.as_str().unwrap_or_default().contains(&tele_tan));
    audit(&admin, axe, "audit").await;
    admin.screenshot(shots, "portal-audit.png").await;

    officer.quit().await;
    admin.quit().await;
}

#[tokio::test]
async fn officers_and_administrators_use_the_portal_in_a_browser() {
    let Some(axe) = tools() else { return };
    let shots = screenshot_dir();
    let driver = Driver::start().await;
    for (i, (db, kv)) in openwarn_testkit::backends().into_iter().enumerate() {
        println!("backend: {}", db.label());
        let stack = PortalStack::start(&db, &kv, &[], &[]).await;
        let shots = shots.as_deref().filter(|_| i == 0);
        the_whole_flow(&driver, &stack, &axe, shots).await;
        stack.shutdown().await;
    }
}
