//! The description of the app gateway: the four routes phones call, and the answers the proxy
//! gives itself. What a backend answers is described by the backend (verification's and
//! submission's `/openapi.json`); the proxy cannot link them (services never link each other),
//! so each operation points there.

use crate::gateway::{Limits, Upstream, routes};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder,
    Required, ResponseBuilder,
};

/// The answers of the proxy itself, on every route: status, `error` reason and when.
const OWN_ANSWERS: [(&str, &str); 6] = [
    (
        "400",
        "`unreadable_body` or `invalid_request`: the request could not be read",
    ),
    ("405", "`method_not_allowed`: only POST"),
    (
        "408",
        "`request_timeout`: headers and body not received within the read timeout",
    ),
    ("413", "`payload_too_large`: body over the route's cap"),
    (
        "429",
        "`rate_limited`: too many requests from this network; `Retry-After` says when to retry",
    ),
    (
        "503",
        "`dependency_unavailable`: the backend did not answer",
    ),
];

fn header(name: &str, required: bool, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(Object::with_type(Type::String)))
        .build()
}

/// The gateway's description (served at `/openapi.json` on the proxy's admin port).
pub fn api(limits: &Limits) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in routes(limits) {
        let template = route
            .template
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (backend, media_type) = match route.upstream {
            Upstream::Verification => ("verification", "application/json"),
            Upstream::Submission => ("submission", "application/x-protobuf"),
        };
        let mut operation = OperationBuilder::new()
            .summary(Some(format!(
                "Forwarded to {backend} (its /openapi.json describes the request and answers)"
            )))
            .parameter(header(
                "cwa-fake",
                route.upstream == Upstream::Submission,
                "`0`: a real request; anything else: a fake, answered by the proxy itself like a \
                 real success (status, body length, fields and latency), never forwarded. \
                 Required on the upload (400 `missing_fake_header` without it, as in CWA)",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content(media_type, ContentBuilder::new().build())
                    .description(Some(format!("At most {} bytes", route.max_body)))
                    .build(),
            ));
        if route.upstream == Upstream::Submission {
            operation = operation.parameter(header("cwa-authorization", true, "The TAN"));
        }
        operation = operation.response(
            template.status.as_str(),
            ResponseBuilder::new().description(format!("Success, as {backend} answers it")),
        );
        for (status, description) in OWN_ANSWERS {
            operation = operation.response(status, ResponseBuilder::new().description(description));
        }
        paths = paths.path(
            route.path,
            PathItem::new(HttpMethod::Post, operation.build()),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("OpenWarn proxy: the app gateway")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The only door phones use for uploads and tests: it routes four paths, \
                     forwards an allow-list of headers, reads bodies under caps, rate-limits \
                     per network without keeping addresses and answers fake requests itself. \
                     Every answer on these routes (success, error, fake, the proxy's own) has a \
                     JSON body of one length, padded with `responsePadding`: only the status \
                     line tells them apart. Any other path is 404 `not_found`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "unit test")]

    use super::*;

    #[test]
    fn every_route_is_described_with_the_proxys_own_answers() {
        let limits = Limits {
            max_submission_bytes: 100_000,
            max_verification_bytes: 10_000,
            read_timeout: std::time::Duration::from_secs(10),
            upstream_timeout: std::time::Duration::from_secs(10),
            reservoir_size: 1,
            fake_seed: Some(1),
            verification_response_length: 320,
        };
        let api = serde_json::to_value(api(&limits)).unwrap();
        let paths = api["paths"].as_object().unwrap();
        assert_eq!(paths.len(), routes(&limits).len());
        for route in routes(&limits) {
            let operation = &paths[route.path]["post"];
            for (status, _) in OWN_ANSWERS {
                assert!(
                    operation["responses"][status].is_object(),
                    "{} {status}",
                    route.path
                );
            }
            let success = route.template.lock().unwrap().status.as_u16().to_string();
            assert!(
                operation["responses"][&success].is_object(),
                "{}",
                route.path
            );
        }
        assert!(
            paths["/version/v1/diagnosis-keys"]["post"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "cwa-authorization" && p["required"] == true)
        );
    }
}
