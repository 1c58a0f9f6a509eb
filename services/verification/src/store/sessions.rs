//! `app_sessions`: one per registration token, from a hashed GUID or a teleTAN (which
//! [`super::teletans`] spends).

use super::{Source, Store, is_unique_violation, s, stored_guid};
use diesel::prelude::*;
use openwarn_db::{AnyConnection, DbError};
use openwarn_domain::HashedGuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub source: Source,
    pub hashed_guid: Option<HashedGuid>,
    /// The date-of-birth-bound id the app registered with the hashed GUID (CWA's `keyDob`), if
    /// any: the result of the test is the lab's result for both, and they must agree.
    pub hashed_guid_dob: Option<HashedGuid>,
    /// Its TAN was issued for a positive rapid antigen test: once redeemed it reads 9, not 4.
    pub rapid_test: bool,
    pub tans_issued: i32,
    /// A TAN of the session was spent: an upload was made (the lab's result is redeemed).
    pub tan_redeemed: bool,
    /// How many uploads the session's TANs made.
    pub uploads: i32,
    /// The phone has used the token (polled or asked for a TAN).
    pub claimed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// This hashed GUID (or date-of-birth-bound id) already has a session, as either of its ids.
    AlreadyRegistered,
    /// The teleTAN is unknown, expired or already used.
    TeleTanRefused,
}

impl Store {
    /// A session for a hashed GUID; at most one per hashed GUID.
    pub async fn register_guid(
        &self,
        token_hash: String,
        hashed_guid: HashedGuid,
        now: i64,
    ) -> Result<Registered, DbError> {
        self.register_guid_with_dob(token_hash, hashed_guid, None, now)
            .await
    }

