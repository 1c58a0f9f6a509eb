//! The service's own table. Nothing outside this crate reads it.

use diesel::prelude::*;
use openwarn_db::{AnyConnection, BatchLimits, Batcher, Database, DbError};
use openwarn_domain::{HashedGuid, TestResult};

diesel::table! {
    test_results (hashed_guid) {
        hashed_guid -> Text,
        result -> SmallInt,
        lab_id -> Nullable<Text>,
        sample_collected_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        redeemed_at -> Nullable<BigInt>,
    }
}

use test_results::dsl as t;

/// A result as verification sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredResult {
    /// Stored as its code; a code outside the contract is an error, as the database's own are.
    #[diesel(deserialize_as = i16)]
    pub result: TestResult,
    pub lab_id: Option<String>,
    pub sample_collected_at: Option<i64>,
    /// When test-result first saw the id (a lab's result or verification's first read): the
    /// result is deleted `delete_after` later ([`Store::held_until`]).
    pub first_seen_at: i64,
}

/// One validated result from a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabResult {
    pub hashed_guid: HashedGuid,
    pub result: TestResult,
    pub sample_collected_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// Results are held this many seconds after they were first seen, then deleted (by the
    /// retention job) and never read again (by every read, in case the job has not run yet).
    delete_after: i64,
    /// Redeemed marks of concurrent submissions, written together (group commit).
    redemptions: Batcher<(HashedGuid, i64), bool>,
}

/// Marks a batch of results redeemed in one statement (as [`redeemed_values`] does for one).
/// Binds: the rapid tests' first and last code and their redeemed code, the redeemed code of
/// other tests, hashed GUIDs, nows (parallel arrays). Returns the hashed GUIDs whose
/// row changed.
const MARK_REDEEMED_PG: &str = "\
UPDATE test_results SET result = CASE WHEN test_results.result BETWEEN $1 AND $2 THEN $3 ELSE $4 END,
    lab_id = NULL, sample_collected_at = NULL,
    redeemed_at = v.now, updated_at = v.now
FROM UNNEST($5::text[], $6::int8[]) AS v(hashed_guid, now)
WHERE test_results.hashed_guid = v.hashed_guid AND test_results.redeemed_at IS NULL
RETURNING test_results.hashed_guid";

#[derive(diesel::QueryableByName)]
struct Changed {
    #[diesel(sql_type = diesel::sql_types::Text)]
    hashed_guid: String,
}

fn mark_redeemed(conn: &mut AnyConnection, batch: &[(HashedGuid, i64)]) -> QueryResult<Vec<bool>> {
    match conn {
        AnyConnection::Postgresql(pg) => {
            use diesel::sql_types::{Array, BigInt, SmallInt, Text};
            let mut changed: std::collections::HashSet<String> =
                openwarn_db::prepared(MARK_REDEEMED_PG)
                    .bind::<SmallInt, _>(i16::from(TestResult::QuickPending))
                    .bind::<SmallInt, _>(i16::from(TestResult::QuickRedeemed))
                    .bind::<SmallInt, _>(i16::from(TestResult::QuickRedeemed))
                    .bind::<SmallInt, _>(i16::from(TestResult::Redeemed))
                    .bind::<Array<Text>, _>(
                        batch
                            .iter()
                            .map(|(g, _)| g.as_str().to_owned())
                            .collect::<Vec<_>>(),
                    )
                    .bind::<Array<BigInt>, _>(batch.iter().map(|(_, now)| *now).collect::<Vec<_>>())
                    .load::<Changed>(pg)?
                    .into_iter()
                    .map(|c| c.hashed_guid)
                    .collect();
            // A result in the batch twice changed once: the first mark reports it.
            Ok(batch
                .iter()
                .map(|(g, _)| changed.remove(g.as_str()))
                .collect())
        }
        // One by one, inside the batch's write transaction.
        AnyConnection::Sqlite(_) => batch
            .iter()
            .map(|(hashed_guid, now)| redeem_one(conn, hashed_guid.as_str(), *now))
            .collect(),
    }
}

impl Store {
    /// Call from within a tokio runtime (it starts the batch writer).
    pub fn new(db: Database) -> Self {
        let redemptions = Batcher::new(
            "mark_redeemed",
            db.clone(),
            BatchLimits::for_database(&db),
            mark_redeemed,
        );
        Self {
            db,
            redemptions,
            delete_after: i64::MAX,
        }
    }

