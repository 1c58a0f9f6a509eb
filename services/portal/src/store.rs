//! The portal's own tables: accounts, sessions, sign-ins under way, per-officer issue counts.
//! The audit log keeps its own table ([`crate::audit`]). Secrets are stored only as hashes
//! (session ids, enrolment links, OIDC states) or as what they must be to work (the TOTP secret).

use diesel::prelude::*;
use openwarn_db::{Database, DbError};

diesel::table! {
    accounts (id) {
        id -> BigInt,
        username -> Text,
        display_name -> Text,
        role -> Text,
        oidc_subject -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        totp_secret -> Nullable<Text>,
        last_totp_step -> Nullable<BigInt>,
        enrolment_hash -> Nullable<Text>,
        enrolment_expires_at -> Nullable<BigInt>,
        enrolled_at -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
        failed_sign_ins -> Integer,
        locked_until -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        account_id -> BigInt,
        csrf_token -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    oidc_logins (state_hash) {
        state_hash -> Text,
        pending -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    issue_counts (account_id, hour) {
        account_id -> BigInt,
        hour -> BigInt,
        issued -> Integer,
    }
}

diesel::joinable!(sessions -> accounts (account_id));
diesel::allow_tables_to_appear_in_same_query!(accounts, sessions);

/// What an account may do. The navigation and the route guards are built from it, so a later
/// role (authorising an Immuni-style app's codes) is one more variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Issues teleTANs.
    Officer,
    /// Creates, disables and re-enrols accounts, resets second factors, reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Officer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An account as the portal reads it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    #[diesel(deserialize_as = String)]
    pub role: RoleColumn,
    pub oidc_subject: Option<String>,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub last_totp_step: Option<i64>,
    pub enrolment_hash: Option<String>,
    pub enrolment_expires_at: Option<i64>,
    pub enrolled_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub failed_sign_ins: i32,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// A role as stored; an unknown value (written by a newer version) grants nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleColumn(pub Option<Role>);

impl From<String> for RoleColumn {
    fn from(s: String) -> Self {
        Self(Role::parse(&s))
    }
}

impl Account {
    pub fn role(&self) -> Option<Role> {
        self.role.0
    }

    pub fn is_local(&self) -> bool {
        self.oidc_subject.is_none()
    }

    /// Locked by failed sign-ins at `now`.
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

/// A new local account, waiting for its holder to enrol.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    /// SHA-256 of the enrolment link's token.
    pub enrolment_hash: &'a str,
    pub enrolment_expires_at: i64,
}

/// A session with its account.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub account: Account,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

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

    /// Creates a local account waiting for enrolment; `None` when the username is taken.
    pub async fn create_account(
        &self,
        new: NewAccount<'_>,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let (username, display_name, hash) = (
            new.username.to_owned(),
            new.display_name.to_owned(),
            new.enrolment_hash.to_owned(),
        );
        let result = self
            .db
            .run(move |conn| {
                diesel::insert_into(accounts::table)
                    .values((
                        accounts::username.eq(&username),
                        accounts::display_name.eq(&display_name),
                        accounts::role.eq(new.role.as_str()),
                        accounts::enrolment_hash.eq(&hash),
                        accounts::enrolment_expires_at.eq(new.enrolment_expires_at),
                        accounts::failed_sign_ins.eq(0),
                        accounts::created_at.eq(now),
                    ))
                    .execute(conn)?;
                accounts::table
                    .filter(accounts::username.eq(&username))
                    .select(accounts::id)
                    .first::<i64>(conn)
            })
            .await;
        match result {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account signed in through OpenID Connect as `subject`, created on first sign-in (for
    /// the audit log: an account id per person) and its role and name kept as the provider says.
    pub async fn oidc_account(
        &self,
        subject: &str,
        username: &str,
        display_name: &str,
        role: Role,
        now: i64,
    ) -> Result<Account, DbError> {
        let (subject, username, display_name) = (
            subject.to_owned(),
            username.to_owned(),
            display_name.to_owned(),
        );
        self.db
            .transaction(move |conn| {
                let existing = accounts::table
                    .filter(accounts::oidc_subject.eq(&subject))
                    .select(Account::as_select())
                    .first::<Account>(conn)
                    .optional()?;
                match existing {
                    Some(account) => {
                        diesel::update(accounts::table.find(account.id))
                            .set((
                                accounts::role.eq(role.as_str()),
                                accounts::display_name.eq(&display_name),
                            ))
                            .execute(conn)?;
                        accounts::table
                            .find(account.id)
                            .select(Account::as_select())
                            .first(conn)
                    }
                    None => diesel::insert_into(accounts::table)
                        .values((
                            accounts::username.eq(&username),
                            accounts::display_name.eq(&display_name),
                            accounts::role.eq(role.as_str()),
                            accounts::oidc_subject.eq(&subject),
                            accounts::enrolled_at.eq(now),
                            accounts::failed_sign_ins.eq(0),
                            accounts::created_at.eq(now),
                        ))
                        .execute(conn)
                        .and_then(|_| {
                            accounts::table
                                .filter(accounts::oidc_subject.eq(&subject))
                                .select(Account::as_select())
                                .first(conn)
                        }),
                }
            })
            .await
    }

    pub async fn account(&self, id: i64) -> Result<Option<Account>, DbError> {
        self.db
            .run(move |conn| {
                accounts::table
                    .find(id)
                    .select(Account::as_select())
                    .first(conn)
                    .optional()
            })
            .await
    }

    pub async fn account_by_username(&self, username: &str) -> Result<Option<Account>, DbError> {
        let username = username.to_owned();
        self.db
            .run(move |conn| {
                accounts::table
                    .filter(accounts::username.eq(&username))
                    .select(Account::as_select())
                    .first(conn)
                    .optional()
            })
            .await
    }

    /// The account an unexpired enrolment link belongs to.
    pub async fn account_by_enrolment(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Account>, DbError> {
        let token_hash = token_hash.to_owned();
        self.db
            .run(move |conn| {
                accounts::table
                    .filter(accounts::enrolment_hash.eq(&token_hash))
                    .filter(accounts::enrolment_expires_at.gt(now))
                    .filter(accounts::disabled_at.is_null())
                    .select(Account::as_select())
                    .first(conn)
                    .optional()
            })
            .await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, DbError> {
        self.db
            .run(|conn| {
                accounts::table
                    .order(accounts::username)
                    .select(Account::as_select())
                    .load(conn)
            })
            .await
    }

    /// Whether any enabled administrator exists (enrolled or waiting to enrol).
    pub async fn has_admin(&self) -> Result<bool, DbError> {
        self.db
            .run(|conn| {
                diesel::select(diesel::dsl::exists(
                    accounts::table
                        .filter(accounts::role.eq(Role::Admin.as_str()))
                        .filter(accounts::disabled_at.is_null()),
                ))
                .get_result(conn)
            })
            .await
    }

    /// Completes an enrolment: sets the password hash and the TOTP secret, consumes the link
    /// (only if it is still the one given: two tabs cannot both enrol). `false` when the link
    /// was used or replaced meanwhile.
    pub async fn complete_enrolment(
        &self,
        id: i64,
        token_hash: &str,
        password_hash: &str,
        totp_secret: &str,
        totp_step: i64,
        now: i64,
    ) -> Result<bool, DbError> {
        let (token_hash, password_hash, totp_secret) = (
            token_hash.to_owned(),
            password_hash.to_owned(),
            totp_secret.to_owned(),
        );
        self.db
            .run(move |conn| {
                diesel::update(
                    accounts::table
                        .find(id)
                        .filter(accounts::enrolment_hash.eq(&token_hash))
                        .filter(accounts::enrolment_expires_at.gt(now)),
                )
                .set((
                    accounts::password_hash.eq(&password_hash),
                    accounts::totp_secret.eq(&totp_secret),
                    accounts::last_totp_step.eq(totp_step),
                    accounts::enrolment_hash.eq(None::<String>),
                    accounts::enrolment_expires_at.eq(None::<i64>),
                    accounts::enrolled_at.eq(now),
                    accounts::failed_sign_ins.eq(0),
                    accounts::locked_until.eq(None::<i64>),
                ))
                .execute(conn)
                .map(|n| n == 1)
            })
            .await
    }

    /// Re-enrolment by an administrator: password and second factor are void, a new link is
    /// set, every session of the account ends.
    pub async fn reset_enrolment(
        &self,
        id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<bool, DbError> {
        let token_hash = token_hash.to_owned();
        self.db
            .transaction(move |conn| {
                let changed = diesel::update(
                    accounts::table
                        .find(id)
                        .filter(accounts::oidc_subject.is_null()),
                )
                .set((
                    accounts::password_hash.eq(None::<String>),
                    accounts::totp_secret.eq(None::<String>),
                    accounts::last_totp_step.eq(None::<i64>),
                    accounts::enrolment_hash.eq(&token_hash),
                    accounts::enrolment_expires_at.eq(expires_at),
                    accounts::enrolled_at.eq(None::<i64>),
                    accounts::failed_sign_ins.eq(0),
                    accounts::locked_until.eq(None::<i64>),
                ))
                .execute(conn)?;
                diesel::delete(sessions::table.filter(sessions::account_id.eq(id)))
                    .execute(conn)?;
                Ok(changed == 1)
            })
            .await
    }

    /// Disables (`Some(now)`) or enables (`None`) an account; disabling ends its sessions.
    pub async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, DbError> {
        self.db
            .transaction(move |conn| {
                let changed = diesel::update(accounts::table.find(id))
                    .set(accounts::disabled_at.eq(disabled_at))
                    .execute(conn)?;
                if disabled_at.is_some() {
                    diesel::delete(sessions::table.filter(sessions::account_id.eq(id)))
                        .execute(conn)?;
                }
                Ok(changed == 1)
            })
            .await
    }

    pub async fn set_role(&self, id: i64, role: Role) -> Result<bool, DbError> {
        self.db
            .transaction(move |conn| {
                let changed = diesel::update(accounts::table.find(id))
                    .set(accounts::role.eq(role.as_str()))
                    .execute(conn)?;
                // A changed role takes effect at the next sign-in, not in a session that was
                // opened with the old one.
                diesel::delete(sessions::table.filter(sessions::account_id.eq(id)))
                    .execute(conn)?;
                Ok(changed == 1)
            })
            .await
    }

    /// Counts a failed sign-in; at `max` failures the account is locked until `lock_until`.
    /// Returns whether this failure locked it.
    pub async fn record_failure(
        &self,
        id: i64,
        max: i32,
        now: i64,
        lock_until: i64,
    ) -> Result<bool, DbError> {
        self.db
            .transaction(move |conn| {
                let (failures, locked): (i32, Option<i64>) = accounts::table
                    .find(id)
                    .select((accounts::failed_sign_ins, accounts::locked_until))
                    .first(conn)?;
                // A lock that has run out starts a new count.
                let failures = if locked.is_some_and(|l| l <= now) {
                    1
                } else {
                    failures + 1
                };
                let locks = failures >= max;
                diesel::update(accounts::table.find(id))
                    .set((
                        accounts::failed_sign_ins.eq(if locks { 0 } else { failures }),
                        accounts::locked_until.eq(if locks { Some(lock_until) } else { None }),
                    ))
                    .execute(conn)?;
                Ok(locks)
            })
            .await
    }

    /// A successful sign-in: clears the failure count, and records the TOTP step used so that
    /// the same code cannot sign in twice. `false` when the step was already used (a replay
    /// between the check and this write).
    pub async fn record_success(&self, id: i64, totp_step: Option<i64>) -> Result<bool, DbError> {
        self.db
            .run(move |conn| {
                let target = accounts::table.find(id);
                let changed = match totp_step {
                    Some(step) => diesel::update(
                        target.filter(
                            accounts::last_totp_step
                                .is_null()
                                .or(accounts::last_totp_step.lt(step)),
                        ),
                    )
                    .set((
                        accounts::failed_sign_ins.eq(0),
                        accounts::locked_until.eq(None::<i64>),
                        accounts::last_totp_step.eq(step),
                    ))
                    .execute(conn)?,
                    None => diesel::update(target)
                        .set((
                            accounts::failed_sign_ins.eq(0),
                            accounts::locked_until.eq(None::<i64>),
                        ))
                        .execute(conn)?,
                };
                Ok(changed == 1)
            })
            .await
    }

    pub async fn create_session(
        &self,
        id_hash: &str,
        account_id: i64,
        csrf_token: &str,
        now: i64,
    ) -> Result<(), DbError> {
        let (id_hash, csrf_token) = (id_hash.to_owned(), csrf_token.to_owned());
        self.db
            .run(move |conn| {
                diesel::insert_into(sessions::table)
                    .values((
                        sessions::id_hash.eq(&id_hash),
                        sessions::account_id.eq(account_id),
                        sessions::csrf_token.eq(&csrf_token),
                        sessions::created_at.eq(now),
                        sessions::last_seen_at.eq(now),
                    ))
                    .execute(conn)
                    .map(drop)
            })
            .await
    }

    /// The session and its account.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, DbError> {
        let id_hash = id_hash.to_owned();
        self.db
            .run(move |conn| {
                sessions::table
                    .inner_join(accounts::table)
                    .filter(sessions::id_hash.eq(&id_hash))
                    .select((
                        Account::as_select(),
                        sessions::csrf_token,
                        sessions::created_at,
                        sessions::last_seen_at,
                    ))
                    .first::<(Account, String, i64, i64)>(conn)
                    .optional()
                    .map(|row| {
                        row.map(
                            |(account, csrf_token, created_at, last_seen_at)| SessionRow {
                                account,
                                csrf_token,
                                created_at,
                                last_seen_at,
                            },
                        )
                    })
            })
            .await
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), DbError> {
        let id_hash = id_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::update(sessions::table.find(&id_hash))
                    .set(sessions::last_seen_at.eq(now))
                    .execute(conn)
                    .map(drop)
            })
            .await
    }

    /// Ends a session; `true` when it existed.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, DbError> {
        let id_hash = id_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::delete(sessions::table.find(&id_hash))
                    .execute(conn)
                    .map(|n| n == 1)
            })
            .await
    }

    /// Deletes sessions idle since before `idle_before` or created before `created_before`,
    /// sign-ins under way started before `pending_before`, and issue counts of hours before
    /// `hours_before`. Returns the number of sessions deleted.
    pub async fn expire(
        &self,
        idle_before: i64,
        created_before: i64,
        pending_before: i64,
        hours_before: i64,
    ) -> Result<usize, DbError> {
        self.db
            .transaction(move |conn| {
                let sessions = diesel::delete(
                    sessions::table.filter(
                        sessions::last_seen_at
                            .lt(idle_before)
                            .or(sessions::created_at.lt(created_before)),
                    ),
                )
                .execute(conn)?;
                diesel::delete(
                    oidc_logins::table.filter(oidc_logins::created_at.lt(pending_before)),
                )
                .execute(conn)?;
                diesel::delete(issue_counts::table.filter(issue_counts::hour.lt(hours_before)))
                    .execute(conn)?;
                Ok(sessions)
            })
            .await
    }

    pub async fn save_oidc_login(
        &self,
        state_hash: &str,
        pending: &str,
        now: i64,
    ) -> Result<(), DbError> {
        let (state_hash, pending) = (state_hash.to_owned(), pending.to_owned());
        self.db
            .run(move |conn| {
                diesel::insert_into(oidc_logins::table)
                    .values((
                        oidc_logins::state_hash.eq(&state_hash),
                        oidc_logins::pending.eq(&pending),
                        oidc_logins::created_at.eq(now),
                    ))
                    .execute(conn)
                    .map(drop)
            })
            .await
    }

    /// Takes (reads and deletes) a sign-in under way started after `started_after`: a state is
    /// good for one callback only.
    pub async fn take_oidc_login(
        &self,
        state_hash: &str,
        started_after: i64,
    ) -> Result<Option<String>, DbError> {
        let state_hash = state_hash.to_owned();
        self.db
            .transaction(move |conn| {
                let row = oidc_logins::table
                    .find(&state_hash)
                    .select((oidc_logins::pending, oidc_logins::created_at))
                    .first::<(String, i64)>(conn)
                    .optional()?;
                diesel::delete(oidc_logins::table.find(&state_hash)).execute(conn)?;
                Ok(row.and_then(|(pending, at)| (at > started_after).then_some(pending)))
            })
            .await
    }

    /// Takes one of the officer's `limit` teleTANs of the hour; `false` when none is left.
    /// Concurrent requests never take more than `limit` (tried again when two raced to the
    /// hour's first slot or the same count).
    pub async fn take_issue_slot(
        &self,
        account_id: i64,
        hour: i64,
        limit: i32,
    ) -> Result<bool, DbError> {
        for _ in 0..20 {
            match self.try_issue_slot(account_id, hour, limit).await {
                Ok(Some(taken)) => return Ok(taken),
                Ok(None) => {}
                Err(e) if e.is_unique_violation() => {}
                Err(e) => return Err(e),
            }
        }
        Err(DbError::Unavailable("issue counter contended".into()))
    }

    /// One attempt: `None` when another request changed the count meanwhile.
    async fn try_issue_slot(
        &self,
        account_id: i64,
        hour: i64,
        limit: i32,
    ) -> Result<Option<bool>, DbError> {
        self.db
            .transaction(move |conn| {
                let issued = issue_counts::table
                    .find((account_id, hour))
                    .select(issue_counts::issued)
                    .first::<i32>(conn)
                    .optional()?;
                match issued {
                    None => diesel::insert_into(issue_counts::table)
                        .values((
                            issue_counts::account_id.eq(account_id),
                            issue_counts::hour.eq(hour),
                            issue_counts::issued.eq(1),
                        ))
                        .execute(conn)
                        .map(|_| Some(limit >= 1)),
                    Some(n) if n >= limit => Ok(Some(false)),
                    // Conditional, so that two replicas racing past the read cannot both take
                    // the last slot.
                    Some(n) => diesel::update(
                        issue_counts::table
                            .find((account_id, hour))
                            .filter(issue_counts::issued.eq(n)),
                    )
                    .set(issue_counts::issued.eq(n + 1))
                    .execute(conn)
                    .map(|changed| (changed == 1).then_some(true)),
                }
            })
            .await
    }

    /// Gives back a slot taken for a teleTAN that was not issued.
    pub async fn return_issue_slot(&self, account_id: i64, hour: i64) -> Result<(), DbError> {
        self.db
            .run(move |conn| {
                diesel::update(
                    issue_counts::table
                        .find((account_id, hour))
                        .filter(issue_counts::issued.gt(0)),
                )
                .set(issue_counts::issued.eq(issue_counts::issued - 1))
                .execute(conn)
                .map(drop)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stores() -> Vec<(openwarn_testkit::TestDatabase, Store)> {
        let mut out = Vec::new();
        for db in openwarn_testkit::databases() {
            let store = Store::open(db.url(), 8).await.unwrap();
            out.push((db, store));
        }
        out
    }

    async fn account(store: &Store, name: &str) -> i64 {
        store
            .create_account(
                NewAccount {
                    username: name,
                    display_name: name,
                    role: Role::Officer,
                    enrolment_hash: &crate::auth::token_hash(name),
                    enrolment_expires_at: 2_000_000_000,
                },
                1_000,
            )
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn concurrent_issues_never_exceed_the_officers_limit() {
        for (db, store) in stores().await {
            let id = account(&store, "officer").await;
            let tasks: Vec<_> = (0..24)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.take_issue_slot(id, 7, 5).await.unwrap() })
                })
                .collect();
            let mut taken = 0;
            for task in tasks {
                taken += usize::from(task.await.unwrap());
            }
            assert_eq!(taken, 5, "{}", db.label());
            // A slot given back can be taken again; another hour has its own.
            store.return_issue_slot(id, 7).await.unwrap();
            assert!(store.take_issue_slot(id, 7, 5).await.unwrap());
            assert!(!store.take_issue_slot(id, 7, 5).await.unwrap());
            assert!(store.take_issue_slot(id, 8, 5).await.unwrap());
        }
    }

    #[tokio::test]
    async fn failures_lock_at_the_limit_and_a_run_out_lock_counts_anew() {
        for (db, store) in stores().await {
            let id = account(&store, "officer").await;
            let label = db.label();
            for _ in 0..4 {
                assert!(
                    !store.record_failure(id, 5, 100, 1_000).await.unwrap(),
                    "{label}"
                );
            }
            assert!(
                store.record_failure(id, 5, 100, 1_000).await.unwrap(),
                "{label}"
            );
            let a = store.account(id).await.unwrap().unwrap();
            assert!(a.is_locked(999) && !a.is_locked(1_000), "{label}");
            // After the lock ran out, one failure does not lock again.
            assert!(
                !store.record_failure(id, 5, 1_001, 2_000).await.unwrap(),
                "{label}"
            );
            // A success clears the count and refuses an old TOTP step.
            assert!(store.record_success(id, Some(50)).await.unwrap());
            assert!(
                !store.record_success(id, Some(50)).await.unwrap(),
                "{label}: replayed step"
            );
            assert!(store.record_success(id, Some(51)).await.unwrap());
        }
    }

    #[tokio::test]
    async fn enrolment_links_work_once_and_sessions_expire() {
        for (db, store) in stores().await {
            let label = db.label();
            let id = account(&store, "officer").await;
            let hash = crate::auth::token_hash("officer");
            assert!(
                store
                    .account_by_enrolment(&hash, 1_500)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .account_by_enrolment(&hash, 2_000_000_001)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .complete_enrolment(id, &hash, "h", "s", 1, 1_500)
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .complete_enrolment(id, &hash, "h", "s", 1, 1_500)
                    .await
                    .unwrap(),
                "{label}"
            );
            assert!(
                store
                    .account_by_enrolment(&hash, 1_500)
                    .await
                    .unwrap()
                    .is_none()
            );

            store.create_session("idle", id, "c", 1_000).await.unwrap();
            store.create_session("old", id, "c", 100).await.unwrap();
            store.create_session("fresh", id, "c", 1_000).await.unwrap();
            store.touch_session("fresh", 2_000).await.unwrap();
            store.touch_session("old", 2_000).await.unwrap();
            // Idle before 1 500 or created before 500.
            assert_eq!(store.expire(1_500, 500, 0, 0).await.unwrap(), 2, "{label}");
            assert!(store.session("fresh").await.unwrap().is_some());
            assert!(store.session("idle").await.unwrap().is_none());
            assert!(store.session("old").await.unwrap().is_none());
            // Disabling ends the account's sessions.
            store.set_disabled(id, Some(3_000)).await.unwrap();
            assert!(store.session("fresh").await.unwrap().is_none(), "{label}");
        }
    }

    #[tokio::test]
    async fn an_oidc_state_is_taken_once_and_only_while_fresh() {
        for (db, store) in stores().await {
            store.save_oidc_login("s1", "{}", 1_000).await.unwrap();
            store.save_oidc_login("s2", "{}", 1_000).await.unwrap();
            assert_eq!(
                store.take_oidc_login("s1", 900).await.unwrap().as_deref(),
                Some("{}")
            );
            assert_eq!(
                store.take_oidc_login("s1", 900).await.unwrap(),
                None,
                "{}",
                db.label()
            );
            assert_eq!(
                store.take_oidc_login("s2", 1_000).await.unwrap(),
                None,
                "too old"
            );
        }
    }
}
