//! `tans`: issued for a session, verified, and spent by submission in three steps (reserve,
//! commit, or release), reservations and commits of concurrent uploads written together.

use super::sessions::{find_session, hashed_guid_of};
use super::{Source, Store, s, stored_guid, t};
use diesel::prelude::*;
use openwarn_db::{AnyConnection, DbError};
use openwarn_domain::HashedGuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TanIssue {
    Issued,
    UnknownSession,
    /// The session's TANs made every upload it may make.
    AlreadyRedeemed,
    /// The session has had its quota of TANs.
    QuotaUsed,
    /// Another TAN of the session is being used for an upload right now (reserved): a second
    /// TAN meanwhile could upload a second time. Nothing changed; ask again later.
    InUse,
}

/// A TAN reservation that submission holds while it stores keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub source: Source,
    pub reserved_until: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The TAN is spent; for GUID sessions, the hashed GUID whose result is now redeemed.
    Done { hashed_guid: Option<HashedGuid> },
    /// No such TAN.
    Unknown,
}

/// A reservation to make: see [`Store::reserve_tan`].
#[derive(Debug)]
pub(super) struct ReserveTan {
    tan_hash: String,
    reservation_id: String,
    now: i64,
    reserved_until: i64,
}

/// A commit to make: see [`Store::commit_tan`].
#[derive(Debug)]
pub(super) struct CommitTan {
    tan_hash: String,
    reservation_id: String,
    now: i64,
}

impl Store {
    /// Issues a TAN for a session: while no earlier TAN was redeemed and fewer than `max` were
    /// issued. Earlier unredeemed TANs that are not reserved stop being valid: one valid TAN per
    /// session at a time. While an earlier one is reserved (an upload with it is under way),
    /// nothing is issued (`InUse`): the upload may yet succeed, and a second TAN could upload
    /// again. (A reservation taken while this runs either sees its TAN voided, or is seen here:
    /// both update the same row, one after the other.)
    pub async fn issue_tan(
        &self,
        token_hash: String,
        tan_hash: String,
        now: i64,
        expires_at: i64,
        max: i32,
        max_uploads: i32,
    ) -> Result<TanIssue, DbError> {
        self.db
            .transaction(move |conn| {
                let Some(session) = find_session(conn, &token_hash)? else {
                    return Ok(TanIssue::UnknownSession);
                };
                if session.uploads >= max_uploads {
                    return Ok(TanIssue::AlreadyRedeemed);
                }
                let counted = diesel::update(
                    s::app_sessions
                        .filter(s::token_hash.eq(&token_hash))
                        .filter(s::tans_issued.lt(max))
                        .filter(s::uploads.lt(max_uploads)),
                )
                .set(s::tans_issued.eq(s::tans_issued + 1))
                .execute(conn)?;
                if counted == 0 {
                    return Ok(TanIssue::QuotaUsed);
                }
                diesel::update(
                    t::tans
                        .filter(t::session_hash.eq(&token_hash))
                        .filter(t::redeemed_at.is_null())
                        .filter(t::expires_at.gt(now))
                        .filter(t::reserved_until.is_null().or(t::reserved_until.le(now))),
                )
                .set(t::expires_at.eq(now))
                .execute(conn)?;
                let in_use = t::tans
                    .filter(t::session_hash.eq(&token_hash))
                    .filter(t::redeemed_at.is_null())
                    .filter(t::expires_at.gt(now))
                    .filter(t::reserved_until.gt(now))
                    .count()
                    .get_result::<i64>(conn)?;
                if in_use > 0 {
                    // Undo the count (the transaction keeps what it did so far).
                    diesel::update(s::app_sessions.filter(s::token_hash.eq(&token_hash)))
                        .set(s::tans_issued.eq(s::tans_issued - 1))
                        .execute(conn)?;
                    return Ok(TanIssue::InUse);
                }
                diesel::insert_into(t::tans)
                    .values((
                        t::tan_hash.eq(&tan_hash),
                        t::session_hash.eq(&token_hash),
                        t::source.eq(session.source.code()),
                        t::created_at.eq(now),
                        t::expires_at.eq(expires_at),
                    ))
                    .execute(conn)?;
                Ok(TanIssue::Issued)
            })
            .await
    }

