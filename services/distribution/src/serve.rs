//! Embedded mode: the published tree over HTTP (what the CDN does in production), with the
//! content type, ETag, Last-Modified, Cache-Control and byte ranges a static file server sends.
//!
//! A tree in a local directory is served from its files, kept in memory while unchanged
//! ([`LocalFiles`]: one `stat` per request, conditional requests, ranges, `HEAD`). A tree in an
//! object store is read through it.

use crate::files::LocalFiles;
use crate::tree::{Kind, LOCAL_OBJECT, Tree};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use openwarn_bootstrap::http::ApiError;
use openwarn_bootstrap::lifecycle::Routes;

/// How much of a local tree is kept in memory. A tree holds 14 days of packages (a day's package
/// is at most `OPENWARN_MAX_KEYS_PER_PACKAGE` × 28 bytes); beyond the budget files are read
/// again from disk.
const MEMORY_BUDGET: usize = 512 << 20;

/// Where the objects come from.
enum Source {
    Local(LocalFiles),
    Store(Tree),
}

pub fn routes(tree: Tree) -> Routes {
    let source = web::Data::new(match tree.local_dir() {
        Some(dir) => Source::Local(LocalFiles::new(dir.to_owned(), MEMORY_BUDGET)),
        None => Source::Store(tree),
    });
    Routes::new(move |config| {
        config
            .app_data(source.clone())
            .default_service(web::to(serve));
    })
}

/// Longest CDN path served (the longest published is under 80 bytes): a longer one is a 404,
/// never a file-system error.
const MAX_PATH: usize = 200;
/// Longest segment of a CDN path.
const MAX_SEGMENT: usize = 32;

/// A CDN path: `version/…`, plain segments only, bounded in length.
fn valid(path: &str) -> bool {
    path.len() <= MAX_PATH
        && (path == "version" || path.starts_with("version/"))
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg.len() <= MAX_SEGMENT
                && seg != "."
                && seg != ".."
                && seg != LOCAL_OBJECT
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

async fn serve(source: web::Data<Source>, request: HttpRequest) -> HttpResponse {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            .error_response();
    }
    let path = request.path().trim_start_matches('/');
    if !valid(path) {
        return ApiError::not_found().error_response();
    }
    let mut response = match source.get_ref() {
        Source::Local(files) => match files
            .respond(path, Kind::content_type(path), &request)
            .await
        {
            Ok(Some(response)) => response,
            Ok(None) => ApiError::not_found().error_response(),
            Err(e) => {
                tracing::warn!(error = %e, "published tree unreadable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").error_response()
            }
        },
        Source::Store(tree) => from_store(tree, path, &request).await,
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(Kind::of(path).cache_control()),
        );
    }
    response
}

async fn from_store(tree: &Tree, path: &str, request: &HttpRequest) -> HttpResponse {
    let object = match tree.get(path).await {
        Ok(Some(object)) => object,
        Ok(None) => return ApiError::not_found().error_response(),
        Err(e) => {
            tracing::warn!(error = %e, "object store unavailable");
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
                .error_response();
        }
    };
    let e_tag = object
        .e_tag
        .map(|t| format!("\"{}\"", t.trim_matches('"')))
        .and_then(|t| HeaderValue::from_str(&t).ok());
    let asked = request.headers().get(header::IF_NONE_MATCH);
    let mut response = match (&e_tag, asked) {
        (Some(tag), Some(asked)) if asked == tag || asked == "*" => {
            HttpResponse::NotModified().finish()
        }
        _ => HttpResponse::Ok()
            .content_type(Kind::content_type(path))
            .body(object.bytes),
    };
    if let Some(tag) = e_tag {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn only_plain_cdn_paths_are_served() {
        assert!(valid(
            "version/v1/diagnosis-keys/country/DE/date/2026-11-23/hour/5"
        ));
        assert!(valid("version/v1/configuration/country/DE/app_config"));
        assert!(valid("version"));
        assert!(valid("version/v1"));
        for bad in [
            "",
            "etc/passwd",
            "versions",
            "version/",
            "version/../x",
            "version//v1",
            "version/v1/_object",
            "version/v1/a%2Fb",
            "version/v1/.hidden",
            format!(
                "version/v1/diagnosis-keys/country/DE/date/{}",
                "2".repeat(300)
            )
            .as_str(),
            format!("version/{}x", "v1/".repeat(70)).as_str(),
        ] {
            assert!(!valid(bad), "{bad}");
        }
    }
}