    /// Holds results `delete_after` seconds after they were first seen: from then on a read
    /// finds none (and deletes it) and a lab's result starts a new one, whether or not the
    /// retention job has deleted it yet.
    #[must_use]
    pub fn holding_results_for(mut self, delete_after: i64) -> Self {
        self.delete_after = delete_after;
        self
    }

    /// The last second (unix) the result is held: `delete_after` after it was first seen.
    pub fn held_until(&self, result: &StoredResult) -> i64 {
        result.first_seen_at.saturating_add(self.delete_after)
    }

    /// Stores a lab's batch in one transaction. Results already redeemed are left as they are.
    /// Returns how many results were stored (created or changed).
    pub async fn save_lab_results(
        &self,
        lab_id: Option<String>,
        results: Vec<LabResult>,
        now: i64,
    ) -> Result<usize, DbError> {
        let delete_after = self.delete_after;
        let attempt = |lab_id: Option<String>, results: Vec<LabResult>| {
            self.db.transaction(move |conn| {
                let mut stored = 0;
                for r in &results {
                    expire(conn, r.hashed_guid.as_str(), now, delete_after)?;
                    stored += upsert(conn, lab_id.as_deref(), r, now)?;
                }
                Ok(stored)
            })
        };
        match attempt(lab_id.clone(), results.clone()).await {
            // Another request created one of these ids at the same moment: the rows exist now,
            // so a second attempt updates them.
            Err(e) if e.is_unique_violation() => attempt(lab_id, results).await,
            other => other,
        }
    }

    /// The result for a hashed GUID; an unknown one is recorded as pending.
    pub async fn get_or_create_pending(
        &self,
        hashed_guid: HashedGuid,
        now: i64,
    ) -> Result<StoredResult, DbError> {
        let delete_after = self.delete_after;
        self.db
            .run(move |conn| {
                // One read in the common case; a row past its hold is deleted first.
                match find(conn, hashed_guid.as_str())? {
                    Some(found) if found.first_seen_at >= now.saturating_sub(delete_after) => {
                        return Ok(found);
                    }
                    Some(_) => {
                        expire(conn, hashed_guid.as_str(), now, delete_after)?;
                    }
                    None => {}
                }
                let inserted = diesel::insert_into(t::test_results)
                    .values((
                        t::hashed_guid.eq(hashed_guid.as_str()),
                        t::result.eq(i16::from(TestResult::Pending)),
                        t::created_at.eq(now),
                        t::updated_at.eq(now),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_)
                    | Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => {}
                    Err(e) => return Err(e),
                }
                find(conn, hashed_guid.as_str()).map(|r| {
                    r.unwrap_or(StoredResult {
                        result: TestResult::Pending,
                        lab_id: None,
                        sample_collected_at: None,
                        first_seen_at: now,
                    })
                })
            })
            .await
    }

    /// Marks a result redeemed: from then on it reads 4 and no lab can change it. Its lab id and
    /// sample time are dropped, as nothing needs them any more. Returns whether a row changed.
    pub async fn mark_redeemed(&self, hashed_guid: HashedGuid, now: i64) -> Result<bool, DbError> {
        self.redemptions.write((hashed_guid, now)).await
    }

    /// Redeems results first seen more than `redeem_after` seconds ago and deletes those first seen
    /// more than `delete_after` seconds ago. Idempotent. Returns (redeemed, deleted).
    pub async fn apply_retention(
        &self,
        now: i64,
        redeem_after: i64,
        delete_after: i64,
    ) -> Result<(usize, usize), DbError> {
        self.db
            .run(move |conn| {
                let deleted = diesel::delete(
                    t::test_results.filter(t::created_at.lt(now.saturating_sub(delete_after))),
                )
                .execute(conn)?;
                let due = || {
                    t::test_results
                        .filter(t::created_at.lt(now.saturating_sub(redeem_after)))
                        .filter(t::redeemed_at.is_null())
                };
                let quick =
                    i16::from(TestResult::QuickPending)..=i16::from(TestResult::QuickRedeemed);
                // A rapid test's result reads 9 once redeemed, any other 4.
                let rapid =
                    diesel::update(due().filter(t::result.between(*quick.start(), *quick.end())))
                        .set(redeemed_values(now, TestResult::QuickRedeemed))
                        .execute(conn)?;
                let other = diesel::update(due())
                    .set(redeemed_values(now, TestResult::Redeemed))
                    .execute(conn)?;
                Ok((rapid + other, deleted))
            })
            .await
    }

