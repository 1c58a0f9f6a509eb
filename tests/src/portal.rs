//! The portal in front of the chain: verification (with test-result, submission and the proxy
//! behind it, for a phone to redeem what an officer issued), the portal calling verification
//! with its own certificate, and officers as cookie-keeping web clients that enrol with a real
//! TOTP authenticator (RFC 6238 codes computed from the secret the enrolment page shows).

use crate::Chain;
use openwarn_bootstrap::RunningService;
use openwarn_testkit::web::{WebClient, WebPage};
use openwarn_testkit::{TestDatabase, config};

/// The chain and a portal in front of verification.
pub struct PortalStack {
    pub chain: Chain,
    pub portal: Option<RunningService>,
    pub portal_db: TestDatabase,
    /// The portal's arguments (for commands such as `create-admin` on the same database).
    pub args: Vec<String>,
    pub public_url: String,
}

impl PortalStack {
    /// Starts the chain (verification gets `verification_extra`) and a portal on a fresh
    /// database of the same backend, with `portal_extra` added to its arguments.
    pub async fn start(
        backend: &TestDatabase,
        kv_url: &str,
        portal_extra: &[&str],
        verification_extra: &[&str],
    ) -> Self {
        // The public URL names the port, so the port is chosen before the portal binds it.
        let port = openwarn_testkit::free_port();
        Self::start_on(port, backend, kv_url, portal_extra, verification_extra).await
    }

    /// [`start`](Self::start) with the portal on `port` of 127.0.0.1 (public URL
    /// [`public_url_on(port)`](Self::public_url_on)), for a test that needs the portal's URLs
    /// before it starts, such as the OIDC redirect URI an OpenID provider is started with.
    pub async fn start_on(
        port: u16,
        backend: &TestDatabase,
        kv_url: &str,
        portal_extra: &[&str],
        verification_extra: &[&str],
    ) -> Self {
        let chain = Chain::start(backend, kv_url, verification_extra).await;
        let portal_db = backend.another();
        let public_url = Self::public_url_on(port);
        let mut args: Vec<String> = vec![
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            portal_db.url().to_owned(),
            "--verification-url".into(),
            format!("https://{}", chain.verification_addr("grpc")),
        ];
        args.extend(chain.pki.service_args("portal"));
        if !portal_extra.contains(&"--public-url") {
            args.extend(["--public-url".into(), public_url.clone()]);
        }
        args.extend(portal_extra.iter().map(|s| (*s).to_owned()));
        let portal = openwarn_portal::start(config(&args))
            .await
            .expect("portal starts");
        Self {
            chain,
            portal: Some(portal),
            portal_db,
            args,
            public_url,
        }
    }