    /// Whether a TAN is valid now (issued, unexpired, unredeemed); its source if so.
    pub async fn verify_tan(&self, tan_hash: String, now: i64) -> Result<Option<Source>, DbError> {
        self.db
            .run(move |conn| {
                t::tans
                    .filter(t::tan_hash.eq(&tan_hash))
                    .filter(t::redeemed_at.is_null())
                    .filter(t::expires_at.gt(now))
                    .select(t::source)
                    .first::<i16>(conn)
                    .optional()
                    .map(|o| o.map(Source::from_code))
            })
            .await
    }

    /// Reserves a valid TAN that no one holds (or whose reservation lapsed). One conditional
    /// update (for a batch of concurrent reservations), so of concurrent callers exactly one wins.
    pub async fn reserve_tan(
        &self,
        tan_hash: String,
        reservation_id: String,
        now: i64,
        reserved_until: i64,
    ) -> Result<Option<Reservation>, DbError> {
        self.reservations
            .write(ReserveTan {
                tan_hash,
                reservation_id,
                now,
                reserved_until,
            })
            .await
    }

    /// Spends a TAN whose keys submission has stored under `reservation_id`: deletes it (a spent
    /// TAN is kept nowhere), counts the upload for its session and voids the session's other
    /// TANs. Keys once stored make the TAN spent whatever happened since the reservation — it
    /// lapsed, the TAN expired, or another upload reserved it meanwhile (submission refuses that
    /// one's keys): so this spends any unspent TAN. A TAN spent before is gone: `Unknown`, which
    /// submission takes as spent (a retried commit). Only submission may call it (named
    /// callers), and only after storing keys under a reservation it got.
    pub async fn commit_tan(
        &self,
        tan_hash: String,
        reservation_id: String,
        now: i64,
    ) -> Result<Committed, DbError> {
        self.commits
            .write(CommitTan {
                tan_hash,
                reservation_id,
                now,
            })
            .await
    }

    /// Gives a reserved TAN back, usable again. `false` when that reservation is not held.
    pub async fn release_tan(
        &self,
        tan_hash: String,
        reservation_id: String,
    ) -> Result<bool, DbError> {
        self.db
            .run(move |conn| {
                diesel::update(
                    t::tans
                        .filter(t::tan_hash.eq(&tan_hash))
                        .filter(t::reservation_id.eq(&reservation_id))
                        .filter(t::redeemed_at.is_null()),
                )
                .set((
                    t::reservation_id.eq(None::<String>),
                    t::reserved_until.eq(None::<i64>),
                ))
                .execute(conn)
                .map(|n| n > 0)
            })
            .await
    }
}

/// Reserves a batch of TANs in one statement. A TAN in the batch twice is reserved for one of
/// them (the returned reservation id tells which). Binds: TAN hashes, reservation ids, nows,
/// reserved-untils (parallel arrays).
const RESERVE_TANS_PG: &str = "\
UPDATE tans SET reservation_id = v.reservation_id, reserved_until = v.reserved_until
FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[])
    AS v(tan_hash, reservation_id, now, reserved_until)
WHERE tans.tan_hash = v.tan_hash AND tans.redeemed_at IS NULL AND tans.expires_at > v.now
  AND (tans.reserved_until IS NULL OR tans.reserved_until <= v.now)
RETURNING tans.tan_hash, tans.reservation_id, tans.source";

#[derive(diesel::QueryableByName)]
struct ReservedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tan_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    reservation_id: String,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    source: i16,
}

