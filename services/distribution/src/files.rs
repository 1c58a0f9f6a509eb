//! The files of a local tree, kept in memory: each request checks the file's metadata (one
//! `stat`, as nginx does) and answers from memory while the file is unchanged; a replaced file
//! (indexes and the app configuration are replaced by rename) is read again. Conditional requests
//! (`If-None-Match`, `If-Modified-Since` → 304), `Range` (206, or 416 beyond the end; `If-Range`)
//! and `HEAD` are answered as a static file server answers them.

use crate::tree::LOCAL_OBJECT;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, EntityTag, HttpDate, IfNoneMatch, IfRange};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// What identifies one version of a file: a replaced file differs in at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: SystemTime,
    #[cfg(unix)]
    inode: u64,
}

impl Version {
    fn of(metadata: &std::fs::Metadata) -> std::io::Result<Self> {
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified()?,
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(metadata),
        })
    }
}

/// One file in memory, with the validators of its version.
#[derive(Debug)]
struct Cached {
    version: Version,
    bytes: web::Bytes,
    e_tag: EntityTag,
    last_modified: HttpDate,
}

impl Cached {
    fn new(version: Version, bytes: Vec<u8>) -> Self {
        let since = version
            .modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            version,
            bytes: web::Bytes::from(bytes),
            // nginx's form (modification time and length in hex), with the nanoseconds: an index
            // replaced twice within one second at the same length gets a new tag.
            e_tag: EntityTag::new_strong(format!(
                "{:x}.{:x}-{:x}",
                since.as_secs(),
                since.subsec_nanos(),
                version.len
            )),
            last_modified: HttpDate::from(version.modified),
        }
    }
}

/// The files of a local tree, in memory up to a budget.
#[derive(Debug)]
pub struct LocalFiles {
    dir: PathBuf,
    budget: usize,
    cache: RwLock<HashMap<String, Arc<Cached>>>,
}

impl LocalFiles {
    /// The tree in `dir`; at most `budget` bytes of files are kept in memory.
    pub fn new(dir: PathBuf, budget: usize) -> Self {
        Self {
            dir,
            budget,
            cache: RwLock::default(),
        }
    }

    /// The current version of the object at `path`: from memory if the file is unchanged.
    async fn get(&self, path: &str) -> std::io::Result<Option<Arc<Cached>>> {
        let file = self.dir.join(path).join(LOCAL_OBJECT);
        let version = match std::fs::metadata(&file) {
            Ok(metadata) if metadata.is_file() => Version::of(&metadata)?,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned();
        if let Some(cached) = cached.filter(|c| c.version == version) {
            return Ok(Some(cached));
        }
        // Read off the worker thread; metadata and contents from the same open file, so that
        // a file replaced meanwhile is read whole, as one version.
        let read = web::block(move || -> std::io::Result<Option<Cached>> {
            let mut opened = match std::fs::File::open(&file) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let version = Version::of(&opened.metadata()?)?;
            let mut bytes = Vec::with_capacity(usize::try_from(version.len).unwrap_or(0));
            opened.read_to_end(&mut bytes)?;
            Ok(Some(Cached::new(version, bytes)))
        })
        .await
        .map_err(std::io::Error::other)??;
        let Some(cached) = read.map(Arc::new) else {
            return Ok(None);
        };
        self.keep(path, &cached);
        Ok(Some(cached))
    }

    /// Keeps `cached` in memory when it fits the budget, making room by forgetting others.
    fn keep(&self, path: &str, cached: &Arc<Cached>) {
        let size = cached.bytes.len();
        if size > self.budget {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.remove(path);
        let mut used: usize = cache.values().map(|c| c.bytes.len()).sum();
        while used + size > self.budget {
            let Some(victim) = cache.keys().next().cloned() else {
                break;
            };
            if let Some(gone) = cache.remove(&victim) {
                used -= gone.bytes.len();
            }
        }
        cache.insert(path.to_owned(), cached.clone());
    }

    /// The answer to a GET or HEAD of the object at `path` (`None`: there is none).
    pub async fn respond(
        &self,
        path: &str,
        content_type: &'static str,
        request: &HttpRequest,
    ) -> std::io::Result<Option<HttpResponse>> {
        let Some(object) = self.get(path).await? else {
            return Ok(None);
        };
        let unchanged = not_modified(&object, request);
        let mut response = if unchanged {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header((header::ETAG, object.e_tag.to_string()))
            .insert_header((header::LAST_MODIFIED, object.last_modified.to_string()));
        if unchanged {
            return Ok(Some(response.finish()));
        }
        response.content_type(content_type);
        let len = object.bytes.len() as u64;
        let range = request
            .headers()
            .get(header::RANGE)
            .and_then(|r| r.to_str().ok())
            .filter(|_| if_range_holds(&object, request));
        // As nginx: a whole object says that ranges may be asked for; a part or a 304 does not.
        let whole = |mut response: actix_web::HttpResponseBuilder| {
            response
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .body(object.bytes.clone())
        };
        let Some(range) = range else {
            return Ok(Some(whole(response)));
        };
        // The first range of the header, as actix-files answers (nginx would send several as
        // multipart; phones and caches ask for one). A header that does not parse is ignored,
        // as nginx ignores it: the whole object.
        let first = match http_range::HttpRange::parse(range, len) {
            Ok(ranges) => ranges.first().copied(),
            Err(http_range::HttpRangeParseError::NoOverlap) => return Ok(Some(unsatisfiable(len))),
            Err(http_range::HttpRangeParseError::InvalidRange) => None,
        };
        let part = first.and_then(|r| {
            let start = usize::try_from(r.start).ok()?;
            let end = usize::try_from(r.start.checked_add(r.length)?).ok()?;
            object.bytes.get(start..end)?;
            Some((r, object.bytes.slice(start..end)))
        });
        let Some((r, part)) = part else {
            return Ok(Some(whole(response)));
        };
        response.status(StatusCode::PARTIAL_CONTENT).insert_header((
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{len}",
                r.start,
                (r.start + r.length).saturating_sub(1)
            ),
        ));
        Ok(Some(response.body(part)))
    }
}

fn unsatisfiable(len: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
        .finish()
}

/// Whether a conditional GET is answered 304: `If-None-Match` lists the tag (weak comparison)
/// or is `*`; without it, `If-Modified-Since` is not before the last modification (seconds).
fn not_modified(object: &Cached, request: &HttpRequest) -> bool {
    if request.headers().contains_key(header::IF_NONE_MATCH) {
        return match request.get_header::<IfNoneMatch>() {
            Some(IfNoneMatch::Any) => true,
            Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&object.e_tag)),
            None => false,
        };
    }
    match request.get_header::<header::IfModifiedSince>() {
        Some(header::IfModifiedSince(since)) => {
            seconds(SystemTime::from(object.last_modified)) <= seconds(SystemTime::from(since))
        }
        None => false,
    }
}