    /// Every row, rendered as text (hashed GUIDs only). For tests that prove a request changed
    /// nothing, and for debugging.
    pub async fn dump(&self) -> Result<Vec<String>, DbError> {
        self.db
            .run(|conn| {
                type Row = (
                    String,
                    i16,
                    Option<String>,
                    Option<i64>,
                    i64,
                    i64,
                    Option<i64>,
                );
                Ok(t::test_results
                    .order(t::hashed_guid)
                    .load::<Row>(conn)?
                    .into_iter()
                    .map(|row| format!("test_results {row:?}"))
                    .collect())
            })
            .await
    }
}

/// Marks one unredeemed result redeemed (a rapid test's reads 9, any other 4). Whether it changed.
fn redeem_one(conn: &mut AnyConnection, hashed_guid: &str, now: i64) -> QueryResult<bool> {
    let unredeemed = t::test_results
        .filter(t::hashed_guid.eq(hashed_guid))
        .filter(t::redeemed_at.is_null());
    let current = unredeemed.select(t::result).first::<i16>(conn).optional()?;
    let Some(current) = current else {
        return Ok(false);
    };
    let redeemed = TestResult::try_from(current)
        .map(TestResult::redeemed)
        .unwrap_or(TestResult::Redeemed);
    diesel::update(unredeemed)
        .set(redeemed_values(now, redeemed))
        .execute(conn)
        .map(|n| n > 0)
}

#[allow(clippy::type_complexity)]
fn redeemed_values(
    now: i64,
    redeemed: TestResult,
) -> (
    diesel::dsl::Eq<t::result, i16>,
    diesel::dsl::Eq<t::lab_id, Option<String>>,
    diesel::dsl::Eq<t::sample_collected_at, Option<i64>>,
    diesel::dsl::Eq<t::redeemed_at, Option<i64>>,
    diesel::dsl::Eq<t::updated_at, i64>,
) {
    (
        t::result.eq(i16::from(redeemed)),
        t::lab_id.eq(None::<String>),
        t::sample_collected_at.eq(None::<i64>),
        t::redeemed_at.eq(Some(now)),
        t::updated_at.eq(now),
    )
}

fn find(conn: &mut AnyConnection, hashed_guid: &str) -> QueryResult<Option<StoredResult>> {
    t::test_results
        .find(hashed_guid)
        .select((t::result, t::lab_id, t::sample_collected_at, t::created_at))
        .first::<StoredResult>(conn)
        .optional()
}

/// Deletes the result for `hashed_guid` if it was first seen more than `delete_after` seconds
/// before `now` — as the retention job does, so that it is never read (or updated) after
/// [`Store::held_until`] even when the job has not run yet.
fn expire(
    conn: &mut AnyConnection,
    hashed_guid: &str,
    now: i64,
    delete_after: i64,
) -> QueryResult<usize> {
    diesel::delete(
        t::test_results
            .filter(t::hashed_guid.eq(hashed_guid))
            .filter(t::created_at.lt(now.saturating_sub(delete_after))),
    )
    .execute(conn)
}