pub(super) fn reserve_tans(
    conn: &mut AnyConnection,
    batch: &[ReserveTan],
) -> QueryResult<Vec<Option<Reservation>>> {
    let AnyConnection::Postgresql(pg) = conn else {
        // SQLite: one by one, inside the batch's write transaction.
        return batch.iter().map(|r| reserve_one(conn, r)).collect();
    };
    use diesel::sql_types::{Array, BigInt, Text};
    let won: std::collections::HashMap<(String, String), i16> =
        openwarn_db::prepared(RESERVE_TANS_PG)
            .bind::<Array<Text>, _>(batch.iter().map(|r| r.tan_hash.clone()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(
                batch
                    .iter()
                    .map(|r| r.reservation_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<BigInt>, _>(batch.iter().map(|r| r.now).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(batch.iter().map(|r| r.reserved_until).collect::<Vec<_>>())
            .load::<ReservedRow>(pg)?
            .into_iter()
            .map(|row| ((row.tan_hash, row.reservation_id), row.source))
            .collect();
    Ok(batch
        .iter()
        .map(|r| {
            won.get(&(r.tan_hash.clone(), r.reservation_id.clone()))
                .map(|source| Reservation {
                    source: Source::from_code(*source),
                    reserved_until: r.reserved_until,
                })
        })
        .collect())
}

fn reserve_one(conn: &mut AnyConnection, r: &ReserveTan) -> QueryResult<Option<Reservation>> {
    let reservable = t::tans
        .filter(t::tan_hash.eq(&r.tan_hash))
        .filter(t::redeemed_at.is_null())
        .filter(t::expires_at.gt(r.now))
        .filter(t::reserved_until.is_null().or(t::reserved_until.le(r.now)));
    let updated = diesel::update(reservable)
        .set((
            t::reservation_id.eq(Some(&r.reservation_id)),
            t::reserved_until.eq(Some(r.reserved_until)),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    let source = t::tans
        .find(&r.tan_hash)
        .select(t::source)
        .first::<i16>(conn)?;
    Ok(Some(Reservation {
        source: Source::from_code(source),
        reserved_until: r.reserved_until,
    }))
}

/// Spends a batch of TANs, closes their sessions and voids the sessions' other TANs, in
/// one statement. The voiding update excludes the TANs spent here (one statement must not update
/// a row twice). Binds: TAN hashes, reservation ids, nows (parallel arrays).
const COMMIT_TANS_PG: &str = "\
WITH v AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS v(tan_hash, reservation_id, now)
), spent AS (
    DELETE FROM tans USING v
    WHERE tans.tan_hash = v.tan_hash AND tans.redeemed_at IS NULL
    RETURNING tans.tan_hash, v.reservation_id, tans.session_hash, v.now
), closed AS (
    UPDATE app_sessions SET tan_redeemed_at = COALESCE(app_sessions.tan_redeemed_at, spent.now),
        uploads = app_sessions.uploads + 1
    FROM spent
    WHERE app_sessions.token_hash = spent.session_hash
    RETURNING app_sessions.token_hash, app_sessions.hashed_guid
), voided AS (
    UPDATE tans SET expires_at = spent.now
    FROM spent
    WHERE tans.session_hash = spent.session_hash
      AND tans.tan_hash NOT IN (SELECT tan_hash FROM spent)
      AND tans.redeemed_at IS NULL AND tans.expires_at > spent.now
)
SELECT spent.tan_hash, spent.reservation_id, closed.hashed_guid
FROM spent LEFT JOIN closed ON closed.token_hash = spent.session_hash";

#[derive(diesel::QueryableByName)]
struct SpentRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tan_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    reservation_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    hashed_guid: Option<String>,
}

pub(super) fn commit_tans(
    conn: &mut AnyConnection,
    batch: &[CommitTan],
) -> QueryResult<Vec<Committed>> {
    let spent: std::collections::HashMap<(String, String), Option<HashedGuid>> = match conn {
        AnyConnection::Postgresql(pg) => {
            use diesel::sql_types::{Array, BigInt, Text};
            openwarn_db::prepared(COMMIT_TANS_PG)
                .bind::<Array<Text>, _>(
                    batch.iter().map(|c| c.tan_hash.clone()).collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(
                    batch
                        .iter()
                        .map(|c| c.reservation_id.clone())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<BigInt>, _>(batch.iter().map(|c| c.now).collect::<Vec<_>>())
                .load::<SpentRow>(pg)?
                .into_iter()
                .map(|row| {
                    let hashed_guid = stored_guid(row.hashed_guid)?;
                    Ok(((row.tan_hash, row.reservation_id), hashed_guid))
                })
                .collect::<QueryResult<_>>()?
        }
        // SQLite: the same steps one commit at a time, inside the batch's write transaction.
        AnyConnection::Sqlite(_) => {
            let mut spent = std::collections::HashMap::new();
            for c in batch {
                if let Some(hashed_guid) = commit_portably(conn, &c.tan_hash, c.now)? {
                    spent.insert((c.tan_hash.clone(), c.reservation_id.clone()), hashed_guid);
                }
            }
            spent
        }
    };
    batch
        .iter()
        .map(
            |c| match spent.get(&(c.tan_hash.clone(), c.reservation_id.clone())) {
                Some(hashed_guid) => Ok(Committed::Done {
                    hashed_guid: hashed_guid.clone(),
                }),
                // Not spent by this batch: spent before (and deleted then: a retried commit), or
                // no such TAN.
                None => Ok(Committed::Unknown),
            },
        )
        .collect()
}

/// Spends, closes and voids in three statements; `Some(hashed guid of the session)` when it spent
/// the TAN (the inner `Option` is `None` for teleTAN sessions).
fn commit_portably(
    conn: &mut AnyConnection,
    tan_hash: &str,
    now: i64,
) -> QueryResult<Option<Option<HashedGuid>>> {
    let Some(session_hash) = t::tans
        .filter(t::tan_hash.eq(tan_hash))
        .filter(t::redeemed_at.is_null())
        .select(t::session_hash)
        .first::<String>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    diesel::delete(t::tans.find(tan_hash)).execute(conn)?;
    diesel::update(s::app_sessions.filter(s::token_hash.eq(&session_hash)))
        .set(s::uploads.eq(s::uploads + 1))
        .execute(conn)?;
    diesel::update(
        s::app_sessions
            .filter(s::token_hash.eq(&session_hash))
            .filter(s::tan_redeemed_at.is_null()),
    )
    .set(s::tan_redeemed_at.eq(Some(now)))
    .execute(conn)?;
    // Other TANs of the session are of no use any more.
    diesel::update(
        t::tans
            .filter(t::session_hash.eq(&session_hash))
            .filter(t::redeemed_at.is_null())
            .filter(t::expires_at.gt(now)),
    )
    .set(t::expires_at.eq(now))
    .execute(conn)?;
    hashed_guid_of(conn, &session_hash).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use openwarn_testkit::databases;

    #[tokio::test]
    async fn reserve_commit_spends_a_tan_once() {
        for db in databases() {
            let s = store(db.url()).await;
            let tan = session_with_tan(&s, "s").await;
            assert_eq!(
                s.verify_tan(tan.clone(), NOW).await.unwrap(),
                Some(Source::Guid)
            );
            let r = s
                .reserve_tan(tan.clone(), "r1".into(), NOW, NOW + 60)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.reserved_until, NOW + 60);
            assert!(
                s.reserve_tan(tan.clone(), "r2".into(), NOW + 1, NOW + 61)
                    .await
                    .unwrap()
                    .is_none(),
                "held"
            );
            let done = s
                .commit_tan(tan.clone(), "r1".into(), NOW + 2)
                .await
                .unwrap();
            assert_eq!(
                done,
                Committed::Done {
                    hashed_guid: Some(hashed_guid("guid-s"))
                }
            );
            // A spent TAN is deleted: a retried commit finds nothing (submission takes that as
            // spent), and nothing of the TAN is left.
            assert_eq!(
                s.commit_tan(tan.clone(), "r1".into(), NOW + 3)
                    .await
                    .unwrap(),
                Committed::Unknown,
            );
            assert!(
                !s.dump()
                    .await
                    .unwrap()
                    .iter()
                    .any(|row| row.starts_with("tans ")),
                "{}: the spent TAN is deleted",
                db.label()
            );
            assert!(
                s.reserve_tan(tan.clone(), "r3".into(), NOW + 100, NOW + 160)
                    .await
                    .unwrap()
                    .is_none(),
                "spent"
            );
            assert_eq!(s.verify_tan(tan, NOW + 4).await.unwrap(), None);
            // The session is closed: no more TANs.
            assert_eq!(
                s.issue_tan(h("s"), h("tan-2"), NOW + 5, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::AlreadyRedeemed,
                "{}",
                db.label()
            );
        }
    }

    /// While a TAN of a session is reserved (an upload with it under way), the session gets no
    /// other TAN: it could upload a second time (issue 19's race). Once the reservation is given
    /// back, a new TAN replaces the old one; once a TAN is spent, the session gets none.
    #[tokio::test]
    async fn no_second_tan_while_one_is_reserved() {
        for db in databases() {
            let s = store(db.url()).await;
            let first = session_with_tan(&s, "s").await;
            s.reserve_tan(first.clone(), "r1".into(), NOW, NOW + 60)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                s.issue_tan(h("s"), h("second"), NOW + 1, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::InUse,
                "{}",
                db.label()
            );
            assert!(s.verify_tan(h("second"), NOW + 2).await.unwrap().is_none());
            assert!(
                s.verify_tan(first.clone(), NOW + 2)
                    .await
                    .unwrap()
                    .is_some()
            );
            // The upload failed and gave the TAN back: a new one replaces it.
            assert!(s.release_tan(first.clone(), "r1".into()).await.unwrap());
            assert_eq!(
                s.issue_tan(h("s"), h("second"), NOW + 3, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::Issued
            );
            assert!(
                s.verify_tan(first.clone(), NOW + 4)
                    .await
                    .unwrap()
                    .is_none(),
                "voided"
            );
            // The refused attempt did not count: the third of three TANs is still there.
            assert_eq!(
                s.issue_tan(h("s"), h("third"), NOW + 5, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::Issued,
                "{}",
                db.label()
            );
            s.reserve_tan(h("third"), "r3".into(), NOW + 6, NOW + 66)
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(
                s.commit_tan(h("third"), "r3".into(), NOW + 7)
                    .await
                    .unwrap(),
                Committed::Done { .. }
            ));
            assert_eq!(
                s.issue_tan(h("s"), h("fourth"), NOW + 8, NOW + 3600, 5, 1)
                    .await
                    .unwrap(),
                TanIssue::AlreadyRedeemed
            );
        }
    }

    /// With two uploads per session, a TAN spent leaves room for one more TAN; the second spent
    /// closes the session.
    #[tokio::test]
    async fn a_session_makes_its_uploads_and_no_more() {
        for db in databases() {
            let s = store(db.url()).await;
            let mut spend = Vec::new();
            for (i, tan) in ["u1", "u2"].into_iter().enumerate() {
                let at = NOW + 10 * i64::try_from(i).unwrap();
                if i == 0 {
                    s.register_guid(h("s"), hashed_guid("guid-s"), NOW)
                        .await
                        .unwrap();
                }
                {
                    assert_eq!(
                        s.issue_tan(h("s"), h(tan), at, at + 3600, 3, 2)
                            .await
                            .unwrap(),
                        TanIssue::Issued,
                        "{}",
                        db.label()
                    );
                }
                s.reserve_tan(h(tan), format!("r{i}"), at + 1, at + 61)
                    .await
                    .unwrap()
                    .unwrap();
                spend.push(s.commit_tan(h(tan), format!("r{i}"), at + 2).await.unwrap());
            }
            assert!(spend.iter().all(|c| matches!(c, Committed::Done { .. })));
            assert_eq!(
                s.issue_tan(h("s"), h("u3"), NOW + 30, NOW + 3600, 3, 2)
                    .await
                    .unwrap(),
                TanIssue::AlreadyRedeemed,
                "{}",
                db.label()
            );
        }
    }

    #[tokio::test]
    async fn a_released_or_lapsed_reservation_leaves_the_tan_usable() {
        for db in databases() {
            let s = store(db.url()).await;
            let tan = session_with_tan(&s, "s").await;
            s.reserve_tan(tan.clone(), "r1".into(), NOW, NOW + 60)
                .await
                .unwrap()
                .unwrap();
            assert!(!s.release_tan(tan.clone(), "other".into()).await.unwrap());
            assert!(s.release_tan(tan.clone(), "r1".into()).await.unwrap());
            assert!(
                !s.release_tan(tan.clone(), "r1".into()).await.unwrap(),
                "released once"
            );
            s.reserve_tan(tan.clone(), "r2".into(), NOW + 1, NOW + 61)
                .await
                .unwrap()
                .unwrap();
            // r2 lapses at NOW + 61; then someone else may reserve (submission refuses that
            // upload's keys while r2's commit is pending there) — and r2's commit still spends
            // the TAN: its keys are stored.
            assert!(
                s.reserve_tan(tan.clone(), "r3".into(), NOW + 60, NOW + 120)
                    .await
                    .unwrap()
                    .is_none()
            );
            s.reserve_tan(tan.clone(), "r3".into(), NOW + 61, NOW + 121)
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(
                s.commit_tan(tan.clone(), "r2".into(), NOW + 62)
                    .await
                    .unwrap(),
                Committed::Done { .. }
            ));
            assert!(
                s.reserve_tan(tan.clone(), "r4".into(), NOW + 63, NOW + 123)
                    .await
                    .unwrap()
                    .is_none(),
                "spent"
            );
            assert_eq!(
                s.commit_tan(tan, "r3".into(), NOW + 62).await.unwrap(),
                Committed::Unknown,
                "{}: spent and deleted",
                db.label()
            );
        }
    }

    /// One batch statement holding the same TAN twice, a TAN of another session and an unknown
    /// one: one reservation of the doubled TAN wins, the other TAN is reserved, the unknown not.
    #[tokio::test]
    async fn a_reservation_batch_gives_each_tan_to_one_holder() {
        for db in databases() {
            let s = store(db.url()).await;
            let (a, b) = (
                session_with_tan(&s, "a").await,
                session_with_tan(&s, "b").await,
            );
            let item = |tan: &str, id: &str| ReserveTan {
                tan_hash: tan.to_owned(),
                reservation_id: id.to_owned(),
                now: NOW,
                reserved_until: NOW + 60,
            };
            let batch = vec![
                item(&a, "r1"),
                item(&a, "r2"),
                item(&b, "r3"),
                item(&h("unknown"), "r4"),
            ];
            let got =
                s.db.transaction(move |conn| reserve_tans(conn, &batch))
                    .await
                    .unwrap();
            assert_eq!(
                got.iter().take(2).filter(|r| r.is_some()).count(),
                1,
                "{}: one holder of a",
                db.label()
            );
            assert_eq!(
                got[2],
                Some(Reservation {
                    source: Source::Guid,
                    reserved_until: NOW + 60
                })
            );
            assert_eq!(got[3], None);
            let holder = if got[0].is_some() { "r1" } else { "r2" };
            assert!(matches!(
                s.commit_tan(a, holder.into(), NOW + 1).await.unwrap(),
                Committed::Done { .. }
            ));
        }
    }

    /// One batch: TANs of two sessions, one of them twice (the same commit sent twice), a TAN
    /// spent (and so deleted) before, and a TAN that does not exist: each gets its own answer.
    #[tokio::test]
    async fn a_commit_batch_answers_each_commit() {
        for db in databases() {
            let s = store(db.url()).await;
            let reserved = |guid: &'static str, id: &'static str| {
                let s = s.clone();
                async move {
                    let tan = session_with_tan(&s, guid).await;
                    s.reserve_tan(tan.clone(), id.into(), NOW, NOW + 60)
                        .await
                        .unwrap()
                        .unwrap();
                    tan
                }
            };
            let first = reserved("s", "r1").await;
            let other = reserved("o", "r3").await;
            let spent_before = reserved("p", "r5").await;
            s.commit_tan(spent_before.clone(), "r5".into(), NOW + 1)
                .await
                .unwrap();
            let item = |tan: &str, id: &str| CommitTan {
                tan_hash: tan.to_owned(),
                reservation_id: id.to_owned(),
                now: NOW + 2,
            };
            let batch = vec![
                item(&first, "r1"),
                item(&first, "r1"),
                item(&other, "r3"),
                item(&spent_before, "r5"),
                item(&h("nonexistent"), "r6"),
            ];
            let got =
                s.db.transaction(move |conn| commit_tans(conn, &batch))
                    .await
                    .unwrap();
            let done = |guid: &str| Committed::Done {
                hashed_guid: Some(hashed_guid(&format!("guid-{guid}"))),
            };
            assert_eq!(
                got,
                vec![
                    done("s"),
                    done("s"),
                    done("o"),
                    Committed::Unknown,
                    Committed::Unknown
                ],
                "{}",
                db.label()
            );
            for tan in [first, other, spent_before] {
                assert!(
                    s.verify_tan(tan, NOW + 3).await.unwrap().is_none(),
                    "{}",
                    db.label()
                );
            }
        }
    }

    #[tokio::test]
    async fn of_concurrent_reservations_exactly_one_wins() {
        for db in databases() {
            let s = store(db.url()).await;
            let tan = session_with_tan(&s, "s").await;
            let mut tasks = Vec::new();
            for i in 0..16 {
                let (s, tan) = (s.clone(), tan.clone());
                tasks.push(tokio::spawn(async move {
                    s.reserve_tan(tan, format!("r{i}"), NOW, NOW + 60)
                        .await
                        .unwrap()
                }));
            }
            let mut winners = 0;
            for t in tasks {
                winners += usize::from(t.await.unwrap().is_some());
            }
            assert_eq!(winners, 1, "{}", db.label());
        }
    }

    #[tokio::test]
    async fn tans_per_session_are_capped_and_a_new_one_replaces_the_old() {
        for db in databases() {
            let s = store(db.url()).await;
            let first = session_with_tan(&s, "s").await;
            assert_eq!(
                s.issue_tan(h("s"), h("t2"), NOW + 1, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::Issued
            );
            assert_eq!(
                s.verify_tan(first, NOW + 2).await.unwrap(),
                None,
                "the earlier TAN stopped being valid"
            );
            assert_eq!(
                s.verify_tan(h("t2"), NOW + 2).await.unwrap(),
                Some(Source::Guid)
            );
            assert_eq!(
                s.issue_tan(h("s"), h("t3"), NOW + 2, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::Issued
            );
            assert_eq!(
                s.issue_tan(h("s"), h("t4"), NOW + 3, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::QuotaUsed
            );
            assert_eq!(
                s.issue_tan(h("unknown"), h("t5"), NOW, NOW + 3600, 3, 1)
                    .await
                    .unwrap(),
                TanIssue::UnknownSession
            );
            assert_eq!(
                s.session(h("s")).await.unwrap().unwrap().tans_issued,
                3,
                "{}",
                db.label()
            );
        }
    }

    #[tokio::test]
    async fn tans_expire() {
        for db in databases() {
            let s = store(db.url()).await;
            let tan = session_with_tan(&s, "s").await;
            assert!(
                s.verify_tan(tan.clone(), NOW + 3599)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                s.verify_tan(tan.clone(), NOW + 3600)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                s.reserve_tan(tan, "r".into(), NOW + 3600, NOW + 3660)
                    .await
                    .unwrap()
                    .is_none(),
                "{}",
                db.label()
            );
        }
    }
}
