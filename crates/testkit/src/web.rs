//! A browser without a screen, for tests of server-rendered pages (the portal, an OpenID
//! provider's login): keeps cookies as a browser would, follows no redirect by itself, sends
//! forms URL-encoded, and finds forms' hidden fields in the HTML.

use std::collections::BTreeMap;

/// One answer: status, the `Location` of a redirect, the headers, the body as text.
#[derive(Debug, Clone)]
pub struct WebPage {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl WebPage {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` of the answer, as sent.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The value of the first `<input name="{name}" … value="…">` (attributes as maud and most
    /// servers write them: `name` before `value`).
    pub fn input(&self, name: &str) -> Option<String> {
        input_value(&self.body, name)
    }
}

/// See [`WebPage::input`].
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_end = html[at..].find('>')? + at;
    let tag = &html[at..tag_end];
    let start = tag.find("value=\"")? + "value=\"".len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A cookie-keeping client for one site (`base`, e.g. `http://127.0.0.1:8040`).
#[derive(Debug, Clone)]
pub struct WebClient {
    http: reqwest::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
    /// `Accept-Language` sent with every request, if any.
    pub accept_language: Option<String>,
}

impl WebClient {
    pub fn new(base: &str) -> Self {
        let http = crate::client_with(
            openwarn_mtls::http_client_tls(&[], None).expect("a TLS configuration"),
            reqwest::redirect::Policy::none(),
        );
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
            accept_language: None,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&mut self, path: &str) -> WebPage {
        let request = self.http.get(self.url(path));
        self.send(request).await
    }

    /// Posts `form` URL-encoded.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> WebPage {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> WebPage {
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(reqwest::header::COOKIE, header);
        }
        if let Some(lang) = &self.accept_language {
            request = request.header(reqwest::header::ACCEPT_LANGUAGE, lang);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        let page = WebPage {
            status,
            location,
            headers,
            body,
        };
        self.keep_cookies(&page);
        page
    }

    fn keep_cookies(&mut self, page: &WebPage) {
        for set in page.set_cookies() {
            let (pair, attributes) = set.split_once(';').unwrap_or((&set, ""));
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let attributes = attributes.to_ascii_lowercase();
            if value.trim().is_empty()
                || attributes.contains("expires=thu, 01 jan 1970")
                || attributes.contains("max-age=0")
            {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// Follows redirects from `page` on this site (GET), at most 10; returns the final page.
    pub async fn follow(&mut self, mut page: WebPage) -> WebPage {
        for _ in 0..10 {
            match (&page.status, page.location.clone()) {
                (300..=399, Some(location)) => page = self.get(&location).await,
                _ => return page,
            }
        }
        page
    }
}

/// Percent-encoding of a form value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_inputs_are_found_and_unescaped() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&amp;b"><input name="secret" type="hidden" value="XYZ"></form>"#;
        assert_eq!(input_value(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(input_value(html, "secret").as_deref(), Some("XYZ"));
        assert_eq!(input_value(html, "other"), None);
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