    /// The public URL of a portal started on `port` ([`start_on`](Self::start_on)).
    pub fn public_url_on(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// Where the portal listens (may differ from the public URL in tests of `https://`).
    pub fn url(&self) -> String {
        format!(
            "http://{}",
            self.portal.as_ref().expect("portal runs").addr("http")
        )
    }

    pub fn admin_url(&self) -> String {
        format!(
            "http://{}",
            self.portal.as_ref().expect("portal runs").addr("admin")
        )
    }

    /// The audit log, oldest first: who, what, the detail.
    pub async fn audit_log(
        &self,
    ) -> Vec<(
        openwarn_portal::audit::Actor,
        openwarn_portal::audit::Action,
        Option<String>,
    )> {
        let db = openwarn_db::Database::open(self.portal_db.url(), 1)
            .await
            .expect("the portal's database");
        let mut entries = openwarn_portal::audit::AuditLog::new(db)
            .list(&openwarn_portal::audit::Filter {
                limit: 1000,
                ..openwarn_portal::audit::Filter::default()
            })
            .await
            .expect("the audit log");
        entries.reverse();
        entries
            .into_iter()
            .map(|e| (e.actor, e.action, e.detail))
            .collect()
    }

    /// A phone registers `tele_tan` through the proxy and asks for a TAN, as the app does; the
    /// TAN.
    pub async fn phone_gets_a_tan(&self, tele_tan: &str) -> String {
        let phone = openwarn_testkit::http_client();
        let mut answer = serde_json::Value::Null;
        for (endpoint, body) in [
            (
                "registrationToken",
                serde_json::json!({"key": tele_tan, "keyType": "TELETAN"}),
            ),
            ("tan", serde_json::Value::Null),
        ] {
            let body = if body.is_null() {
                serde_json::json!({"registrationToken": answer["registrationToken"]})
            } else {
                body
            };
            answer = phone
                .post(self.chain.proxy_url(endpoint))
                .header("cwa-fake", "0")
                .json(&body)
                .send()
                .await
                .expect("the proxy answers")
                .json()
                .await
                .expect("a JSON answer");
            assert!(
                answer.get("error").is_none(),
                "{endpoint} refused: {answer}"
            );
        }
        answer["tan"].as_str().expect("a TAN").to_owned()
    }

    /// Whether the audit log's hash chain verifies.
    pub async fn audit_is_intact(&self) -> bool {
        let db = openwarn_db::Database::open(self.portal_db.url(), 1)
            .await
            .expect("the portal's database");
        openwarn_portal::audit::AuditLog::new(db)
            .verify()
            .await
            .expect("the audit log reads")
            .is_intact()
    }

    /// The portal's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        openwarn_testkit::http_client()
            .get(format!("{}/metrics", self.admin_url()))
            .send()
            .await
            .expect("the admin port answers")
            .text()
            .await
            .expect("metrics as text")
    }

    pub fn client(&self) -> WebClient {
        WebClient::new(&self.url())
    }

    /// `create-admin` on the portal's database: the administrator's enrolment link.
    pub async fn create_admin(&self, username: &str) -> String {
        let mut args = self.args.clone();
        args.extend(["--username".into(), username.to_owned()]);
        let args: openwarn_portal::CreateAdminArgs = config(&args);
        openwarn_portal::create_admin(&args)
            .await
            .expect("create-admin")
            .expect("a link")
    }

    pub async fn shutdown(mut self) {
        if let Some(portal) = self.portal.take() {
            portal.shutdown().await.expect("portal stops");
        }
        self.chain.shutdown().await;
    }
}

/// The six-digit TOTP code of `secret` (Base32) at `unix` seconds.
pub fn totp_code(secret: &str, unix: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("a Base32 secret");
    totp_rs::Builder::new()
        .with_secret(secret)
        .build_noncompliant()
        .generate(u64::try_from(unix).expect("after 1970"))
        .to_string()
}

