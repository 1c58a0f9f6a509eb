//! The service's own tables: diagnosis keys, and the TANs whose keys are stored but whose spending
//! verification has not confirmed yet (`pending_commits`, written in the same transaction as the
//! keys). Nothing outside this crate reads them; keys leave only through `StreamDiagnosisKeys`.

use crate::rules::ValidSubmission;
use diesel::prelude::*;
use openwarn_db::{AnyConnection, BatchLimits, Batcher, Database, DbError};

diesel::table! {
    diagnosis_keys (key_data, rolling_start_interval_number, submission_type) {
        key_data -> Binary,
        submission_type -> Integer,
        rolling_start_interval_number -> Integer,
        rolling_period -> Integer,
        transmission_risk_level -> Integer,
        report_type -> Integer,
        days_since_onset_of_symptoms -> Integer,
        origin -> Text,
        visited_countries -> Text,
        consent_to_federation -> Bool,
        submission_hour -> BigInt,
    }
}

diesel::table! {
    pending_commits (tan) {
        tan -> Text,
        reservation_id -> Text,
        created_at -> BigInt,
    }
}

use diagnosis_keys::dsl as dk;
use pending_commits::dsl as pc;

/// A TAN whose keys are stored, and the reservation they were stored under: verification is
/// asked to spend it until it confirms. While the row exists, the TAN can store no more keys —
/// whatever verification says meanwhile (e.g. after its reservation lapsed).
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable)]
#[diesel(table_name = pending_commits)]
pub struct PendingCommit {
    pub tan: String,
    pub reservation_id: String,
    pub created_at: i64,
}

/// What storing a submission came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Every key is stored (this many were new), and the TAN's commit is pending.
    Keys(usize),
    /// The TAN already stored keys (its commit is still pending): nothing was stored.
    TanAlreadyUsed,
}

/// One submission's write: its keys and its TAN's pending commit, together or not at all.
#[derive(Debug)]
struct Upload {
    keys: Vec<StoredKey>,
    commit: PendingCommit,
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable)]
#[diesel(table_name = diagnosis_keys)]
pub struct StoredKey {
    pub key_data: Vec<u8>,
    pub submission_type: i32,
    pub rolling_start_interval_number: i32,
    pub rolling_period: i32,
    pub transmission_risk_level: i32,
    pub report_type: i32,
    pub days_since_onset_of_symptoms: i32,
    pub origin: String,
    /// [`VisitedCountries::to_db`](openwarn_domain::VisitedCountries::to_db).
    pub visited_countries: String,
    pub consent_to_federation: bool,
    pub submission_hour: i64,
}

/// Where a page of [`Store::keys_page`] continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub submission_hour: i64,
    pub key_data: Vec<u8>,
    pub rolling_start_interval_number: i32,
    pub submission_type: i32,
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// Submissions' keys and pending commits, written together with those of concurrent
    /// submissions (group commit).
    writes: Batcher<Upload, Stored>,
}

/// One statement for a whole batch: the rows as parallel arrays, so that the text does not depend
/// on how many rows there are and stays prepared. Returns the rows that were new. A key of
/// another submission type than PCR (0) is not stored when the key is stored from a PCR test
/// already, or comes from one earlier in the batch (CWA's `DiagnosisKeyService.saveDiagnosisKeys`);
/// a PCR key is stored beside an earlier rapid test's. As SQLite's row-by-row writes do.
const INSERT_KEYS_PG: &str = "\
WITH n AS (SELECT * FROM UNNEST($1::bytea[], $2::int4[], $3::int4[], $4::int4[], $5::int4[], \
    $6::int4[], $7::int4[], $8::text[], $9::text[], $10::bool[], $11::int8[]) WITH ORDINALITY \
    AS n(key_data, submission_type, rolling_start_interval_number, rolling_period, \
    transmission_risk_level, report_type, days_since_onset_of_symptoms, origin, visited_countries, \
    consent_to_federation, submission_hour, i))
INSERT INTO diagnosis_keys (key_data, submission_type, rolling_start_interval_number, \
    rolling_period, transmission_risk_level, report_type, days_since_onset_of_symptoms, origin, \
    visited_countries, consent_to_federation, submission_hour)
