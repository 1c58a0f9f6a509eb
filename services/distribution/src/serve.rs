//! Embedded mode: the published tree over HTTP (what the CDN does in production), with the
//! content type, ETag, Last-Modified, Cache-Control and byte ranges a static file server sends.
//!
//! A tree in a local directory is served from its files (open, stat, read on the worker thread,
//! as nginx does): conditional requests (`If-None-Match`, `If-Modified-Since` → 304), `HEAD` and
//! `Range` (206/416) come from actix-files. A tree in an object store is read through it.

use crate::tree::{Kind, LOCAL_OBJECT, Tree};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use openwarn_bootstrap::http::ApiError;
use openwarn_bootstrap::lifecycle::Routes;
use std::path::PathBuf;

/// Files below this size are read on the worker thread (a tree's objects are at most a few
/// MiB; a thread-pool hop per chunk costs more than the read).
const SYNC_READ_BELOW: u64 = 16 << 20;

pub fn routes(tree: Tree) -> Routes {
    let tree = web::Data::new(tree);
    Routes::new(move |config| {
        config
            .app_data(tree.clone())
            .default_service(web::to(serve));
    })
}

/// A CDN path: `version/…`, plain segments only.
fn valid(path: &str) -> bool {
    path.starts_with("version/")
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg != LOCAL_OBJECT
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

async fn serve(tree: web::Data<Tree>, request: HttpRequest) -> HttpResponse {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            .error_response();
    }
    let path = request.path().trim_start_matches('/');
    if !valid(path) {
        return ApiError::not_found().error_response();
    }
    let mut response = match tree.local_dir() {
        Some(dir) => from_file(dir.join(path).join(LOCAL_OBJECT), path, &request),
        None => from_store(&tree, path, &request).await,
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(Kind::of(path).cache_control()),
        );
    }
    response
}

fn media_type(path: &str) -> actix_web::mime::Mime {
    Kind::content_type(path)
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM)
}

fn from_file(file: PathBuf, path: &str, request: &HttpRequest) -> HttpResponse {
    match actix_files::NamedFile::open(&file) {
        Ok(named) => named
            .set_content_type(media_type(path))
            .disable_content_disposition()
            .read_mode_threshold(SYNC_READ_BELOW)
            .into_response(request),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ApiError::not_found().error_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "published tree unreadable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").error_response()
        }
    }
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
        for bad in [
            "",
            "etc/passwd",
            "version/../x",
            "version//v1",
            "version/v1/_object",
            "version/v1/a%2Fb",
            "version/v1/.hidden",
        ] {
            assert!(!valid(bad), "{bad}");
        }
    }
}
