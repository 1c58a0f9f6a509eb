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
    pub tans_issued: i32,
    pub tan_redeemed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// This hashed GUID already has a session.
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
        self.db
            .run(move |conn| {
                let inserted = diesel::insert_into(s::app_sessions)
                    .values((
                        s::token_hash.eq(&token_hash),
                        s::hashed_guid.eq(Some(hashed_guid.as_str())),
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

    pub async fn session(&self, token_hash: String) -> Result<Option<Session>, DbError> {
        self.db
            .run(move |conn| find_session(conn, &token_hash))
            .await
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
    s::app_sessions
        .find(token_hash)
        .select((
            s::source,
            s::hashed_guid,
            s::tans_issued,
            s::tan_redeemed_at,
        ))
        .first::<(i16, Option<String>, i32, Option<i64>)>(conn)
        .optional()?
        .map(|(source, hashed_guid, tans_issued, redeemed)| {
            Ok(Session {
                source: Source::from_code(source),
                hashed_guid: stored_guid(hashed_guid)?,
                tans_issued,
                tan_redeemed: redeemed.is_some(),
            })
        })
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
}