/// Whether a `Range` applies: no `If-Range`, or one naming this version (strong tag or date).
fn if_range_holds(object: &Cached, request: &HttpRequest) -> bool {
    if !request.headers().contains_key(header::IF_RANGE) {
        return true;
    }
    match request.get_header::<IfRange>() {
        Some(IfRange::EntityTag(tag)) => tag.strong_eq(&object.e_tag),
        Some(IfRange::Date(date)) => {
            seconds(SystemTime::from(object.last_modified)) == seconds(SystemTime::from(date))
        }
        None => false,
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "unit test")]

    use super::*;

    fn put(dir: &std::path::Path, path: &str, bytes: &[u8]) {
        let at = dir.join(path);
        std::fs::create_dir_all(&at).unwrap();
        // As object_store replaces a file: a complete temporary file renamed over it.
        let tmp = at.join("_object.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, at.join(LOCAL_OBJECT)).unwrap();
    }

    #[actix_web::test]
    async fn unchanged_files_come_from_memory_and_replaced_ones_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(dir.path().to_owned(), 1 << 20);
        put(dir.path(), "version/v1/x", b"[1]");
        let first = files.get("version/v1/x").await.unwrap().unwrap();
        let again = files.get("version/v1/x").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from memory");
        assert_eq!(&first.bytes[..], b"[1]");

        put(dir.path(), "version/v1/x", b"[2]");
        let replaced = files.get("version/v1/x").await.unwrap().unwrap();
        assert_eq!(&replaced.bytes[..], b"[2]");
        assert_ne!(replaced.e_tag, first.e_tag);

        std::fs::remove_file(dir.path().join("version/v1/x").join(LOCAL_OBJECT)).unwrap();
        assert!(files.get("version/v1/x").await.unwrap().is_none());
        assert!(files.get("version/v1/none").await.unwrap().is_none());
        assert!(
            files.get("version").await.unwrap().is_none(),
            "a directory without an object"
        );
    }

    #[actix_web::test]
    async fn memory_stays_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(dir.path().to_owned(), 10);
        put(dir.path(), "a", b"123456");
        put(dir.path(), "b", b"123456");
        put(dir.path(), "big", b"12345678901");
        for path in ["a", "b", "big"] {
            assert!(files.get(path).await.unwrap().is_some(), "{path} is served");
        }
        let cache = files.cache.read().unwrap();
        assert!(cache.values().map(|c| c.bytes.len()).sum::<usize>() <= 10);
        assert!(
            !cache.contains_key("big"),
            "larger than the budget: never kept"
        );
        assert_eq!(cache.len(), 1);
    }
}