SELECT key_data, submission_type, rolling_start_interval_number, rolling_period, \
    transmission_risk_level, report_type, days_since_onset_of_symptoms, origin, visited_countries, \
    consent_to_federation, submission_hour FROM n
WHERE n.submission_type = 0 OR NOT (
    EXISTS (SELECT 1 FROM diagnosis_keys d WHERE d.key_data = n.key_data \
        AND d.rolling_start_interval_number = n.rolling_start_interval_number \
        AND d.submission_type = 0)
    OR EXISTS (SELECT 1 FROM n p WHERE p.i < n.i AND p.key_data = n.key_data \
        AND p.rolling_start_interval_number = n.rolling_start_interval_number \
        AND p.submission_type = 0))
ORDER BY n.i
ON CONFLICT DO NOTHING
RETURNING key_data, rolling_start_interval_number, submission_type";

#[derive(diesel::QueryableByName)]
struct NewKey {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    key_data: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    rolling_start_interval_number: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    submission_type: i32,
}

/// What identifies a stored key: its bytes, rolling start and submission type.
type Identity = (Vec<u8>, i32, i32);

fn identity(key: &StoredKey) -> Identity {
    (
        key.key_data.clone(),
        key.rolling_start_interval_number,
        key.submission_type,
    )
}

/// Records the pending commits of several submissions at once; which of them were new (a TAN
/// already pending, or twice in the batch, is recorded for one submission only).
const INSERT_PENDING_PG: &str = "\
INSERT INTO pending_commits (tan, reservation_id, created_at)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
ON CONFLICT DO NOTHING
RETURNING tan, reservation_id";

#[derive(diesel::QueryableByName)]
struct NewPending {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tan: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    reservation_id: String,
}

/// Writes several submissions: for each whose TAN is not pending yet, its pending commit and its
/// keys; for the others nothing. One transaction (the batch writer runs SQLite's batches in one
/// already; on PostgreSQL it expects one statement, and these are two).
fn insert_uploads(conn: &mut AnyConnection, uploads: &[Upload]) -> QueryResult<Vec<Stored>> {
    if matches!(conn, AnyConnection::Postgresql(_)) {
        return diesel::Connection::transaction(conn, |conn| write_uploads(conn, uploads));
    }
    write_uploads(conn, uploads)
}