/// Someone with an enrolled account: their browser and their authenticator.
pub struct Person {
    pub web: WebClient,
    pub username: String,
    pub password: String,
    pub secret: String,
    /// The last TOTP step a code was used for (each step signs in once).
    pub last_step: i64,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl Person {
    /// Opens the enrolment `link`, sets `PASSWORD`, reads the TOTP secret off the page and
    /// answers with the current code. Panics unless the portal sends them to sign in.
    pub async fn enrol(stack: &PortalStack, link: &str, username: &str) -> Self {
        let mut web = stack.client();
        let path = link
            .strip_prefix(&stack.public_url)
            .expect("a link to this portal");
        let page = web.get(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let secret = page.input("secret").expect("the TOTP secret on the page");
        let csrf = page.input("csrf").expect("a CSRF field");
        let now = openwarn_bootstrap::lifecycle::unix_now();
        let code = totp_code(&secret, now);
        let page = web
            .post(
                path,
                &[
                    ("csrf", &csrf),
                    ("secret", &secret),
                    ("password", PASSWORD),
                    ("password2", PASSWORD),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(
            (page.status, page.location.as_deref()),
            (303, Some("/sign-in?enrolled=1")),
            "{}",
            page.body
        );
        Self {
            web,
            username: username.to_owned(),
            password: PASSWORD.to_owned(),
            secret,
            last_step: now / 30,
        }
    }

    /// A code for a step not used yet: the current one, or the next (one step of skew is
    /// accepted), waiting for the clock only when both were used.
    pub async fn next_code(&mut self) -> String {
        loop {
            let now = openwarn_bootstrap::lifecycle::unix_now();
            for step in [now / 30, now / 30 + 1] {
                if step > self.last_step {
                    self.last_step = step;
                    return totp_code(&self.secret, step * 30);
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Submits the sign-in form with `password` and `code`; the answer (not followed).
    pub async fn sign_in_with(&mut self, password: &str, code: &str) -> WebPage {
        // As from a browser without a session (a signed-in one is sent past the form).
        self.web.cookies.remove(openwarn_portal::SESSION_COOKIE);
        let page = self.web.get("/sign-in").await;
        let csrf = page
            .input("csrf")
            .expect("a CSRF field on the sign-in page");
        let username = self.username.clone();
        self.web
            .post(
                "/sign-in",
                &[
                    ("csrf", &csrf),
                    ("username", &username),
                    ("password", password),
                    ("code", code),
                ],
            )
            .await
    }

    /// Signs in with the right password and a fresh code; the start page it lands on.
    pub async fn sign_in(&mut self) -> WebPage {
        let code = self.next_code().await;
        let password = self.password.clone();
        let page = self.sign_in_with(&password, &code).await;
        assert_eq!(page.status, 303, "sign-in refused: {}", page.body);
        self.web.follow(page).await
    }

    /// The CSRF token of the session (from any page with a form).
    pub async fn csrf(&mut self, path: &str) -> String {
        self.web
            .get(path)
            .await
            .input("csrf")
            .expect("a CSRF field")
    }
}

/// An administrator creates `username` with `role` (`officer`/`admin`); the enrolment link the
/// page shows.
pub async fn create_account(admin: &mut Person, username: &str, role: &str) -> String {
    let csrf = admin.csrf("/admin/accounts").await;
    let page = admin
        .web
        .post(
            "/admin/accounts",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("display_name", &format!("Officer {username}")),
                ("role", role),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    enrolment_link(&page.body).expect("an enrolment link on the page")
}

/// The enrolment link shown on an accounts page.
pub fn enrolment_link(html: &str) -> Option<String> {
    let start = html.find("<code class=\"url\">")? + "<code class=\"url\">".len();
    let end = html[start..].find('<')? + start;
    Some(html[start..end].to_owned())
}

/// The teleTAN shown on the issued page (its groups joined; the characters spelled out for
/// screen readers are left aside).
pub fn shown_tele_tan(html: &str) -> Option<String> {
    let start = html.find("<p class=\"teletan\"")?;
    let start = html[start..].find("<span aria-hidden=\"true\">")? + start;
    let end = html[start..].find("</p>")? + start;
    let text: String = html[start..end]
        .split('<')
        .filter_map(|part| part.split_once('>').map(|(_, text)| text))
        .collect();
    let tele_tan: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    (tele_tan.len() == 10).then_some(tele_tan)
}

/// An administrator enrolled from `create-admin`'s link, and an officer they created, enrolled
/// and signed in.
pub async fn admin_and_officer(stack: &PortalStack) -> (Person, Person) {
    let link = stack.create_admin("admin").await;
    let mut admin = Person::enrol(stack, &link, "admin").await;
    let page = admin.sign_in().await;
    assert!(page.body.contains("/admin/accounts"), "{}", page.body);
    let link = create_account(&mut admin, "officer.one", "officer").await;
    let mut officer = Person::enrol(stack, &link, "officer.one").await;
    let page = officer.sign_in().await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("action=\"/issue\""), "{}", page.body);
    (admin, officer)
}

/// The officer presses "Issue teleTAN".
pub async fn issue(officer: &mut Person) -> WebPage {
    let csrf = officer.csrf("/issue").await;
    officer.web.post("/issue", &[("csrf", &csrf)]).await
}

/// Where a page that moves on by itself (`<meta http-equiv="refresh" content="0;url=…">`) sends
/// the browser.
pub fn continues_to(page: &WebPage) -> Option<&str> {
    let at = page.body.find("http-equiv=\"refresh\"")?;
    let rest = &page.body[at..];
    let start = rest.find("url=")? + "url=".len();
    let end = rest[start..].find('"')? + start;
    Some(&rest[start..end])
}
