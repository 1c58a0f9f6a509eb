//! The service's own tables: app sessions, TANs, teleTANs. Nothing outside this crate reads them.
//! Every secret (registration token, TAN, teleTAN) is stored only as its SHA-256.
//!
//! One [`Store`] over the three tables, its operations split by the table they are about:
//! [`sessions`] (`app_sessions`), [`tans`] (`tans`: issue, verify, reserve, commit, release) and
//! [`teletans`] (`tele_tans`: issue, and register with one); the tables in [`schema`]. Here: the
//! store itself and what spans every table (retention, dump, ping).

mod schema;
mod sessions;
mod tans;
mod teletans;
mod tombstones;

pub use sessions::{Registered, Session};
pub use tans::{Committed, Reservation, TanIssue};
pub use teletans::TELE_TAN_KIND_TEST;
pub use tombstones::Expiring;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use openwarn_db::{AnyConnection, BatchLimits, Batcher, Database, DbError};
use openwarn_domain::HashedGuid;
use schema::app_sessions::dsl as s;
use schema::tans::dsl as t;
use schema::tele_tans::dsl as tt;
use tans::{CommitTan, ReserveTan, commit_tans, reserve_tans};

/// Where a session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Guid,
    TeleTan,
}

impl Source {
    fn code(self) -> i16 {
        match self {
            Self::Guid => 1,
            Self::TeleTan => 2,
        }
    }
    fn from_code(code: i16) -> Self {
        if code == 2 { Self::TeleTan } else { Self::Guid }
    }
}

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// PostgreSQL: holds a transaction-scoped lock on each of `ids` (sorted, so that two holders
/// cannot deadlock), so that registrations and retention naming the same id wait for each other.
/// SQLite serialises writers anyway.
fn lock_ids(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<()> {
    if let AnyConnection::Postgresql(pg) = conn {
        for id in ids {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(*id)
                .execute(pg)?;
        }
    }
    Ok(())
}

/// A hashed GUID as `app_sessions` holds it. Only parsed values are written, so one that does not
/// parse is a broken row: an error, as the database's own are.
fn stored_guid(value: Option<String>) -> QueryResult<Option<HashedGuid>> {
    value
        .map(|v| {
            HashedGuid::try_from(v).map_err(|e| DieselError::DeserializationError(Box::new(e)))
        })
        .transpose()
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// TAN reservations and commits of concurrent submissions, written together (group commit).
    reservations: Batcher<ReserveTan, Option<Reservation>>,
    commits: Batcher<CommitTan, Committed>,
}

impl Store {
    /// Call from within a tokio runtime (it starts the batch writers).
    pub fn new(db: Database) -> Self {
        let limits = BatchLimits::for_database(&db);
        Self {
            reservations: Batcher::new("reserve_tans", db.clone(), limits, reserve_tans),
            commits: Batcher::new("commit_tans", db.clone(), limits, commit_tans),
            db,
        }
    }

    /// Deletes TANs, teleTAN sessions and teleTANs created before `cutoff`, and the tombstones
    /// no longer held at `now`. GUID sessions are not deleted here: [`Store::bury`] replaces
    /// each by tombstones once test-result said how long it holds the result
    /// (`crate::retention`). Idempotent. Returns the number of rows deleted.
    pub async fn apply_retention(&self, cutoff: i64, now: i64) -> Result<usize, DbError> {
        self.db
            .run(move |conn| {
                let tans =
                    diesel::delete(t::tans.filter(t::created_at.lt(cutoff))).execute(conn)?;
                let sessions = diesel::delete(
                    s::app_sessions
                        .filter(s::created_at.lt(cutoff))
                        .filter(s::hashed_guid.is_null()),
                )
                .execute(conn)?;
                let tele = diesel::delete(tt::tele_tans.filter(tt::created_at.lt(cutoff)))
                    .execute(conn)?;
                let tombstones = tombstones::delete_expired(conn, now)?;
                Ok(tans + sessions + tele + tombstones)
            })
            .await
    }

    /// Every row of every table, rendered as text (hashes only; nothing secret is stored). For
    /// tests that prove a request changed nothing, and for debugging.
    pub async fn dump(&self) -> Result<Vec<String>, DbError> {
        self.db
            .run(|conn| {
                let mut out = Vec::new();
                type SessionRow = (
                    String,
                    Option<String>,
                    i16,
                    i32,
                    Option<i64>,
                    i64,
                    Option<String>,
                    i16,
                    i32,
                    Option<i64>,
                );
                for row in s::app_sessions
                    .order(s::token_hash)
                    .load::<SessionRow>(conn)?
                {
                    out.push(format!("app_sessions {row:?}"));
                }
                type TanRow = (
                    String,
                    String,
                    i16,
                    i64,
                    i64,
                    Option<String>,
                    Option<i64>,
                    Option<i64>,
                );
                for row in t::tans.order(t::tan_hash).load::<TanRow>(conn)? {
                    out.push(format!("tans {row:?}"));
                }
                for row in
                    tt::tele_tans
                        .order(tt::tele_tan_hash)
                        .load::<(String, i16, i64, i64, Option<i64>)>(conn)?
                {
                    out.push(format!("tele_tans {row:?}"));
                }
                for row in schema::guid_tombstones::table
                    .order(schema::guid_tombstones::hashed_guid)
                    .load::<(String, i64)>(conn)?
                {
                    out.push(format!("guid_tombstones {row:?}"));
                }
                Ok(out)
            })
            .await
    }

    /// Succeeds when the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }
}

/// What the tests of every table share.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    pub async fn store(url: &str) -> Store {
        let db = Database::open(url, 8).await.unwrap();
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        Store::new(db)
    }

    pub fn h(s: &str) -> String {
        openwarn_domain::sha256_hex(s)
    }

    /// The hashed GUID of a GUID called `name`.
    pub fn hashed_guid(name: &str) -> HashedGuid {
        h(name).parse().unwrap()
    }

    pub const NOW: i64 = 1_000_000;

    pub async fn session_with_tan(s: &Store, name: &str) -> String {
        assert_eq!(
            s.register_guid(h(name), hashed_guid(&format!("guid-{name}")), NOW)
                .await
                .unwrap(),
            Registered::Created
        );
        let tan = h(&format!("tan-{name}"));
        assert_eq!(
            s.issue_tan(h(name), tan.clone(), NOW, NOW + 3600, 3, 1)
                .await
                .unwrap(),
            TanIssue::Issued
        );
        tan
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use openwarn_testkit::databases;

    #[tokio::test]
    async fn retention_deletes_old_rows_idempotently() {
        for db in databases() {
            let s = store(db.url()).await;
            session_with_tan(&s, "old").await;
            s.insert_tele_tan(h("TT"), TELE_TAN_KIND_TEST, NOW, NOW + 3600)
                .await
                .unwrap();
            s.register_guid(h("new"), hashed_guid("g-new"), NOW + 100)
                .await
                .unwrap();
            // The TAN and the teleTAN; the GUID session waits to be buried.
            assert_eq!(
                s.apply_retention(NOW + 50, NOW + 50).await.unwrap(),
                2,
                "{}",
                db.label()
            );
            assert_eq!(s.apply_retention(NOW + 50, NOW + 50).await.unwrap(), 0);
            assert!(s.session(h("old")).await.unwrap().is_some());
            assert_eq!(
                s.expiring_guid_sessions(NOW + 50, 10).await.unwrap().len(),
                1
            );
            assert!(s.session(h("new")).await.unwrap().is_some());
            assert_eq!(s.dump().await.unwrap().len(), 2);
        }
    }
}
