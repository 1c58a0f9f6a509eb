//! The service's own tables: app sessions, TANs, teleTANs. Nothing outside this crate reads them.
//! Every secret (registration token, TAN, teleTAN) is stored only as its SHA-256.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use openwarn_db::{AnyConnection, Database, DbError};

diesel::table! {
    app_sessions (token_hash) {
        token_hash -> Text,
        hashed_guid -> Nullable<Text>,
        source -> SmallInt,
        tans_issued -> Integer,
        tan_redeemed_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    tans (tan_hash) {
        tan_hash -> Text,
        session_hash -> Text,
        source -> SmallInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        reservation_id -> Nullable<Text>,
        reserved_until -> Nullable<BigInt>,
        redeemed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    tele_tans (tele_tan_hash) {
        tele_tan_hash -> Text,
        kind -> SmallInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

use app_sessions::dsl as s;
use tans::dsl as t;
use tele_tans::dsl as tt;

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

/// teleTAN kinds (only TEST so far).
pub const TELE_TAN_KIND_TEST: i16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub source: Source,
    pub hashed_guid: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TanIssue {
    Issued,
    UnknownSession,
    /// An earlier TAN of this session was redeemed (keys were submitted).
    AlreadyRedeemed,
    /// The session has had its quota of TANs.
    QuotaUsed,
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
    Done { hashed_guid: Option<String> },
    /// No reservation with that id is held on that TAN.
    NotReserved,
}

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// A session for a hashed GUID; at most one per hashed GUID.
    pub async fn register_guid(
        &self,
        token_hash: String,
        hashed_guid: String,
        now: i64,
    ) -> Result<Registered, DbError> {
        self.db
            .run(move |conn| {
                let inserted = diesel::insert_into(s::app_sessions)
                    .values((
                        s::token_hash.eq(&token_hash),
                        s::hashed_guid.eq(Some(&hashed_guid)),
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

    pub async fn session(&self, token_hash: String) -> Result<Option<Session>, DbError> {
        self.db
            .run(move |conn| find_session(conn, &token_hash))
            .await
    }

    /// Issues a TAN for a session: while no earlier TAN was redeemed and fewer than `max` were
    /// issued. Earlier unredeemed TANs that are not reserved stop being valid: one valid TAN per
    /// session at a time.
    pub async fn issue_tan(
        &self,
        token_hash: String,
        tan_hash: String,
        now: i64,
        expires_at: i64,
        max: i32,
    ) -> Result<TanIssue, DbError> {
        self.db
            .transaction(move |conn| {
                let Some(session) = find_session(conn, &token_hash)? else {
                    return Ok(TanIssue::UnknownSession);
                };
                if session.tan_redeemed {
                    return Ok(TanIssue::AlreadyRedeemed);
                }
                let counted = diesel::update(
                    s::app_sessions
                        .filter(s::token_hash.eq(&token_hash))
                        .filter(s::tans_issued.lt(max))
                        .filter(s::tan_redeemed_at.is_null()),
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
    /// update, so of concurrent callers exactly one wins.
    pub async fn reserve_tan(
        &self,
        tan_hash: String,
        reservation_id: String,
        now: i64,
        reserved_until: i64,
    ) -> Result<Option<Reservation>, DbError> {
        self.db
            .run(move |conn| {
                let reservable = t::tans
                    .filter(t::tan_hash.eq(tan_hash.clone()))
                    .filter(t::redeemed_at.is_null())
                    .filter(t::expires_at.gt(now))
                    .filter(t::reserved_until.is_null().or(t::reserved_until.le(now)));
                let values = (
                    t::reservation_id.eq(Some(reservation_id.clone())),
                    t::reserved_until.eq(Some(reserved_until)),
                );
                let source = match conn {
                    // One round trip on PostgreSQL.
                    AnyConnection::Postgresql(pg) => diesel::update(reservable)
                        .set(values)
                        .returning(t::source)
                        .get_result::<i16>(pg)
                        .optional()?,
                    AnyConnection::Sqlite(_) => {
                        if diesel::update(reservable).set(values).execute(conn)? == 0 {
                            None
                        } else {
                            Some(
                                t::tans
                                    .find(&tan_hash)
                                    .select(t::source)
                                    .first::<i16>(conn)?,
                            )
                        }
                    }
                };
                Ok(source.map(|source| Reservation {
                    source: Source::from_code(source),
                    reserved_until,
                }))
            })
            .await
    }

    /// Spends a reserved TAN, closes its session for further TANs and voids the session's other
    /// TANs. Idempotent for the holder of the reservation: committing again reports `Done` again.
    pub async fn commit_tan(
        &self,
        tan_hash: String,
        reservation_id: String,
        now: i64,
    ) -> Result<Committed, DbError> {
        self.db
            .transaction(move |conn| {
                let spent = match conn {
                    // PostgreSQL: one statement (data-modifying CTEs).
                    AnyConnection::Postgresql(pg) => diesel::sql_query(COMMIT_TAN_PG)
                        .bind::<diesel::sql_types::Text, _>(&tan_hash)
                        .bind::<diesel::sql_types::Text, _>(&reservation_id)
                        .bind::<diesel::sql_types::BigInt, _>(now)
                        .get_result::<SpentRow>(pg)
                        .optional()?
                        .map(|row| row.hashed_guid),
                    // SQLite: the same three steps, inside this (write-locked) transaction.
                    AnyConnection::Sqlite(_) => {
                        commit_portably(conn, &tan_hash, &reservation_id, now)?
                    }
                };
                match spent {
                    Some(hashed_guid) => Ok(Committed::Done { hashed_guid }),
                    None => already_committed(conn, &tan_hash, &reservation_id),
                }
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

    /// Deletes sessions, TANs and teleTANs created before `cutoff`. Idempotent. Returns the
    /// number of rows deleted.
    pub async fn apply_retention(&self, cutoff: i64) -> Result<usize, DbError> {
        self.db
            .run(move |conn| {
                let tans =
                    diesel::delete(t::tans.filter(t::created_at.lt(cutoff))).execute(conn)?;
                let sessions = diesel::delete(s::app_sessions.filter(s::created_at.lt(cutoff)))
                    .execute(conn)?;
                let tele = diesel::delete(tt::tele_tans.filter(tt::created_at.lt(cutoff)))
                    .execute(conn)?;
                Ok(tans + sessions + tele)
            })
            .await
    }

    /// Every row of every table, rendered as text (hashes only; nothing secret is stored). For
    /// tests that prove a request changed nothing, and for debugging.
    pub async fn dump(&self) -> Result<Vec<String>, DbError> {
        self.db
            .run(|conn| {
                let mut out = Vec::new();
                type SessionRow = (String, Option<String>, i16, i32, Option<i64>, i64);
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
                Ok(out)
            })
            .await
    }
}

/// Spends a reserved TAN, closes its session and voids the session's other TANs, in one
/// statement. The voiding update excludes the spent TAN itself (one statement must not update a
/// row twice). Binds: tan hash, reservation id, now.
const COMMIT_TAN_PG: &str = "\
WITH spent AS (
    UPDATE tans SET redeemed_at = $3, reserved_until = NULL
    WHERE tan_hash = $1 AND reservation_id = $2 AND redeemed_at IS NULL
    RETURNING session_hash
), closed AS (
    UPDATE app_sessions SET tan_redeemed_at = $3
    WHERE token_hash IN (SELECT session_hash FROM spent)
    RETURNING hashed_guid
), voided AS (
    UPDATE tans SET expires_at = $3
    WHERE session_hash IN (SELECT session_hash FROM spent)
      AND tan_hash <> $1 AND redeemed_at IS NULL AND expires_at > $3
)
SELECT (SELECT hashed_guid FROM closed) AS hashed_guid FROM spent";

#[derive(diesel::QueryableByName)]
struct SpentRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    hashed_guid: Option<String>,
}

/// Spends, closes and voids in three statements; `Some(hashed guid of the session)` when the
/// reservation was held (the inner `Option` is `None` for teleTAN sessions).
fn commit_portably(
    conn: &mut AnyConnection,
    tan_hash: &str,
    reservation_id: &str,
    now: i64,
) -> QueryResult<Option<Option<String>>> {
    let spent = diesel::update(
        t::tans
            .filter(t::tan_hash.eq(tan_hash))
            .filter(t::reservation_id.eq(reservation_id))
            .filter(t::redeemed_at.is_null()),
    )
    .set((
        t::redeemed_at.eq(Some(now)),
        t::reserved_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    if spent == 0 {
        return Ok(None);
    }
    let session_hash = t::tans
        .find(tan_hash)
        .select(t::session_hash)
        .first::<String>(conn)?;
    diesel::update(s::app_sessions.filter(s::token_hash.eq(&session_hash)))
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

/// A commit that spent nothing: `Done` if this reservation already spent the TAN (a retried
/// commit), else `NotReserved`.
fn already_committed(
    conn: &mut AnyConnection,
    tan_hash: &str,
    reservation_id: &str,
) -> QueryResult<Committed> {
    let spent_by_it = t::tans
        .filter(t::tan_hash.eq(tan_hash))
        .filter(t::reservation_id.eq(reservation_id))
        .filter(t::redeemed_at.is_not_null())
        .select(t::session_hash)
        .first::<String>(conn)
        .optional()?;
    match spent_by_it {
        Some(session_hash) => Ok(Committed::Done {
            hashed_guid: hashed_guid_of(conn, &session_hash)?,
        }),
        None => Ok(Committed::NotReserved),
    }
}

fn hashed_guid_of(conn: &mut AnyConnection, session_hash: &str) -> QueryResult<Option<String>> {
    s::app_sessions
        .find(session_hash)
        .select(s::hashed_guid)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

fn find_session(conn: &mut AnyConnection, token_hash: &str) -> QueryResult<Option<Session>> {
    s::app_sessions
        .find(token_hash)
        .select((
            s::source,
            s::hashed_guid,
            s::tans_issued,
            s::tan_redeemed_at,
        ))
        .first::<(i16, Option<String>, i32, Option<i64>)>(conn)
        .optional()
        .map(|o| {
            o.map(|(source, hashed_guid, tans_issued, redeemed)| Session {
                source: Source::from_code(source),
                hashed_guid,
                tans_issued,
                tan_redeemed: redeemed.is_some(),
            })
        })
}

impl Store {
    /// Succeeds when the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwarn_testkit::databases;

    async fn store(url: &str) -> Store {
        let db = Database::open(url, 8).await.unwrap();
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        Store::new(db)
    }

    fn h(s: &str) -> String {
        crate::app::sha256_hex(s)
    }

    const NOW: i64 = 1_000_000;

    async fn session_with_tan(s: &Store, name: &str) -> String {
        assert_eq!(
            s.register_guid(h(name), h(&format!("guid-{name}")), NOW)
                .await
                .unwrap(),
            Registered::Created
        );
        let tan = h(&format!("tan-{name}"));
        assert_eq!(
            s.issue_tan(h(name), tan.clone(), NOW, NOW + 3600, 3)
                .await
                .unwrap(),
            TanIssue::Issued
        );
        tan
    }

    #[tokio::test]
    async fn one_session_per_hashed_guid() {
        for db in databases() {
            let s = store(db.url()).await;
            assert_eq!(
                s.register_guid(h("t1"), h("g"), NOW).await.unwrap(),
                Registered::Created
            );
            assert_eq!(
                s.register_guid(h("t2"), h("g"), NOW).await.unwrap(),
                Registered::AlreadyRegistered,
                "{}",
                db.label()
            );
            let session = s.session(h("t1")).await.unwrap().unwrap();
            assert_eq!(session.source, Source::Guid);
            assert_eq!(session.hashed_guid, Some(h("g")));
            assert!(s.session(h("t2")).await.unwrap().is_none());
        }
    }

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
            assert_eq!(
                s.commit_tan(tan.clone(), "r2".into(), NOW + 2)
                    .await
                    .unwrap(),
                Committed::NotReserved
            );
            let done = s
                .commit_tan(tan.clone(), "r1".into(), NOW + 2)
                .await
                .unwrap();
            assert_eq!(
                done,
                Committed::Done {
                    hashed_guid: Some(h("guid-s"))
                }
            );
            assert_eq!(
                s.commit_tan(tan.clone(), "r1".into(), NOW + 3)
                    .await
                    .unwrap(),
                done,
                "idempotent for the holder"
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
                s.issue_tan(h("s"), h("tan-2"), NOW + 5, NOW + 3600, 3)
                    .await
                    .unwrap(),
                TanIssue::AlreadyRedeemed,
                "{}",
                db.label()
            );
        }
    }

    #[tokio::test]
    async fn committing_one_tan_voids_the_sessions_other_tans() {
        for db in databases() {
            let s = store(db.url()).await;
            let first = session_with_tan(&s, "s").await;
            s.reserve_tan(first.clone(), "r1".into(), NOW, NOW + 60)
                .await
                .unwrap()
                .unwrap();
            // A second TAN while the first is reserved (an upload in flight): both valid.
            assert_eq!(
                s.issue_tan(h("s"), h("second"), NOW + 1, NOW + 3600, 3)
                    .await
                    .unwrap(),
                TanIssue::Issued
            );
            assert!(
                s.verify_tan(first.clone(), NOW + 2)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(s.verify_tan(h("second"), NOW + 2).await.unwrap().is_some());
            let done = s
                .commit_tan(first.clone(), "r1".into(), NOW + 3)
                .await
                .unwrap();
            assert_eq!(
                done,
                Committed::Done {
                    hashed_guid: Some(h("guid-s"))
                }
            );
            assert!(
                s.verify_tan(h("second"), NOW + 4).await.unwrap().is_none(),
                "{}: voided",
                db.label()
            );
            assert!(
                s.reserve_tan(h("second"), "r2".into(), NOW + 4, NOW + 64)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(
                s.commit_tan(first, "r1".into(), NOW + 5).await.unwrap(),
                done,
                "still idempotent"
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
            // r2 lapses at NOW + 61; then someone else may reserve, and r2 can no longer commit.
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
            assert_eq!(
                s.commit_tan(tan.clone(), "r2".into(), NOW + 62)
                    .await
                    .unwrap(),
                Committed::NotReserved
            );
            assert!(
                matches!(
                    s.commit_tan(tan, "r3".into(), NOW + 62).await.unwrap(),
                    Committed::Done { .. }
                ),
                "{}",
                db.label()
            );
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
                s.issue_tan(h("s"), h("t2"), NOW + 1, NOW + 3600, 3)
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
                s.issue_tan(h("s"), h("t3"), NOW + 2, NOW + 3600, 3)
                    .await
                    .unwrap(),
                TanIssue::Issued
            );
            assert_eq!(
                s.issue_tan(h("s"), h("t4"), NOW + 3, NOW + 3600, 3)
                    .await
                    .unwrap(),
                TanIssue::QuotaUsed
            );
            assert_eq!(
                s.issue_tan(h("unknown"), h("t5"), NOW, NOW + 3600, 3)
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

    #[tokio::test]
    async fn retention_deletes_old_rows_idempotently() {
        for db in databases() {
            let s = store(db.url()).await;
            session_with_tan(&s, "old").await;
            s.insert_tele_tan(h("TT"), TELE_TAN_KIND_TEST, NOW, NOW + 3600)
                .await
                .unwrap();
            s.register_guid(h("new"), h("g-new"), NOW + 100)
                .await
                .unwrap();
            assert_eq!(
                s.apply_retention(NOW + 50).await.unwrap(),
                3,
                "{}",
                db.label()
            );
            assert_eq!(s.apply_retention(NOW + 50).await.unwrap(), 0);
            assert!(s.session(h("old")).await.unwrap().is_none());
            assert!(s.session(h("new")).await.unwrap().is_some());
            assert_eq!(s.dump().await.unwrap().len(), 1);
        }
    }
}