fn write_uploads(conn: &mut AnyConnection, uploads: &[Upload]) -> QueryResult<Vec<Stored>> {
    let recorded: Vec<bool> = match conn {
        AnyConnection::Postgresql(pg) => {
            use diesel::sql_types::{Array, BigInt, Text};
            let mut new: std::collections::HashSet<(String, String)> =
                openwarn_db::prepared(INSERT_PENDING_PG)
                    .bind::<Array<Text>, _>(
                        uploads
                            .iter()
                            .map(|u| u.commit.tan.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind::<Array<Text>, _>(
                        uploads
                            .iter()
                            .map(|u| u.commit.reservation_id.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind::<Array<BigInt>, _>(
                        uploads
                            .iter()
                            .map(|u| u.commit.created_at)
                            .collect::<Vec<_>>(),
                    )
                    .load::<NewPending>(pg)?
                    .into_iter()
                    .map(|p| (p.tan, p.reservation_id))
                    .collect();
            uploads
                .iter()
                .map(|u| new.remove(&(u.commit.tan.clone(), u.commit.reservation_id.clone())))
                .collect()
        }
        AnyConnection::Sqlite(lite) => uploads
            .iter()
            .map(|u| {
                diesel::insert_or_ignore_into(pc::pending_commits)
                    .values(&u.commit)
                    .execute(lite)
                    .map(|n| n == 1)
            })
            .collect::<QueryResult<_>>()?,
    };
    let accepted: Vec<&[StoredKey]> = uploads
        .iter()
        .zip(&recorded)
        .filter(|(_, r)| **r)
        .map(|(u, _)| u.keys.as_slice())
        .collect();
    let mut counts = insert_keys(conn, &accepted)?.into_iter();
    Ok(recorded
        .iter()
        .map(|r| {
            if *r {
                Stored::Keys(counts.next().unwrap_or(0))
            } else {
                Stored::TanAlreadyUsed
            }
        })
        .collect())
}

/// Writes the keys of several submissions; how many of each submission's keys were new. A key in
/// two submissions of the batch counts for the first.
fn insert_keys(conn: &mut AnyConnection, submissions: &[&[StoredKey]]) -> QueryResult<Vec<usize>> {
    match conn {
        AnyConnection::Postgresql(pg) => {
            use diesel::sql_types::{Array, BigInt, Binary, Bool, Integer, Text};
            let rows = || submissions.iter().copied().flatten();
            let ints = |f: fn(&StoredKey) -> i32| rows().map(f).collect::<Vec<i32>>();
            let mut new: std::collections::HashSet<Identity> =
                openwarn_db::prepared(INSERT_KEYS_PG)
                    .bind::<Array<Binary>, _>(
                        rows().map(|k| k.key_data.clone()).collect::<Vec<_>>(),
                    )
                    .bind::<Array<Integer>, _>(ints(|k| k.submission_type))
                    .bind::<Array<Integer>, _>(ints(|k| k.rolling_start_interval_number))
                    .bind::<Array<Integer>, _>(ints(|k| k.rolling_period))
                    .bind::<Array<Integer>, _>(ints(|k| k.transmission_risk_level))
                    .bind::<Array<Integer>, _>(ints(|k| k.report_type))
                    .bind::<Array<Integer>, _>(ints(|k| k.days_since_onset_of_symptoms))
                    .bind::<Array<Text>, _>(rows().map(|k| k.origin.clone()).collect::<Vec<_>>())
                    .bind::<Array<Text>, _>(
                        rows()
                            .map(|k| k.visited_countries.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind::<Array<Bool>, _>(
                        rows().map(|k| k.consent_to_federation).collect::<Vec<_>>(),
                    )
                    .bind::<Array<BigInt>, _>(rows().map(|k| k.submission_hour).collect::<Vec<_>>())
                    .load::<NewKey>(pg)?
                    .into_iter()
                    .map(|k| {
                        (
                            k.key_data,
                            k.rolling_start_interval_number,
                            k.submission_type,
                        )
                    })
                    .collect();
            Ok(submissions
                .iter()
                .map(|keys| keys.iter().filter(|k| new.remove(&identity(k))).count())
                .collect())
        }
        // Row by row, inside the batch's write transaction.
        AnyConnection::Sqlite(lite) => submissions
            .iter()
            .map(|keys| {
                keys.iter().try_fold(0, |n, row| {
                    if row.submission_type != PCR && stored_from_pcr(lite, row)? {
                        return Ok(n);
                    }
                    diesel::insert_or_ignore_into(dk::diagnosis_keys)
                        .values(row)
                        .execute(lite)
                        .map(|m| n + m)
                })
            })
            .collect(),
    }
}

/// `SubmissionType::PcrTest`.
const PCR: i32 = 0;

/// Whether `row`'s key (bytes and rolling start) is stored from a PCR test.
fn stored_from_pcr(conn: &mut diesel::SqliteConnection, row: &StoredKey) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        dk::diagnosis_keys
            .filter(dk::key_data.eq(&row.key_data))
            .filter(dk::rolling_start_interval_number.eq(row.rolling_start_interval_number))
            .filter(dk::submission_type.eq(PCR)),
    ))
    .get_result(conn)
}

/// The rows of a submission's keys.
fn rows(submission: &ValidSubmission, submission_hour: i64) -> Vec<StoredKey> {
    let origin = submission.origin.as_str();
    let visited_countries = submission.visited_countries.to_db();
    submission
        .keys
        .iter()
        .map(|k| StoredKey {
            key_data: k.key_data.clone(),
            submission_type: submission.submission_type,
            rolling_start_interval_number: k.rolling_start_interval_number,
            rolling_period: k.rolling_period,
            transmission_risk_level: k.transmission_risk_level,
            report_type: k.report_type,
            days_since_onset_of_symptoms: k.days_since_onset_of_symptoms,
            origin: origin.to_owned(),
            visited_countries: visited_countries.clone(),
            consent_to_federation: submission.consent_to_federation,
            submission_hour,
        })
        .collect()
}

impl Store {
    /// Call from within a tokio runtime (it starts the batch writer).
    pub fn new(db: Database) -> Self {
        let writes = Batcher::new(
            "insert_keys",
            db.clone(),
            BatchLimits::for_database(&db),
            insert_uploads,
        );
        Self { db, writes }
    }

    /// Stores every key of a submission and its TAN's pending commit, atomically, together with
    /// submissions arriving at the same time; a key already stored (same bytes, rolling start and
    /// submission type) is kept as it was. Nothing is stored when the TAN already has a pending
    /// commit.
    pub async fn store(
        &self,
        submission: &ValidSubmission,
        submission_hour: i64,
        commit: PendingCommit,
    ) -> Result<Stored, DbError> {
        let keys = rows(submission, submission_hour);
        self.writes.write(Upload { keys, commit }).await
    }

    /// Verification confirmed that the TAN is spent: its pending commit goes.
    pub async fn commit_confirmed(&self, tan: String) -> Result<(), DbError> {
        self.db
            .run(move |conn| {
                diesel::delete(pc::pending_commits.filter(pc::tan.eq(&tan)))
                    .execute(conn)
                    .map(drop)
            })
            .await
    }

    /// The oldest pending commits, up to `limit`, and how many there are in all.
    pub async fn pending_commits(&self, limit: i64) -> Result<(Vec<PendingCommit>, i64), DbError> {
        self.db
            .run(move |conn| {
                let oldest = pc::pending_commits
                    .order(pc::created_at)
                    .limit(limit)
                    .load::<PendingCommit>(conn)?;
                let all = pc::pending_commits.count().get_result(conn)?;
                Ok((oldest, all))
            })
            .await
    }

    /// Up to `limit` keys submitted in `[from_hour, until_hour)`, after `after`, in stream order.
    pub async fn keys_page(
        &self,
        from_hour: i64,
        until_hour: i64,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<StoredKey>, DbError> {
        self.db
            .run(move |conn| {
                let mut query = dk::diagnosis_keys
                    .filter(dk::submission_hour.ge(from_hour))
                    .filter(dk::submission_hour.lt(until_hour))
                    .into_boxed();
                if let Some(c) = after {
                    // A row-value comparison: both PostgreSQL and SQLite seek the index to the
                    // cursor. (The equivalent OR-chain made PostgreSQL rescan the range from its
                    // start on every page: quadratic in the keys streamed.)
                    use diesel::sql_types::{BigInt, Binary, Bool, Integer};
                    query = query.filter(
                        diesel::dsl::sql::<Bool>(
                            "(submission_hour, key_data, rolling_start_interval_number, \
                             submission_type) > (",
                        )
                        .bind::<BigInt, _>(c.submission_hour)
                        .sql(", ")
                        .bind::<Binary, _>(c.key_data)
                        .sql(", ")
                        .bind::<Integer, _>(c.rolling_start_interval_number)
                        .sql(", ")
                        .bind::<Integer, _>(c.submission_type)
                        .sql(")"),
                    );
                }
                query
                    .order((
                        dk::submission_hour,
                        dk::key_data,
                        dk::rolling_start_interval_number,
                        dk::submission_type,
                    ))
                    .limit(limit)
                    .load::<StoredKey>(conn)
            })
            .await
    }

    /// Deletes keys submitted before `cutoff_hour`. Idempotent. Returns how many were deleted.
    pub async fn apply_retention(&self, cutoff_interval: i32) -> Result<usize, DbError> {
        self.db
            .run(move |conn| {
                diesel::delete(
                    dk::diagnosis_keys
                        .filter(dk::rolling_start_interval_number.lt(cutoff_interval)),
                )
                .execute(conn)
            })
            .await
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }

    /// How many keys are stored (diagnostics and tests).
    pub async fn count(&self) -> Result<i64, DbError> {
        self.db
            .run(|conn| dk::diagnosis_keys.count().get_result(conn))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ValidKey;
    use openwarn_testkit::databases;

    /// Stores `submission` with a fresh TAN; how many keys were new.
    async fn put(s: &Store, submission: &ValidSubmission, hour: i64) -> usize {
        match s
            .store(submission, hour, pending(&uuid::Uuid::new_v4().to_string()))
            .await
            .unwrap()
        {
            Stored::Keys(n) => n,
            Stored::TanAlreadyUsed => panic!("a fresh TAN"),
        }
    }

    fn pending(tan: &str) -> PendingCommit {
        PendingCommit {
            tan: tan.to_owned(),
            reservation_id: uuid::Uuid::new_v4().to_string(),
            created_at: 1_000,
        }
    }

    async fn store(url: &str) -> Store {
        let db = Database::open(url, 4).await.unwrap();
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        Store::new(db)
    }

    fn submission(bytes: &[u8], submission_type: i32) -> ValidSubmission {
        ValidSubmission {
            keys: bytes
                .iter()
                .map(|b| ValidKey {
                    key_data: vec![*b; 16],
                    rolling_start_interval_number: 144 * 20_000,
                    rolling_period: 144,
                    transmission_risk_level: 5,
                    report_type: 1,
                    days_since_onset_of_symptoms: 2,
                })
                .collect(),
            origin: "DE".parse().unwrap(),
            visited_countries: ["FR", "DE"]
                .into_iter()
                .map(|c| c.parse().unwrap())
                .collect(),
            consent_to_federation: true,
            submission_type,
        }
    }

    #[tokio::test]
    async fn keys_are_stored_once_per_submission_type() {
        for db in databases() {
            let s = store(db.url()).await;
            assert_eq!(put(&s, &submission(&[1, 2, 3], 0), 100).await, 3);
            assert_eq!(
                put(&s, &submission(&[3, 4], 0), 101).await,
                1,
                "{}: key 3 exists",
                db.label()
            );
            // As CWA (`ignoresRapidTestDiagnosisKeysWhenPcrTestIsPresent`,
            // `insertsPcrTestDiagnosisKeysWhenRapidTestIsPresent`): a rapid test's key is not
            // stored beside the same key from a PCR test; a PCR test's is, beside a rapid test's.
            assert_eq!(
                put(&s, &submission(&[3, 5], 1), 101).await,
                1,
                "{}: key 3 is stored from a PCR test",
                db.label()
            );
            assert_eq!(put(&s, &submission(&[5], 0), 101).await, 1);
            assert_eq!(s.count().await.unwrap(), 6);
            let first = s.keys_page(100, 101, None, 10).await.unwrap();
            assert_eq!(first.len(), 3);
            assert_eq!(first[0].visited_countries, "DE,FR");
            assert!(first[0].consent_to_federation);
        }
    }

    /// One batch statement with a key stored before and a key in two of its submissions: each
    /// key is stored once, and counted for the first submission that brought it.
    #[tokio::test]
    async fn a_batch_stores_each_key_once() {
        for db in databases() {
            let s = store(db.url()).await;
            put(&s, &submission(&[1], 0), 100).await;
            let batch = [
                rows(&submission(&[1, 2, 3], 0), 101),
                rows(&submission(&[3, 4], 0), 101),
                rows(&submission(&[3, 5, 6], 1), 101),
                rows(&submission(&[6], 0), 101),
            ];
            let counts =
                s.db.transaction(move |conn| {
                    insert_keys(conn, &batch.iter().map(Vec::as_slice).collect::<Vec<_>>())
                })
                .await
                .unwrap();
            // Rapid-test key 3 is stored from a PCR test earlier in the batch; PCR key 6 is
            // stored beside the rapid test's from earlier in the batch.
            assert_eq!(counts, vec![2, 1, 2, 1], "{}", db.label());
            assert_eq!(s.count().await.unwrap(), 7, "{}", db.label());
            let kept = s.keys_page(100, 101, None, 10).await.unwrap();
            assert_eq!(kept.len(), 1, "{}: key 1 kept its first hour", db.label());
        }
    }

    /// Submissions written at the same time each get their own count and all their keys.
    #[tokio::test]
    async fn concurrent_submissions_are_all_stored() {
        for db in databases() {
            let s = store(db.url()).await;
            let tasks: Vec<_> = (0..40u8)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(
                        async move { put(&s, &submission(&[2 * i, 2 * i + 1], 0), 100).await },
                    )
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), 2, "{}", db.label());
            }
            assert_eq!(s.count().await.unwrap(), 80, "{}", db.label());
        }
    }

    #[tokio::test]
    async fn pages_walk_every_key_in_order_once() {
        for db in databases() {
            let s = store(db.url()).await;
            // The rapid test's key 5 first: a PCR test's is stored beside it.
            put(&s, &submission(&[5, 2], 1), 10).await;
            put(&s, &submission(&[9, 1, 5], 0), 10).await;
            // Key 5 again, a day earlier: another key (a page boundary falls between the two).
            let mut earlier = submission(&[5], 0);
            earlier.keys[0].rolling_start_interval_number -= 144;
            put(&s, &earlier, 10).await;
            put(&s, &submission(&[7, 3], 0), 11).await;
            put(&s, &submission(&[8], 0), 12).await;
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = s.keys_page(10, 12, after.clone(), 2).await.unwrap();
                let Some(last) = page.last() else { break };
                after = Some(Cursor {
                    submission_hour: last.submission_hour,
                    key_data: last.key_data.clone(),
                    rolling_start_interval_number: last.rolling_start_interval_number,
                    submission_type: last.submission_type,
                });
                seen.extend(page.iter().map(|k| {
                    (
                        k.submission_hour,
                        k.key_data[0],
                        k.rolling_start_interval_number / 144 - 20_000,
                        k.submission_type,
                    )
                }));
            }
            assert_eq!(
                seen,
                vec![
                    (10, 1, 0, 0),
                    (10, 2, 0, 1),
                    (10, 5, -1, 0),
                    (10, 5, 0, 0),
                    (10, 5, 0, 1),
                    (10, 9, 0, 0),
                    (11, 3, 0, 0),
                    (11, 7, 0, 0)
                ],
                "{}",
                db.label()
            );
        }
    }

    /// A TAN whose keys are stored cannot store keys again while its commit is pending — in a
    /// later request or in the same batch — and nothing of the refused submission is stored.
    #[tokio::test]
    async fn a_tan_with_a_pending_commit_stores_nothing_again() {
        for db in databases() {
            let s = store(db.url()).await;
            let first = s
                .store(&submission(&[1, 2], 0), 10, pending("tan-a"))
                .await
                .unwrap();
            assert_eq!(first, Stored::Keys(2), "{}", db.label());
            let again = s
                .store(&submission(&[3], 0), 10, pending("tan-a"))
                .await
                .unwrap();
            assert_eq!(again, Stored::TanAlreadyUsed, "{}", db.label());
            assert_eq!(
                s.count().await.unwrap(),
                2,
                "{}: key 3 not stored",
                db.label()
            );

            // Concurrent submissions with one TAN: one stores, the others store nothing.
            let tasks: Vec<_> = (0..8u8)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        s.store(&submission(&[100 + i], 0), 10, pending("tan-b"))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            assert_eq!(
                outcomes.iter().filter(|o| **o == Stored::Keys(1)).count(),
                1,
                "{}: {outcomes:?}",
                db.label()
            );
            assert_eq!(s.count().await.unwrap(), 3, "{}", db.label());

            let (oldest, all) = s.pending_commits(10).await.unwrap();
            assert_eq!(all, 2);
            let mut tans: Vec<_> = oldest.into_iter().map(|p| p.tan).collect();
            tans.sort();
            assert_eq!(tans, ["tan-a", "tan-b"]);
            s.commit_confirmed("tan-a".into()).await.unwrap();
            s.commit_confirmed("tan-a".into()).await.unwrap();
            assert_eq!(s.pending_commits(10).await.unwrap().1, 1, "{}", db.label());
        }
    }

    /// Keys go when the day they refer to is past the retention, whenever they were submitted:
    /// a key for day 0 submitted late (hour 500) goes before one for day 2 submitted early.
    #[tokio::test]
    async fn retention_deletes_keys_by_the_day_they_refer_to() {
        for db in databases() {
            let s = store(db.url()).await;
            let day = |d: i32, byte: u8| {
                let mut sub = submission(&[byte], 0);
                sub.keys[0].rolling_start_interval_number = 144 * (20_000 + d);
                sub
            };
            put(&s, &day(0, 1), 500).await;
            put(&s, &day(2, 2), 10).await;
            put(&s, &day(1, 3), 20).await;
            // The clock moves to day 16 of the keys: retention (14 days) cuts at day 2.
            let cutoff = 144 * (20_000 + 2);
            assert_eq!(
                s.apply_retention(cutoff).await.unwrap(),
                2,
                "{}",
                db.label()
            );
            assert_eq!(s.apply_retention(cutoff).await.unwrap(), 0);
            let left = s.keys_page(0, 1_000, None, 10).await.unwrap();
            assert_eq!(left.len(), 1, "{}", db.label());
            assert_eq!(
                left[0].key_data[0],
                2,
                "{}: the key of day 2 stays",
                db.label()
            );
        }
    }
}
