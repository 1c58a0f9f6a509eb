//! The description of the published tree as the embedded server (and, in production, the CDN)
//! serves it: what a phone downloads. The tree is served by path, not by handlers, so the
//! description is built here from the same rules the server applies ([`Kind`]).

use crate::tree::Kind;
use utoipa::openapi::path::{OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder,
    ResponseBuilder,
};

/// The published paths, with the example path that decides their kind.
const PATHS: [(&str, &str, &str); 9] = [
    ("/version", "The API versions, `[\"v1\"]`", "version"),
    (
        "/version/{version}",
        "The description of one API version: this OpenAPI document",
        "version/v1",
    ),
    (
        "/version/{version}/diagnosis-keys/country",
        "The origin country and the common package `EUR` (every country's keys), e.g. \
         `[\"DE\",\"EUR\"]`",
        "version/v1/diagnosis-keys/country",
    ),
    (
        "/version/{version}/diagnosis-keys/country/{country}/date",
        "The days with a package, e.g. `[\"2026-11-20\",\"2026-11-21\"]`",
        "version/v1/diagnosis-keys/country/DE/date",
    ),
    (
        "/version/{version}/diagnosis-keys/country/{country}/date/{date}",
        "The keys of one day: a signed export (zip of `export.bin` and `export.sig`)",
        "version/v1/diagnosis-keys/country/DE/date/2026-11-20",
    ),
    (
        "/version/{version}/diagnosis-keys/country/{country}/date/{date}/hour",
        "The hours of a day with a package, e.g. `[0,1,5]`",
        "version/v1/diagnosis-keys/country/DE/date/2026-11-20/hour",
    ),
    (
        "/version/{version}/diagnosis-keys/country/{country}/date/{date}/hour/{hour}",
        "The keys of one hour: a signed export",
        "version/v1/diagnosis-keys/country/DE/date/2026-11-20/hour/5",
    ),
    (
        "/version/{version}/configuration/country/{country}/app_config",
        "The app's configuration: a signed zip (`export.bin`, `export.sig`)",
        "version/v1/configuration/country/DE/app_config",
    ),
    (
        "/version/{version}/configuration/app_config",
        "The origin country's app configuration at CWA's country-less path (the same signed zip)",
        "version/v1/configuration/app_config",
    ),
];

fn parameter(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(utoipa::openapi::Required::True)
        .description(Some(description))
        .schema(Some(utoipa::openapi::schema::Object::with_type(
            utoipa::openapi::schema::Type::String,
        )))
        .build()
}

/// The tree's description (served at `/openapi.json` on distribution's admin port).
pub fn api() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (template, summary, example) in PATHS {
        let kind = Kind::of(example);
        let mut operation = OperationBuilder::new().summary(Some(summary));
        for (name, description) in [
            ("version", "`v1`"),
            (
                "country",
                "ISO 3166-1 alpha-2 code, e.g. `DE`, or `EUR` (the common package)",
            ),
            ("date", "`YYYY-MM-DD` (UTC)"),
            ("hour", "0 to 23 (UTC)"),
        ] {
            if template.contains(&format!("{{{name}}}")) {
                operation = operation.parameter(parameter(name, description));
            }
        }
        let ok = ResponseBuilder::new()
            .description(format!(
                "The object; `Cache-Control: {}`, with `ETag` and `Last-Modified` (conditional \
                 requests answer 304) and byte ranges (206)",
                kind.cache_control()
            ))
            .content(Kind::content_type(example), ContentBuilder::new().build())
            .build();
        operation = operation
            .response("200", ok)
            .response(
                "206",
                ResponseBuilder::new()
                    .description("The asked byte range (`Range: bytes=…`), with `Content-Range`"),
            )
            .response(
                "304",
                ResponseBuilder::new()
                    .description("Not modified (`If-None-Match`, `If-Modified-Since`)"),
            )
            .response(
                "404",
                ResponseBuilder::new().description("`not_found`: not published (yet, or any more)"),
            )
            .response(
                "416",
                ResponseBuilder::new().description("The asked range lies beyond the object"),
            )
            .response(
                "503",
                ResponseBuilder::new()
                    .description("`store_unavailable`: the tree cannot be read; retry later"),
            );
        paths = paths.path(template, PathItem::new(HttpMethod::Get, operation.build()));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("OpenWarn distribution: published tree")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "What phones download: signed key packages per day and hour and the app \
                     configuration, published every hour. In production a CDN serves the \
                     bucket; `openwarn up` and small deployments use the embedded server. \
                     Layout compatible with the Corona-Warn-App distribution (differences: \
                     docs/API-COMPATIBILITY.md).",
                ))
                .build(),
        )
        .paths(paths.build())
        .build()
}
