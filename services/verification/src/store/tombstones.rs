//! `guid_tombstones`: the ids of GUID sessions that retention deleted, each kept until test-result
//! no longer holds a result for it, so that the id cannot register again while its result can
//! still be read (a second registration would get more TANs for the same test). A tombstone holds
//! the id and that time only: nothing links it to the session it replaced, a TAN or another
//! tombstone.

use super::schema::guid_tombstones::dsl as g;
use super::{Store, s, stored_guid};
use diesel::prelude::*;
use openwarn_db::{AnyConnection, DbError};
use openwarn_domain::HashedGuid;

/// A GUID session past its retention: its token hash and the ids to keep (its hashed GUID and,
/// if registered with one, its date-of-birth-bound id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    pub token_hash: String,
    pub ids: Vec<HashedGuid>,
}

/// Whether any of `ids` has a tombstone still held at `now`.
pub(super) fn buried(conn: &mut AnyConnection, ids: &[&str], now: i64) -> QueryResult<bool> {
    let found = g::guid_tombstones
        .filter(g::hashed_guid.eq_any(ids))
        .filter(g::held_until.ge(now))
        .select(g::hashed_guid)
        .first::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Deletes the tombstones no longer held at `now`.
pub(super) fn delete_expired(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(g::guid_tombstones.filter(g::held_until.lt(now))).execute(conn)
}

impl Store {
    /// Up to `limit` GUID sessions created before `cutoff`, oldest first.
    pub async fn expiring_guid_sessions(
        &self,
        cutoff: i64,
        limit: i64,
    ) -> Result<Vec<Expiring>, DbError> {
        self.db
            .run(move |conn| {
                s::app_sessions
                    .filter(s::created_at.lt(cutoff))
                    .filter(s::hashed_guid.is_not_null())
                    .order((s::created_at, s::token_hash))
                    .limit(limit)
                    .select((s::token_hash, s::hashed_guid, s::hashed_guid_dob))
                    .load::<(String, Option<String>, Option<String>)>(conn)?
                    .into_iter()
                    .map(|(token_hash, guid, dob)| {
                        let ids = [stored_guid(guid)?, stored_guid(dob)?]
                            .into_iter()
                            .flatten()
                            .collect();
                        Ok(Expiring { token_hash, ids })
                    })
                    .collect()
            })
            .await
    }

    /// Replaces a session by tombstones for its ids, each held until the given time (the later
    /// one when the id has a tombstone already), in one transaction.
    pub async fn bury(
        &self,
        token_hash: String,
        held: Vec<(HashedGuid, i64)>,
    ) -> Result<(), DbError> {
        self.db
            .transaction(move |conn| {
                // Concurrent runs (every replica runs retention) and registrations of these ids
                // wait for each other.
                let mut ids: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                super::lock_ids(conn, &ids)?;
                for (id, held_until) in &held {
                    let existing = g::guid_tombstones
                        .find(id.as_str())
                        .select(g::held_until)
                        .first::<i64>(conn)
                        .optional()?;
                    match existing {
                        Some(until) if until >= *held_until => {}
                        Some(_) => {
                            diesel::update(g::guid_tombstones.find(id.as_str()))
                                .set(g::held_until.eq(held_until))
                                .execute(conn)?;
                        }
                        None => {
                            diesel::insert_into(g::guid_tombstones)
                                .values((
                                    g::hashed_guid.eq(id.as_str()),
                                    g::held_until.eq(held_until),
                                ))
                                .execute(conn)?;
                        }
                    }
                }
                diesel::delete(s::app_sessions.find(&token_hash)).execute(conn)?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::store::Registered;
    use openwarn_testkit::databases;

    /// A session past its retention becomes tombstones for both its ids: neither registers again
    /// until the tombstone's time has passed (to the second), then the tombstone goes and
    /// nothing of the ids remains.
    #[tokio::test]
    async fn a_buried_id_cannot_register_until_its_tombstone_expires() {
        for db in databases() {
            let s = store(db.url()).await;
            let (guid, dob) = (hashed_guid("g1"), hashed_guid("d1"));
            s.register_guid_with_dob(h("t1"), guid.clone(), Some(dob.clone()), NOW)
                .await
                .unwrap();
            s.register_guid(h("t2"), hashed_guid("g2"), NOW + 100)
                .await
                .unwrap();
            let expiring = s.expiring_guid_sessions(NOW + 50, 10).await.unwrap();
            assert_eq!(
                expiring,
                vec![Expiring {
                    token_hash: h("t1"),
                    ids: vec![guid.clone(), dob.clone()]
                }],
                "{}",
                db.label()
            );
            s.bury(
                h("t1"),
                vec![(guid.clone(), NOW + 500), (dob.clone(), NOW + 400)],
            )
            .await
            .unwrap();
            assert!(s.session(h("t1")).await.unwrap().is_none());
            // A shorter hold never shortens a tombstone.
            s.bury(h("t1"), vec![(guid.clone(), NOW + 10)])
                .await
                .unwrap();
            for (id, last) in [(&guid, NOW + 500), (&dob, NOW + 400)] {
                assert_eq!(
                    s.register_guid(h("again"), id.clone(), last).await.unwrap(),
                    Registered::AlreadyRegistered,
                    "{}",
                    db.label()
                );
            }
            // As another's date-of-birth id, too.
            assert_eq!(
                s.register_guid_with_dob(
                    h("again"),
                    hashed_guid("g3"),
                    Some(dob.clone()),
                    NOW + 400
                )
                .await
                .unwrap(),
                Registered::AlreadyRegistered
            );
            assert_eq!(s.apply_retention(NOW + 50, NOW + 501).await.unwrap(), 2);
            assert_eq!(
                s.dump().await.unwrap().len(),
                1,
                "{}: only the younger session",
                db.label()
            );
            assert_eq!(
                s.register_guid(h("again"), guid, NOW + 501).await.unwrap(),
                Registered::Created
            );
        }
    }
}