/// Updates an unredeemed row or creates it; a redeemed row is never touched.
fn upsert(
    conn: &mut AnyConnection,
    lab_id: Option<&str>,
    r: &LabResult,
    now: i64,
) -> QueryResult<usize> {
    let update = |conn: &mut AnyConnection| {
        diesel::update(
            t::test_results
                .filter(t::hashed_guid.eq(r.hashed_guid.as_str()))
                .filter(t::redeemed_at.is_null()),
        )
        .set((
            t::result.eq(i16::from(r.result)),
            t::lab_id.eq(lab_id),
            t::sample_collected_at.eq(r.sample_collected_at),
            t::updated_at.eq(now),
        ))
        .execute(conn)
    };
    let updated = update(conn)?;
    if updated > 0 {
        return Ok(updated);
    }
    let exists = t::test_results
        .find(r.hashed_guid.as_str())
        .select(t::hashed_guid)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if exists {
        // Redeemed (the update skips it: 0) — or created by a concurrent request that committed
        // after our update looked (PostgreSQL, read committed): this update sees it.
        return update(conn);
    }
    diesel::insert_into(t::test_results)
        .values((
            t::hashed_guid.eq(r.hashed_guid.as_str()),
            t::result.eq(i16::from(r.result)),
            t::lab_id.eq(lab_id),
            t::sample_collected_at.eq(r.sample_collected_at),
            t::created_at.eq(now),
            t::updated_at.eq(now),
        ))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwarn_testkit::databases;

    fn guid(n: u8) -> HashedGuid {
        format!("{n:02x}").repeat(32).parse().unwrap()
    }

    async fn store(url: &str) -> Store {
        let db = Database::open(url, 4).await.unwrap();
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        Store::new(db)
    }

    fn lab(n: u8, result: TestResult) -> LabResult {
        LabResult {
            hashed_guid: guid(n),
            result,
            sample_collected_at: Some(1_700_000_000),
        }
    }

    #[tokio::test]
    async fn unknown_ids_are_recorded_as_pending_then_updated_by_the_lab() {
        for db in databases() {
            let s = store(db.url()).await;
            let r = s.get_or_create_pending(guid(1), 100).await.unwrap();
            assert_eq!(r.result, TestResult::Pending, "{}", db.label());
            assert_eq!(
                s.save_lab_results(
                    Some("lab-a".into()),
                    vec![lab(1, TestResult::Positive)],
                    200
                )
                .await
                .unwrap(),
                1
            );
            let r = s.get_or_create_pending(guid(1), 300).await.unwrap();
            assert_eq!(
                r,
                StoredResult {
                    result: TestResult::Positive,
                    lab_id: Some("lab-a".into()),
                    sample_collected_at: Some(1_700_000_000),
                    first_seen_at: 100,
                }
            );
        }
    }

    /// A rapid test's result reads 9 (CWA's QUICK_REDEEMED) once redeemed, by a mark or by
    /// retention, and any other 4; on both backends (PostgreSQL marks in one statement).
    #[tokio::test]
    async fn a_redeemed_rapid_test_reads_quick_redeemed() {
        for db in databases() {
            let s = store(db.url()).await;
            s.save_lab_results(
                None,
                vec![
                    lab(1, TestResult::QuickPositive),
                    lab(2, TestResult::Positive),
                    lab(3, TestResult::QuickNegative),
                    lab(4, TestResult::Negative),
                ],
                100,
            )
            .await
            .unwrap();
            let (a, b) = tokio::join!(s.mark_redeemed(guid(1), 150), s.mark_redeemed(guid(2), 150));
            assert!(a.unwrap() && b.unwrap());
            assert_eq!(s.apply_retention(1000, 500, 5000).await.unwrap(), (2, 0));
            for (n, expected) in [
                (1, TestResult::QuickRedeemed),
                (2, TestResult::Redeemed),
                (3, TestResult::QuickRedeemed),
                (4, TestResult::Redeemed),
            ] {
                let r = s.get_or_create_pending(guid(n), 2000).await.unwrap();
                assert_eq!(r.result, expected, "{} {n}", db.label());
            }
        }
    }

    #[tokio::test]
    async fn a_redeemed_result_is_never_changed() {
        for db in databases() {
            let s = store(db.url()).await;
            s.save_lab_results(Some("lab".into()), vec![lab(2, TestResult::Positive)], 100)
                .await
                .unwrap();
            assert!(s.mark_redeemed(guid(2), 150).await.unwrap());
            assert!(
                !s.mark_redeemed(guid(2), 160).await.unwrap(),
                "redeeming twice changes nothing"
            );
            let stored = s
                .save_lab_results(
                    Some("lab".into()),
                    vec![lab(2, TestResult::Negative), lab(3, TestResult::Negative)],
                    200,
                )
                .await
                .unwrap();
            assert_eq!(
                stored,
                1,
                "{}: only the unredeemed result is stored",
                db.label()
            );
            let r = s.get_or_create_pending(guid(2), 300).await.unwrap();
            assert_eq!(
                r,
                StoredResult {
                    result: TestResult::Redeemed,
                    lab_id: None,
                    sample_collected_at: None,
                    first_seen_at: 100,
                }
            );
        }
    }

    /// One statement marking a result twice, an unknown id, one redeemed before and another
    /// result: each changed row is reported once, for its first mark.
    #[tokio::test]
    async fn a_batch_of_marks_reports_each_change_once() {
        for db in databases() {
            let s = store(db.url()).await;
            s.save_lab_results(
                Some("lab".into()),
                vec![
                    lab(2, TestResult::Positive),
                    lab(3, TestResult::Positive),
                    lab(5, TestResult::Positive),
                ],
                100,
            )
            .await
            .unwrap();
            assert!(s.mark_redeemed(guid(5), 110).await.unwrap());
            let batch = vec![
                (guid(2), 150),
                (guid(2), 151),
                (guid(9), 150),
                (guid(5), 150),
                (guid(3), 150),
            ];
            let changed =
                s.db.transaction(move |conn| mark_redeemed(conn, &batch))
                    .await
                    .unwrap();
            assert_eq!(
                changed,
                vec![true, false, false, false, true],
                "{}",
                db.label()
            );
            for id in [2, 3, 5] {
                assert_eq!(
                    s.get_or_create_pending(guid(id), 300).await.unwrap().result,
                    TestResult::Redeemed
                );
            }
        }
    }

    #[tokio::test]
    async fn retention_redeems_then_deletes_and_is_idempotent() {
        for db in databases() {
            let s = store(db.url()).await;
            let day = 86_400;
            s.save_lab_results(Some("lab".into()), vec![lab(4, TestResult::Positive)], 0)
                .await
                .unwrap();
            s.save_lab_results(
                Some("lab".into()),
                vec![lab(5, TestResult::Negative)],
                30 * day,
            )
            .await
            .unwrap();
            assert_eq!(
                s.apply_retention(22 * day, 21 * day, 60 * day)
                    .await
                    .unwrap(),
                (1, 0)
            );
            assert_eq!(
                s.apply_retention(22 * day, 21 * day, 60 * day)
                    .await
                    .unwrap(),
                (0, 0)
            );
            assert_eq!(
                s.get_or_create_pending(guid(4), 22 * day)
                    .await
                    .unwrap()
                    .result,
                TestResult::Redeemed
            );
            assert_eq!(
                s.get_or_create_pending(guid(5), 22 * day)
                    .await
                    .unwrap()
                    .result,
                TestResult::Negative
            );
            assert_eq!(
                s.apply_retention(61 * day, 21 * day, 60 * day)
                    .await
                    .unwrap(),
                (1, 1),
                "{}",
                db.label()
            );
            // guid(4) is gone: asking for it again records a new pending entry.
            assert_eq!(
                s.get_or_create_pending(guid(4), 61 * day)
                    .await
                    .unwrap()
                    .result,
                TestResult::Pending
            );
        }
    }

    #[tokio::test]
    async fn concurrent_lab_posts_of_the_same_new_id_both_succeed() {
        for db in databases() {
            let s = store(db.url()).await;
            let mut tasks = Vec::new();
            for i in 0..8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    s.save_lab_results(
                        Some(format!("lab-{i}")),
                        vec![lab(9, TestResult::Positive)],
                        10,
                    )
                    .await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap(), 1, "{}", db.label());
            }
        }
    }

    /// A result is held `delete_after` after it was first seen, to the second, whether or not the
    /// retention job ran: a read after that finds none (a new pending entry, first seen now), and
    /// a lab's result after that starts a new one.
    #[tokio::test]
    async fn a_result_is_never_read_after_it_is_held() {
        for db in databases() {
            let s = store(db.url()).await.holding_results_for(1000);
            s.save_lab_results(None, vec![lab(1, TestResult::Positive)], 100)
                .await
                .unwrap();
            let r = s.get_or_create_pending(guid(1), 1100).await.unwrap();
            assert_eq!(
                (r.result, s.held_until(&r)),
                (TestResult::Positive, 1100),
                "{}: held through its last second",
                db.label()
            );
            let r = s.get_or_create_pending(guid(1), 1101).await.unwrap();
            assert_eq!((r.result, r.first_seen_at), (TestResult::Pending, 1101));
            // Pending since 1101: a lab's result after 2101 is a new one.
            s.save_lab_results(None, vec![lab(1, TestResult::Negative)], 2102)
                .await
                .unwrap();
            let r = s.get_or_create_pending(guid(1), 2102).await.unwrap();
            assert_eq!((r.result, r.first_seen_at), (TestResult::Negative, 2102));
            assert_eq!(s.dump().await.unwrap().len(), 1, "{}", db.label());
        }
    }
}
