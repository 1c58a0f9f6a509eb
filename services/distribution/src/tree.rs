//! The published tree, on any object store: the local filesystem (embedded default) or an
//! S3-compatible bucket (production, behind the CDN).
//!
//! CDN paths are both objects and directories (`…/date/D` is a day package, `…/date/D/hour` its
//! hour index). S3 keys allow that; a filesystem does not, so the local layout keeps each object
//! in a file named [`LOCAL_OBJECT`] inside the directory of its path. Everything above this
//! module speaks CDN paths and behaves the same on both.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use std::sync::Arc;

/// File name of an object in the local layout.
pub const LOCAL_OBJECT: &str = "_object";

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store configuration: {0}")]
    Config(String),
    #[error("package: {0}")]
    Package(#[from] openwarn_export::ExportError),
}

/// What an object is, which decides how it is served and cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Key packages: immutable once published.
    Package,
    /// Indexes and the application configuration: replaced as things are published.
    Mutable,
}

impl Kind {
    /// From a CDN path: the indexes end in `country`, `date` or `hour`, the API versions are
    /// `version` and the description of one `version/v1`; they and the app configuration
    /// change; everything else is an immutable package.
    pub fn of(path: &str) -> Self {
        if Self::is_json(path) {
            return Self::Mutable;
        }
        match path.rsplit('/').next() {
            Some("app_config") => Self::Mutable,
            _ => Self::Package,
        }
    }

    fn is_json(path: &str) -> bool {
        path == "version"
            || path == "version/v1"
            || matches!(path.rsplit('/').next(), Some("country" | "date" | "hour"))
    }

    pub fn content_type(path: &str) -> &'static str {
        if Self::is_json(path) {
            "application/json"
        } else {
            "application/zip"
        }
    }

    pub fn cache_control(self) -> &'static str {
        match self {
            Self::Package => "public, max-age=31536000, immutable",
            Self::Mutable => "public, max-age=300",
        }
    }
}

/// Result of publishing a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// Something was already published there; it was left as it was.
    AlreadyThere,
}

/// An object read back.
#[derive(Debug)]
pub struct Object {
    pub bytes: Bytes,
    pub e_tag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tree {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local tree (its layout: see the module docs).
    local_dir: Option<std::path::PathBuf>,
    /// Whether the store keeps content type and cache headers with objects (S3 does; the
    /// filesystem does not: the embedded server derives them from the path).
    attributes: bool,
}

impl Tree {
    /// The tree in a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, TreeError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TreeError::Config(format!("{}: {e}", dir.display())))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
            local_dir: Some(
                std::fs::canonicalize(dir)
                    .map_err(|e| TreeError::Config(format!("{}: {e}", dir.display())))?,
            ),
            attributes: false,
        })
    }

    /// The tree in an S3-compatible bucket, under an optional key prefix.
    pub fn s3(store: impl ObjectStore, prefix: &str) -> Self {
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Self {
            store,
            local_dir: None,
            attributes: true,
        }
    }

    /// The directory of a tree on the local filesystem (`None` for an object store).
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    fn location(&self, path: &str) -> Path {
        if self.local_dir.is_some() {
            Path::from(format!("{path}/{LOCAL_OBJECT}"))
        } else {
            Path::from(path)
        }
    }

    fn options(&self, path: &str, mode: PutMode) -> PutOptions {
        let mut attributes = Attributes::new();
        if self.attributes {
            attributes.insert(Attribute::ContentType, Kind::content_type(path).into());
            attributes.insert(
                Attribute::CacheControl,
                Kind::of(path).cache_control().into(),
            );
        }
        PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        }
    }

    /// Publishes `bytes` at `path` unless something is already there (atomic: on the filesystem
    /// a hard link of a complete temporary file, on S3 `If-None-Match: *`). Never replaces.
    #[tracing::instrument(name = "object.create", skip(self, bytes), fields(bytes = bytes.len()))]
    pub async fn create(&self, path: &str, bytes: Vec<u8>) -> Result<Created, TreeError> {
        let options = self.options(path, PutMode::Create);
        match self
            .store
            .put_opts(&self.location(path), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(Created::New),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Created::AlreadyThere),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `bytes` at `path`, replacing what was there (indexes, app configuration).
    #[tracing::instrument(name = "object.replace", skip(self, bytes), fields(bytes = bytes.len()))]
    pub async fn replace(&self, path: &str, bytes: Vec<u8>) -> Result<(), TreeError> {
        let options = self.options(path, PutMode::Overwrite);
        self.store
            .put_opts(&self.location(path), PutPayload::from(bytes), options)
            .await?;
        Ok(())
    }

    pub async fn get(&self, path: &str) -> Result<Option<Object>, TreeError> {
        match self.store.get(&self.location(path)).await {
            Ok(result) => {
                let e_tag = result.meta.e_tag.clone();
                Ok(Some(Object {
                    bytes: result.bytes().await?,
                    e_tag,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `path`; deleting what is not there is fine.
    pub async fn delete(&self, path: &str) -> Result<(), TreeError> {
        match self.store.delete(&self.location(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object path under `prefix` (recursively), as CDN paths.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, TreeError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let location = meta.location.to_string();
                if self.local_dir.is_some() {
                    location
                        .strip_suffix(LOCAL_OBJECT)
                        .and_then(|p| p.strip_suffix('/'))
                        .map(str::to_owned)
                } else {
                    Some(location)
                }
            })
            .collect())
    }

    /// Checks that the store answers (readiness).
    pub async fn ping(&self) -> Result<(), TreeError> {
        self.store
            .list_with_delimiter(Some(&Path::from("version")))
            .await?;
        Ok(())
    }
}