    /// A session for a hashed GUID and, optionally, its date-of-birth-bound id. As CWA's
    /// `AppSessionService.generateRegistrationTokenByGuid`: refused when either id is already a
    /// session's hashed GUID or date-of-birth-bound id (so the same date-of-birth id cannot bind
    /// a second GUID, and a GUID cannot register again with another date of birth) — unless that
    /// session is for exactly these ids and its token was never used (no poll, no TAN): then the
    /// answer to the first registration was lost, and this one gets the session under its new
    /// token (the old one stops working). Someone who knows the ids gains nothing by it they
    /// would not by registering first; once the phone has polled, the session is its own.
    pub async fn register_guid_with_dob(
        &self,
        token_hash: String,
        hashed_guid: HashedGuid,
        hashed_guid_dob: Option<HashedGuid>,
        now: i64,
    ) -> Result<Registered, DbError> {
        self.db
            .transaction(move |conn| {
                let mut ids: Vec<&str> = std::iter::once(hashed_guid.as_str())
                    .chain(hashed_guid_dob.as_ref().map(HashedGuid::as_str))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                // PostgreSQL (read committed): concurrent registrations naming the same id wait
                // for each other, so that an id cannot slip in under the other column between
                // the check and the insert (the unique indexes cover each column only). In
                // sorted order: no deadlock. SQLite serialises writers anyway.
                super::lock_ids(conn, &ids)?;
                let taken = s::app_sessions
                    .filter(
                        s::hashed_guid
                            .eq_any(ids.clone())
                            .or(s::hashed_guid_dob.eq_any(ids.clone())),
                    )
                    .select((
                        s::token_hash,
                        s::hashed_guid,
                        s::hashed_guid_dob,
                        s::claimed_at,
                        s::tans_issued,
                    ))
                    .load::<(String, Option<String>, Option<String>, Option<i64>, i32)>(conn)?;
                // An id whose session retention deleted registers again only once test-result
                // no longer holds its result (see `super::tombstones`).
                if super::tombstones::buried(conn, &ids, now)? {
                    return Ok(Registered::AlreadyRegistered);
                }
                match taken.as_slice() {
                    [] => {}
                    [(old, guid, dob, None, 0)]
                        if guid.as_deref() == Some(hashed_guid.as_str())
                            && dob.as_deref()
                                == hashed_guid_dob.as_ref().map(HashedGuid::as_str) =>
                    {
                        let moved = diesel::update(
                            s::app_sessions
                                .find(old)
                                .filter(s::claimed_at.is_null())
                                .filter(s::tans_issued.eq(0)),
                        )
                        .set(s::token_hash.eq(&token_hash))
                        .execute(conn)?;
                        return Ok(if moved == 1 {
                            Registered::Created
                        } else {
                            Registered::AlreadyRegistered
                        });
                    }
                    _ => return Ok(Registered::AlreadyRegistered),
                }
                // The unique indexes refuse what a concurrent registration inserted meanwhile
                // under the same column.
                let inserted = diesel::insert_into(s::app_sessions)
                    .values((
                        s::token_hash.eq(&token_hash),
                        s::hashed_guid.eq(Some(hashed_guid.as_str())),
                        s::hashed_guid_dob.eq(hashed_guid_dob.as_ref().map(HashedGuid::as_str)),
                        s::source.eq(Source::Guid.code()),
                        s::created_at.eq(now),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_) => Ok(Registered::Created),
                    Err(e) if is_unique_violation(&e) => Ok(Registered::AlreadyRegistered),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Records that the session's TAN is issued for a positive rapid antigen test (before it is
    /// issued), so that the session reads CWA's QUICK_REDEEMED once redeemed without asking
    /// test-result. Idempotent.
    pub async fn mark_rapid_test(&self, token_hash: String) -> Result<(), DbError> {
        self.db
            .run(move |conn| {
                diesel::update(s::app_sessions.find(&token_hash))
                    .set(s::rapid_test.eq(1))
                    .execute(conn)
                    .map(drop)
            })
            .await
    }

    /// The session of a token, which the phone has now used: from then on a registration with
    /// the same ids is refused (one write per session, on its first use).
    pub async fn session(&self, token_hash: String) -> Result<Option<Session>, DbError> {
        let found = self
            .db
            .run({
                let token_hash = token_hash.clone();
                move |conn| find_session(conn, &token_hash)
            })
            .await?;
        if let Some(session) = &found
            && !session.claimed
        {
            let now = openwarn_bootstrap::lifecycle::unix_now();
            self.db
                .run(move |conn| {
                    diesel::update(
                        s::app_sessions
                            .find(&token_hash)
                            .filter(s::claimed_at.is_null()),
                    )
                    .set(s::claimed_at.eq(Some(now)))
                    .execute(conn)
                    .map(drop)
                })
                .await?;
        }
        Ok(found)
    }
}

pub(super) fn hashed_guid_of(
    conn: &mut AnyConnection,
    session_hash: &str,
) -> QueryResult<Option<HashedGuid>> {
    s::app_sessions
        .find(session_hash)
        .select(s::hashed_guid)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
        .and_then(stored_guid)
}

pub(super) fn find_session(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> QueryResult<Option<Session>> {
    type Row = (
        i16,
        Option<String>,
        i32,
        Option<i64>,
        Option<String>,
        i16,
        i32,
        Option<i64>,
    );
    s::app_sessions
        .find(token_hash)
        .select((
            s::source,
            s::hashed_guid,
            s::tans_issued,
            s::tan_redeemed_at,
            s::hashed_guid_dob,
            s::rapid_test,
            s::uploads,
            s::claimed_at,
        ))
        .first::<Row>(conn)
        .optional()?
        .map(
            |(source, hashed_guid, tans_issued, redeemed, dob, rapid_test, uploads, claimed)| {
                Ok(Session {
                    source: Source::from_code(source),
                    hashed_guid: stored_guid(hashed_guid)?,
                    hashed_guid_dob: stored_guid(dob)?,
                    rapid_test: rapid_test != 0,
                    tans_issued,
                    tan_redeemed: redeemed.is_some(),
                    uploads,
                    claimed: claimed.is_some(),
                })
            },
        )
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use openwarn_testkit::databases;

    #[tokio::test]
    async fn one_session_per_hashed_guid() {
        for db in databases() {
            let s = store(db.url()).await;
            assert_eq!(
                s.register_guid(h("t1"), hashed_guid("g"), NOW)
                    .await
                    .unwrap(),
                Registered::Created
            );
            // The phone uses its token.
            assert!(s.session(h("t1")).await.unwrap().is_some());
            assert_eq!(
                s.register_guid(h("t2"), hashed_guid("g"), NOW)
                    .await
                    .unwrap(),
                Registered::AlreadyRegistered,
                "{}",
                db.label()
            );
            let session = s.session(h("t1")).await.unwrap().unwrap();
            assert_eq!(session.source, Source::Guid);
            assert_eq!(session.hashed_guid, Some(hashed_guid("g")));
            assert!(s.session(h("t2")).await.unwrap().is_none());
        }
    }

    /// Issue 19: the answer to a registration was lost (the proxy or verification died after the
    /// session was made). The same ids register again and get the session under a new token,
    /// until the phone uses a token; other ids, or a used session, stay refused.
    #[tokio::test]
    async fn a_lost_registration_answer_can_be_retried_until_the_token_is_used() {
        let dob = |n: &str| -> HashedGuid { format!("x{}", &h(n)[1..]).parse().unwrap() };
        for db in databases() {
            let s = store(db.url()).await;
            let register = |t: &str, d: Option<HashedGuid>| {
                s.register_guid_with_dob(h(t), hashed_guid("g"), d, NOW)
            };
            assert_eq!(
                register("t1", Some(dob("d"))).await.unwrap(),
                Registered::Created
            );
            // Retried with the same ids: a new token for the same session; the old one is void.
            assert_eq!(
                register("t2", Some(dob("d"))).await.unwrap(),
                Registered::Created,
                "{}",
                db.label()
            );
            assert!(
                s.session(h("t1")).await.unwrap().is_none(),
                "{}",
                db.label()
            );
            assert_eq!(s.dump().await.unwrap().len(), 1, "one session");
            // Not with other ids.
            assert_eq!(
                register("t3", None).await.unwrap(),
                Registered::AlreadyRegistered
            );
            // The phone polls with its token: the session is its own from now on.
            let session = s.session(h("t2")).await.unwrap().unwrap();
            assert_eq!(session.hashed_guid_dob, Some(dob("d")));
            assert_eq!(
                register("t4", Some(dob("d"))).await.unwrap(),
                Registered::AlreadyRegistered,
                "{}",
                db.label()
            );
            assert!(s.session(h("t2")).await.unwrap().is_some());
        }
    }

    /// CWA's VerificationApplicationExternalTest: callGetRegistrationTokenByGuidAndDobHash and the
    /// three `...Afterwards` cases, at the store.
    #[tokio::test]
    async fn a_date_of_birth_id_binds_one_guid_and_each_id_registers_once() {
        let dob = |n: &str| -> HashedGuid { format!("x{}", &h(n)[1..]).parse().unwrap() };
        for db in databases() {
            let s = store(db.url()).await;
            let register = |t: &str, g: HashedGuid, d: Option<HashedGuid>| {
                s.register_guid_with_dob(h(t), g, d, NOW)
            };
            assert_eq!(
                register("t1", hashed_guid("g1"), Some(dob("d1")))
                    .await
                    .unwrap(),
                Registered::Created
            );
            let session = s.session(h("t1")).await.unwrap().unwrap();
            assert_eq!(session.hashed_guid_dob, Some(dob("d1")), "{}", db.label());
            for (guid, date) in [
                (hashed_guid("g1"), None),            // ...AndWithoutDobHashAfterwards
                (hashed_guid("g1"), Some(dob("d2"))), // ...AndWithAnotherDobHashAfterwards
                (hashed_guid("g2"), Some(dob("d1"))), // ...AndUseDobHashAgainAfterwards
                (dob("d1"), None),                    // the date-of-birth id as a GUID
                (hashed_guid("g3"), Some(hashed_guid("g1"))),
            ] {
                assert_eq!(
                    register("t2", guid, date).await.unwrap(),
                    Registered::AlreadyRegistered,
                    "{}",
                    db.label()
                );
            }
            assert!(s.session(h("t2")).await.unwrap().is_none());
            assert_eq!(s.dump().await.unwrap().len(), 1, "nothing else stored");
            assert!(!session.rapid_test);
            s.mark_rapid_test(h("t1")).await.unwrap();
            assert!(s.session(h("t1")).await.unwrap().unwrap().rapid_test);
            assert_eq!(
                register("t3", hashed_guid("g2"), Some(dob("d2")))
                    .await
                    .unwrap(),
                Registered::Created
            );
        }
    }

    /// Two registrations that name each other's GUID as their date-of-birth id, at the same
    /// time: exactly one of each pair registers (on PostgreSQL the check and the insert of
    /// either could otherwise both pass, each id being in a different column).
    #[tokio::test]
    async fn crosswise_registrations_at_the_same_time_register_once() {
        for db in databases() {
            let s = store(db.url()).await;
            let mut attempts = tokio::task::JoinSet::new();
            for i in 0..20 {
                let (a, b) = (hashed_guid(&format!("a{i}")), hashed_guid(&format!("b{i}")));
                for (t, guid, dob) in [("ta", a.clone(), b.clone()), ("tb", b, a)] {
                    let s = s.clone();
                    attempts.spawn(async move {
                        let outcome = s
                            .register_guid_with_dob(h(&format!("{t}{i}")), guid, Some(dob), NOW)
                            .await
                            .unwrap();
                        (i, outcome)
                    });
                }
            }
            let mut created = [0; 20];
            while let Some(joined) = attempts.join_next().await {
                let (i, outcome) = joined.unwrap();
                if outcome == Registered::Created {
                    created[i] += 1;
                }
            }
            assert_eq!(created, [1; 20], "{}", db.label());
        }
    }
}
