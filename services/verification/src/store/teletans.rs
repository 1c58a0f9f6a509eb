//! `tele_tans`: issued (for the portal), and spent by registering a session with one.

use super::{Registered, Source, Store, is_unique_violation, s, tt};
use diesel::prelude::*;
use openwarn_db::DbError;

/// teleTAN kinds (only TEST so far).
pub const TELE_TAN_KIND_TEST: i16 = 1;

impl Store {
    /// A session for a teleTAN, which is used up by it. Both happen, or neither.
    pub async fn register_tele_tan(
        &self,
        token_hash: String,
        tele_tan_hash: String,
        now: i64,
    ) -> Result<Registered, DbError> {
        self.db
            .transaction(move |conn| {
                let used = diesel::update(
                    tt::tele_tans
                        .filter(tt::tele_tan_hash.eq(&tele_tan_hash))
                        .filter(tt::used_at.is_null())
                        .filter(tt::expires_at.gt(now)),
                )
                .set(tt::used_at.eq(Some(now)))
                .execute(conn)?;
                if used == 0 {
                    return Ok(Registered::TeleTanRefused);
                }
                diesel::insert_into(s::app_sessions)
                    .values((
                        s::token_hash.eq(&token_hash),
                        s::hashed_guid.eq(None::<String>),
                        s::source.eq(Source::TeleTan.code()),
                        s::created_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(Registered::Created)
            })
            .await
    }

    /// Stores a new teleTAN; `false` if its hash already exists (the caller draws another).
    pub async fn insert_tele_tan(
        &self,
        tele_tan_hash: String,
        kind: i16,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, DbError> {
        self.db
            .run(move |conn| {
                let inserted = diesel::insert_into(tt::tele_tans)
                    .values((
                        tt::tele_tan_hash.eq(&tele_tan_hash),
                        tt::kind.eq(kind),
                        tt::created_at.eq(now),
                        tt::expires_at.eq(expires_at),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_) => Ok(true),
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use openwarn_testkit::databases;

    #[tokio::test]
    async fn a_tele_tan_registers_once_and_only_while_valid() {
        for db in databases() {
            let s = store(db.url()).await;
            assert!(
                s.insert_tele_tan(h("TT1"), TELE_TAN_KIND_TEST, NOW, NOW + 3600)
                    .await
                    .unwrap()
            );
            assert!(
                !s.insert_tele_tan(h("TT1"), TELE_TAN_KIND_TEST, NOW, NOW + 3600)
                    .await
                    .unwrap(),
                "same hash twice"
            );
            assert!(
                s.insert_tele_tan(h("TT2"), TELE_TAN_KIND_TEST, NOW, NOW + 3600)
                    .await
                    .unwrap()
            );
            assert_eq!(
                s.register_tele_tan(h("a"), h("TT1"), NOW + 10)
                    .await
                    .unwrap(),
                Registered::Created
            );
            assert_eq!(
                s.register_tele_tan(h("b"), h("TT1"), NOW + 20)
                    .await
                    .unwrap(),
                Registered::TeleTanRefused,
                "used"
            );
            assert_eq!(
                s.register_tele_tan(h("c"), h("TT2"), NOW + 3600)
                    .await
                    .unwrap(),
                Registered::TeleTanRefused,
                "expired"
            );
            assert_eq!(
                s.register_tele_tan(h("d"), h("nope"), NOW).await.unwrap(),
                Registered::TeleTanRefused,
                "unknown"
            );
            assert!(
                s.session(h("b")).await.unwrap().is_none(),
                "a refused teleTAN creates no session"
            );
            assert_eq!(
                s.session(h("a")).await.unwrap().unwrap().source,
                Source::TeleTan
            );
        }
    }
}
