//! The portal's own tables: accounts, sessions, sign-ins under way, per-officer issue counts.

use openwarn_db::{Database, DbError};

/// The portal's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, DbError> {
        let db = Database::open(url, pool_size).await?;
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await?;
        Ok(Self { db })
    }

    /// The database, for the audit log (same database, its own table).
    pub fn database(&self) -> &Database {
        &self.db
    }
}
