//! What the CWA-derived tests (tests/tests/cwa_*.rs) share: the ids a CWA app derives from a
//! test's QR code, and the app's and the lab's requests as CWA's clients send them.

use crate::{Chain, sha256_hex};
use serde_json::{Value, json};

/// The date-of-birth-bound id a CWA app sends as `keyDob` (cwa-app-android `DateOfBirthKey`):
/// `x` and the last 63 hex characters of the SHA-256 of the GUID followed by the date of birth
/// as `ddMMyyyy`.
pub fn date_of_birth_key(guid: &str, day: u32, month: u32, year: u32) -> String {
    let hash = sha256_hex(format!("{guid}{day:02}{month:02}{year:04}"));
    format!("x{}", &hash[1..])
}

/// An answer: status, body length and body (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub len: usize,
    pub body: Value,
}

impl Reply {
    /// The `error` reason, if any.
    pub fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }
}

impl Chain {
    /// The lab route `route` (`lab`, `quicktest` or `pocnat`) of test-result.
    pub fn lab_route_url(&self, route: &str) -> String {
        format!(
            "https://{}/api/v1/{route}/results",
            self.test_result_addr("http")
        )
    }

    /// Posts `body` to the lab route `route` as the allow-listed lab.
    pub async fn lab_post_to(&self, route: &str, body: &Value) -> Reply {
        let response = self
            .lab_client(Some("lab"))
            .post(self.lab_route_url(route))
            .json(body)
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    /// Posts `body` to the app endpoint `endpoint` of verification, as a real (not fake) request.
    pub async fn app_post(&self, endpoint: &str, body: &Value) -> Reply {
        let response = self
            .app
            .post(self.app_url(endpoint))
            .header("content-type", "application/json")
            .header("cwa-fake", "0")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    /// Registers `key` (a GUID hash), with `key_dob` if given; the answer.
    pub async fn register_guid(&self, key: &str, key_dob: Option<&str>) -> Reply {
        let mut body = json!({"key": key, "keyType": "GUID"});
        if let Some(dob) = key_dob {
            body["keyDob"] = dob.into();
        }
        self.app_post("registrationToken", &body).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    Reply {
        status,
        len: bytes.len(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cwa-app-android `DateOfBirthKeyTest`, test cases 1 and 2.
    #[test]
    fn date_of_birth_keys_are_the_cwa_apps() {
        assert_eq!(
            date_of_birth_key("E1277F-E1277F24-4AD2-40BC-AFF8-CBCCCD893E4B", 1, 1, 2000),
            "xfa760e171f000ef5a7f863ab180f6f6e8185c4890224550395281d839d85458"
        );
        assert_eq!(
            date_of_birth_key("F1EE0D-F1EE0D4D-4346-4B63-B9CF-1522D9200915", 7, 6, 1995),
            "x4a7788ef394bc7d52112014b127fe2bf142c51fe1bbb385214280e9db670193"
        );
    }
}
