//! Embedded mode: the published tree over HTTP (what the CDN does in production), with the
//! content type, ETag and Cache-Control a CDN would send.

use crate::tree::{Kind, Tree};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use openwarn_bootstrap::http::ApiError;

pub fn router(tree: Tree) -> Router {
    Router::new()
        .fallback(serve)
        .with_state(tree)
        .layer(axum::middleware::from_fn(
            openwarn_bootstrap::admin::track_http,
        ))
}

/// A CDN path: `version/…`, plain segments only.
fn valid(path: &str) -> bool {
    path.starts_with("version/")
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg != crate::tree::LOCAL_OBJECT
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

async fn serve(State(tree): State<Tree>, request: Request) -> Response {
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").into_response();
    }
    let path = request.uri().path().trim_start_matches('/');
    if !valid(path) {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found").into_response();
    }
    let object = match tree.get(path).await {
        Ok(Some(object)) => object,
        Ok(None) => return ApiError::new(StatusCode::NOT_FOUND, "not_found").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "object store unavailable");
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
                .into_response();
        }
    };
    let kind = Kind::of(path);
    let e_tag = object
        .e_tag
        .map(|t| format!("\"{}\"", t.trim_matches('"')))
        .and_then(|t| HeaderValue::from_str(&t).ok());
    let mut response = match (&e_tag, request.headers().get(header::IF_NONE_MATCH)) {
        (Some(tag), Some(asked)) if asked == tag || asked == "*" => {
            StatusCode::NOT_MODIFIED.into_response()
        }
        _ => (
            [(header::CONTENT_TYPE, Kind::content_type(path))],
            object.bytes,
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control()),
    );
    if let Some(tag) = e_tag {
        headers.insert(header::ETAG, tag);
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
