//! The audit log: who did what to which account, and when. Append-only and hash-chained, in the
//! portal's own database (tables `audit_log` and `audit_head`, migration `…000002_audit_log`).
//!
//! # The chain
//!
//! Entries get consecutive ids 1, 2, 3, … (assigned from `audit_head`, never from a sequence, so
//! ids have no gaps). Each entry stores `prev_hash`, the `hash` of the entry before it (64 zeros
//! for the first entry ever), and its own `hash`:
//!
//! ```text
//! hash = lowercase hex of SHA-256( F("openwarn-audit-v1") ‖ F(id) ‖ F(at) ‖ F(actor_kind)
//!                                  ‖ F(actor_id) ‖ F(action) ‖ F(target) ‖ F(detail)
//!                                  ‖ F(prev_hash) )
//! F(absent)  = the byte 0x00                        (a NULL column)
//! F(present) = the byte 0x01, the value's length in bytes as a big-endian u64 (8 bytes), then
//!              the value's UTF-8 bytes
//! ```
//!
//! Every value is text: integers (`id`, `at`, `actor_id`, `target`) in decimal with a leading
//! `-` if negative and no leading zeros; `actor_kind` is `account`, `unknown` or `system`
//! (`actor_id` is present exactly for `account`); `action` is its snake_case name; `prev_hash`
//! is 64 lowercase hex digits. These are exactly the columns of `audit_log` and the keys of
//! [`AuditLog::export_jsonl`]'s lines, so an auditor can check an export without this code:
//!
//! ```text
//! import hashlib, json
//! def F(v):
//!     if v is None: return b"\x00"
//!     b = str(v).encode()
//!     return b"\x01" + len(b).to_bytes(8, "big") + b
//! def entry_hash(e):
//!     return hashlib.sha256(b"".join(F(v) for v in ["openwarn-audit-v1", e["id"], e["at"],
//!         e["actor"], e["actor_id"], e["action"], e["target"], e["detail"], e["prev_hash"]])).hexdigest()
//! ```
//!
//! # What detects what
//!
//! `audit_head` holds the newest entry's id and hash (appends lock it: the chain never forks, on
//! PostgreSQL with `SELECT … FOR UPDATE`, on SQLite because write transactions are `BEGIN
//! IMMEDIATE`) and the retention anchor: the id and hash of the newest entry retention deleted.
//! [`AuditLog::verify`] walks the chain from the anchor to the head: an edited entry fails its own
//! hash; an edited entry whose hash was recomputed breaks the next entry's `prev_hash` (or, for the
//! newest entry, the head's hash); a deleted entry leaves a gap in the ids; deleted newest entries
//! leave the log short of the head. Retention writes the anchor and a `retention_applied` entry
//! (detail `through_<anchor id>`) in the same transaction as its delete, so deleting the oldest
//! entries by hand and moving the anchor shows as well. Triggers refuse UPDATE, TRUNCATE and any
//! DELETE above the anchor; someone who drops them still cannot hide an edit from `verify`. Rewriting
//! the whole chain and the head consistently is only detectable against a copy of the head hash
//! kept elsewhere ([`Verification::last_hash`]; an export's last line).
//!
//! # What an entry may hold
//!
//! Ids, a time, an action and a short machine reason ([`DETAIL_RULE`]). Never a teleTAN, a
//! password, a code or a username as typed: a detail that does not follow the rule is stored as
//! `invalid_detail`.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use openwarn_db::{AnyConnection, Database, DbError};
use sha2::{Digest, Sha256};
use std::time::Duration;

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor_kind -> Text,
        actor_id -> Nullable<BigInt>,
        action -> Text,
        target -> Nullable<BigInt>,
        detail -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (singleton) {
        singleton -> Integer,
        last_id -> BigInt,
        last_hash -> Text,
        anchor_id -> BigInt,
        anchor_hash -> Text,
    }
}

use audit_head::dsl as h;
use audit_log::dsl as l;

type AnyBackend = <AnyConnection as Connection>::Backend;

/// `prev_hash` of the first entry ever, and the anchor's hash before retention deleted anything.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first field of every hashed encoding: names the encoding, so that a new one can coexist.
pub const HASH_DOMAIN: &str = "openwarn-audit-v1";

/// What a detail must look like; anything else is stored as [`INVALID_DETAIL`].
pub const DETAIL_RULE: &str =
    "1 to 64 characters: a lowercase ASCII letter, then lowercase ASCII letters, digits or _";

/// Stored instead of a detail that does not follow [`DETAIL_RULE`].
pub const INVALID_DETAIL: &str = "invalid_detail";

/// The most entries [`AuditLog::list`] returns at once.
pub const MAX_PAGE: usize = 1000;

/// Rows read per query by verification, retention and export.
const SCAN_PAGE: i64 = 1000;

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A signed-in (or identified) account.
    Account(i64),
    /// Nobody known: e.g. a failed sign-in with a username that matches no account.
    Unknown,
    /// The portal itself (retention).
    System,
}

impl Actor {
    /// As stored in `actor_kind`: `account`, `unknown` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Account(_) => "account",
            Self::Unknown => "unknown",
            Self::System => "system",
        }
    }

    /// The account, for [`Actor::Account`].
    pub fn account(&self) -> Option<i64> {
        match self {
            Self::Account(id) => Some(*id),
            Self::Unknown | Self::System => None,
        }
    }

    fn from_columns(kind: &str, id: Option<i64>) -> Option<Self> {
        match (kind, id) {
            ("account", Some(id)) => Some(Self::Account(id)),
            ("unknown", None) => Some(Self::Unknown),
            ("system", None) => Some(Self::System),
            _ => None,
        }
    }
}

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened. The names are stored in the log and hashed: never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, in declaration order (for the admin page's filter).
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stable snake_case name, as stored.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The action of a stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    SignInSucceeded => "sign_in_succeeded",
    /// Detail: why (e.g. `wrong_password`, `wrong_code`, `unknown_account`, `locked`).
    SignInFailed => "sign_in_failed",
    AccountLocked => "account_locked",
    SignedOut => "signed_out",
    SessionExpired => "session_expired",
    TeleTanIssued => "teletan_issued",
    /// Detail: why (e.g. `per_officer_limit`).
    TeleTanRefused => "teletan_refused",
    AccountCreated => "account_created",
    AccountEnrolled => "account_enrolled",
    AccountDisabled => "account_disabled",
    AccountEnabled => "account_enabled",
    /// Detail: the new role.
    RoleChanged => "role_changed",
    SecondFactorReset => "second_factor_reset",
    AuditViewed => "audit_viewed",
    AuditExported => "audit_exported",
    /// Written by retention, by [`Actor::System`], with detail `through_<id>`: the newest entry
    /// it deleted (the new anchor).
    RetentionApplied => "retention_applied",
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor: Actor,
    pub action: Action,
    /// The account acted on, if any.
    pub target: Option<i64>,
    /// A short machine reason ([`DETAIL_RULE`]).
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries [`AuditLog::list`] and [`AuditLog::export_jsonl`] return; `None` is no condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Entries by this account.
    pub actor: Option<i64>,
    pub action: Option<Action>,
    /// `at >= from` (unix seconds).
    pub from: Option<i64>,
    /// `at < to` (unix seconds; exclusive).
    pub to: Option<i64>,
    /// `id < before_id`: the next page of [`AuditLog::list`] after one ending with this id.
    pub before_id: Option<i64>,
    /// At most this many entries from [`AuditLog::list`] (capped at [`MAX_PAGE`]; 0 gives none).
    /// Exports ignore it.
    pub limit: usize,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries in the log (all rows read, broken or not).
    pub entries: u64,
    /// The first break found, walking from the oldest entry; `None`: the chain is intact.
    pub first_broken: Option<Broken>,
    /// The newest entry according to the head (0 and [`GENESIS_HASH`] for an empty log). Kept
    /// elsewhere, the hash lets a later check see a rewrite of the whole chain.
    pub last_id: i64,
    pub last_hash: String,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// What `verify-audit` prints: the count, the newest entry's id and hash (to keep elsewhere)
/// and the first break, if any.
impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.first_broken {
            None => write!(
                f,
                "intact: {} entries, newest #{} with hash {}",
                self.entries, self.last_id, self.last_hash
            ),
            Some(broken) => write!(
                f,
                "BROKEN at entry #{}: {} ({} entries read)",
                broken.id,
                broken.reason.as_str(),
                self.entries
            ),
        }
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    /// The entry at which the break shows (see [`BrokenReason`]).
    pub id: i64,
    pub reason: BrokenReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenReason {
    /// The entry's hash does not match its contents: it was changed.
    Edited,
    /// The entry's `prev_hash` is not the hash of the entry before it: that entry was changed
    /// and its hash recomputed (or this entry's link was).
    PrevHashMismatch,
    /// Ids skip before this entry: entries before it were deleted.
    DeletedBefore,
    /// The log ends before the head's newest entry: entries from this id on were deleted.
    DeletedAtEnd,
    /// The newest entry is not the one the head records (changed and rehashed, or rows written
    /// around the portal); the id is that entry's.
    HeadMismatch,
    /// The retention anchor does not match the newest `retention_applied` entry, or entries the
    /// anchor says were deleted are still there: old entries were deleted, or the anchor moved,
    /// by someone other than retention. The id is the anchor's or the entry's.
    AnchorMismatch,
}

impl BrokenReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::PrevHashMismatch => "prev_hash_mismatch",
            Self::DeletedBefore => "deleted_before",
            Self::DeletedAtEnd => "deleted_at_end",
            Self::HeadMismatch => "head_mismatch",
            Self::AnchorMismatch => "anchor_mismatch",
        }
    }
}

/// Where [`AuditLog::export_page`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPage {
    /// Lines written.
    pub lines: usize,
    /// Pass as `after_id` for the next page; `None`: the export is complete.
    pub next_after: Option<i64>,
}

/// The audit log, on the portal's database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: Database,
}

impl AuditLog {
    /// The log in `db`, which must have the portal's migrations applied.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Appends an entry at the end of the chain. `detail` must follow [`DETAIL_RULE`]; one that
    /// does not is stored as [`INVALID_DETAIL`] (and a warning without it is logged).
    pub async fn append(
        &self,
        at: i64,
        actor: Actor,
        action: Action,
        target: Option<i64>,
        detail: Option<&str>,
    ) -> Result<Entry, DbError> {
        let detail = detail.map(|d| {
            if valid_detail(d) {
                d.to_owned()
            } else {
                tracing::warn!(
                    action = action.as_str(),
                    "audit detail is not a short machine reason; stored as {INVALID_DETAIL}"
                );
                INVALID_DETAIL.to_owned()
            }
        });
        let entry = self
            .db
            .transaction(move |conn| append_in(conn, at, actor, action, target, detail))
            .await?;
        metrics::counter!("openwarn_portal_audit_entries_total", "action" => action.as_str())
            .increment(1);
        Ok(entry)
    }

    /// Entries matching `filter`, newest first, at most `filter.limit` (capped at [`MAX_PAGE`]).
    /// The next page: the same filter with `before_id` set to the last id returned.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Entry>, DbError> {
        let limit = i64::try_from(filter.limit.min(MAX_PAGE)).unwrap_or(0);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = filter.clone();
        self.db
            .run(move |conn| {
                filtered(&filter)
                    .order(l::id.desc())
                    .limit(limit)
                    .load::<Row>(conn)?
                    .into_iter()
                    .map(Row::into_entry)
                    .collect()
            })
            .await
    }

    /// Writes every entry matching `filter` (its `limit` ignored) to `out` as JSON Lines, oldest
    /// first, one object per entry with the keys `id`, `at`, `actor` (the kind), `actor_id`,
    /// `action`, `target`, `detail`, `prev_hash`, `hash` (absent values as `null`): the hash
    /// inputs, in hashing order. Returns the number of lines. For large exports, stream with
    /// [`AuditLog::export_page`] instead.
    pub async fn export_jsonl(&self, filter: &Filter, out: &mut Vec<u8>) -> Result<usize, DbError> {
        let mut lines = 0;
        let mut after_id = 0;
        loop {
            let page = self.export_page(filter, after_id, out).await?;
            lines += page.lines;
            match page.next_after {
                Some(next) => after_id = next,
                None => return Ok(lines),
            }
        }
    }

    /// One page of [`AuditLog::export_jsonl`]: up to 1000 lines of entries with `id > after_id`
    /// (start with 0), appended to `out`.
    pub async fn export_page(
        &self,
        filter: &Filter,
        after_id: i64,
        out: &mut Vec<u8>,
    ) -> Result<ExportPage, DbError> {
        let filter = filter.clone();
        let (bytes, lines, last) = self
            .db
            .run(move |conn| {
                let rows = filtered(&filter)
                    .filter(l::id.gt(after_id))
                    .order(l::id.asc())
                    .limit(SCAN_PAGE)
                    .load::<Row>(conn)?;
                let mut bytes = Vec::with_capacity(rows.len() * 400);
                for row in &rows {
                    serde_json::to_writer(&mut bytes, &row.line())
                        .map_err(|e| DieselError::SerializationError(Box::new(e)))?;
                    bytes.push(b'\n');
                }
                Ok((bytes, rows.len(), rows.last().map(|r| r.id)))
            })
            .await?;
        out.extend_from_slice(&bytes);
        let full = i64::try_from(lines).is_ok_and(|n| n == SCAN_PAGE);
        Ok(ExportPage {
            lines,
            next_after: if full { last } else { None },
        })
    }

    /// Checks the whole chain, from the retention anchor to the head, in one consistent snapshot
    /// (appends may go on meanwhile). See the module documentation for what it detects.
    pub async fn verify(&self) -> Result<Verification, DbError> {
        let verification = self
            .db
            .run(|conn| {
                let begin = match conn {
                    AnyConnection::Postgresql(_) => {
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    }
                    // Deferred: a read snapshot (WAL), writers are not blocked.
                    AnyConnection::Sqlite(_) => "BEGIN",
                };
                conn.batch_execute(begin)?;
                let result = scan(conn);
                let end = conn.batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
                let verification = result?;
                end?;
                Ok(verification)
            })
            .await?;
        if let Some(b) = verification.first_broken {
            tracing::error!(
                id = b.id,
                reason = b.reason.as_str(),
                "the audit log's hash chain is broken"
            );
        }
        Ok(verification)
    }

    /// Deletes the oldest entries, those with `at < now - keep`, in id order: it stops at the
    /// first entry to keep (an older entry after it, from a clock that was behind, goes in a later
    /// run), so that what remains is still one chain. In the same transaction it moves the anchor
    /// to the newest entry deleted and, if it deleted any, appends a `retention_applied` entry
    /// (by [`Actor::System`], at `now`). Returns the number of entries deleted.
    pub async fn apply_retention(&self, now: i64, keep: Duration) -> Result<u64, DbError> {
        let keep = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(keep);
        let deleted = self
            .db
            .transaction(move |conn| {
                let head = read_head(conn, true)?;
                // The newest entry to delete: walk from the oldest until one is recent enough.
                let mut newest: Option<(i64, String)> = None;
                let mut after = head.anchor_id;
                'pages: loop {
                    let page: Vec<(i64, i64, String)> = l::audit_log
                        .filter(l::id.gt(after))
                        .order(l::id.asc())
                        .select((l::id, l::at, l::hash))
                        .limit(SCAN_PAGE)
                        .load(conn)?;
                    let full = i64::try_from(page.len()).is_ok_and(|n| n == SCAN_PAGE);
                    for (id, at, hash) in page {
                        if at >= cutoff {
                            break 'pages;
                        }
                        after = id;
                        newest = Some((id, hash));
                    }
                    if !full {
                        break;
                    }
                }
                let Some((anchor_id, anchor_hash)) = newest else {
                    return Ok(0);
                };
                // The anchor first: the delete trigger allows deleting only up to it.
                diesel::update(h::audit_head.filter(h::singleton.eq(1)))
                    .set((h::anchor_id.eq(anchor_id), h::anchor_hash.eq(&anchor_hash)))
                    .execute(conn)?;
                let deleted =
                    diesel::delete(l::audit_log.filter(l::id.le(anchor_id))).execute(conn)?;
                append_in(
                    conn,
                    now,
                    Actor::System,
                    Action::RetentionApplied,
                    None,
                    Some(retention_detail(anchor_id)),
                )?;
                Ok(deleted)
            })
            .await?;
        let deleted = u64::try_from(deleted).unwrap_or(0);
        if deleted > 0 {
            metrics::counter!("openwarn_portal_audit_entries_deleted_total").increment(deleted);
            tracing::info!(deleted, cutoff, "audit retention applied");
        }
        Ok(deleted)
    }

    /// How many times `actor` (an account) did `action` at or after `since`.
    pub async fn count_recent(
        &self,
        actor: i64,
        action: Action,
        since: i64,
    ) -> Result<u64, DbError> {
        let n: i64 = self
            .db
            .run(move |conn| {
                l::audit_log
                    .filter(l::actor_kind.eq(Actor::Account(actor).kind()))
                    .filter(l::actor_id.eq(actor))
                    .filter(l::action.eq(action.as_str()))
                    .filter(l::at.ge(since))
                    .count()
                    .get_result(conn)
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn valid_detail(detail: &str) -> bool {
    let bytes = detail.as_bytes();
    bytes.len() <= 64
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn retention_detail(anchor_id: i64) -> String {
    format!("through_{anchor_id}")
}

/// An `audit_log` row as stored (not parsed: verification and export work on unknown names too).
#[derive(Debug, Queryable)]
struct Row {
    id: i64,
    at: i64,
    actor_kind: String,
    actor_id: Option<i64>,
    action: String,
    target: Option<i64>,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

impl Row {
    fn fields(&self) -> Fields<'_> {
        Fields {
            id: self.id,
            at: self.at,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id,
            action: &self.action,
            target: self.target,
            detail: self.detail.as_deref(),
            prev_hash: &self.prev_hash,
        }
    }

    fn into_entry(self) -> QueryResult<Entry> {
        let bad = |what: String| DieselError::DeserializationError(what.into());
        let actor = Actor::from_columns(&self.actor_kind, self.actor_id)
            .ok_or_else(|| bad(format!("audit entry {}: unknown actor", self.id)))?;
        let action = Action::parse(&self.action)
            .ok_or_else(|| bad(format!("audit entry {}: unknown action", self.id)))?;
        Ok(Entry {
            id: self.id,
            at: self.at,
            actor,
            action,
            target: self.target,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }

    fn line(&self) -> Line<'_> {
        Line {
            id: self.id,
            at: self.at,
            actor: &self.actor_kind,
            actor_id: self.actor_id,
            action: &self.action,
            target: self.target,
            detail: self.detail.as_deref(),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// One line of an export; keys in hashing order.
#[derive(serde::Serialize)]
struct Line<'a> {
    id: i64,
    at: i64,
    actor: &'a str,
    actor_id: Option<i64>,
    action: &'a str,
    target: Option<i64>,
    detail: Option<&'a str>,
    prev_hash: &'a str,
    hash: &'a str,
}

/// The hashed fields of an entry (see the module documentation).
struct Fields<'a> {
    id: i64,
    at: i64,
    actor_kind: &'a str,
    actor_id: Option<i64>,
    action: &'a str,
    target: Option<i64>,
    detail: Option<&'a str>,
    prev_hash: &'a str,
}

impl Fields<'_> {
    fn hash(&self) -> String {
        fn field(hasher: &mut Sha256, value: Option<&str>) {
            match value {
                None => hasher.update([0u8]),
                Some(v) => {
                    hasher.update([1u8]);
                    hasher.update((v.len() as u64).to_be_bytes());
                    hasher.update(v.as_bytes());
                }
            }
        }
        let mut hasher = Sha256::new();
        field(&mut hasher, Some(HASH_DOMAIN));
        field(&mut hasher, Some(&self.id.to_string()));
        field(&mut hasher, Some(&self.at.to_string()));
        field(&mut hasher, Some(self.actor_kind));
        field(&mut hasher, self.actor_id.map(|a| a.to_string()).as_deref());
        field(&mut hasher, Some(self.action));
        field(&mut hasher, self.target.map(|t| t.to_string()).as_deref());
        field(&mut hasher, self.detail);
        field(&mut hasher, Some(self.prev_hash));
        let digest: [u8; 32] = hasher.finalize().into();
        hex::encode(digest)
    }
}

#[derive(Debug, Queryable)]
struct Head {
    last_id: i64,
    last_hash: String,
    anchor_id: i64,
    anchor_hash: String,
}

/// The head row; `lock`: on PostgreSQL, locked until the transaction ends (on SQLite the write
/// transaction holds the database's write lock already).
fn read_head(conn: &mut AnyConnection, lock: bool) -> QueryResult<Head> {
    let query = h::audit_head.filter(h::singleton.eq(1)).select((
        h::last_id,
        h::last_hash,
        h::anchor_id,
        h::anchor_hash,
    ));
    if lock && let AnyConnection::Postgresql(pg) = conn {
        return query.for_update().first(pg);
    }
    query.first(conn)
}

/// Appends in the caller's write transaction.
fn append_in(
    conn: &mut AnyConnection,
    at: i64,
    actor: Actor,
    action: Action,
    target: Option<i64>,
    detail: Option<String>,
) -> QueryResult<Entry> {
    let head = read_head(conn, true)?;
    let id = head.last_id + 1;
    let hash = Fields {
        id,
        at,
        actor_kind: actor.kind(),
        actor_id: actor.account(),
        action: action.as_str(),
        target,
        detail: detail.as_deref(),
        prev_hash: &head.last_hash,
    }
    .hash();
    diesel::insert_into(l::audit_log)
        .values((
            l::id.eq(id),
            l::at.eq(at),
            l::actor_kind.eq(actor.kind()),
            l::actor_id.eq(actor.account()),
            l::action.eq(action.as_str()),
            l::target.eq(target),
            l::detail.eq(detail.as_deref()),
            l::prev_hash.eq(&head.last_hash),
            l::hash.eq(&hash),
        ))
        .execute(conn)?;
    diesel::update(h::audit_head.filter(h::singleton.eq(1)))
        .set((h::last_id.eq(id), h::last_hash.eq(&hash)))
        .execute(conn)?;
    Ok(Entry {
        id,
        at,
        actor,
        action,
        target,
        detail,
        prev_hash: head.last_hash,
        hash,
    })
}

fn filtered(filter: &Filter) -> audit_log::BoxedQuery<'static, AnyBackend> {
    let mut query = l::audit_log.into_boxed();
    if let Some(actor) = filter.actor {
        query = query
            .filter(l::actor_kind.eq(Actor::Account(actor).kind()))
            .filter(l::actor_id.eq(actor));
    }
    if let Some(action) = filter.action {
        query = query.filter(l::action.eq(action.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(l::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(l::at.lt(to));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(l::id.lt(before));
    }
    query
}

/// Walks the chain (inside the caller's read transaction).
fn scan(conn: &mut AnyConnection) -> QueryResult<Verification> {
    let head = read_head(conn, false)?;
    let mut first_broken: Option<Broken> = None;
    let mut note = |id: i64, reason: BrokenReason| {
        first_broken.get_or_insert(Broken { id, reason });
    };
    let mut entries = 0u64;
    // The entry the next one must follow: the anchor, then each entry read.
    let mut last_id = head.anchor_id;
    let mut last_hash = head.anchor_hash.clone();
    let mut newest_retention: Option<String> = None;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<Row> = l::audit_log
            .filter(l::id.gt(after))
            .order(l::id.asc())
            .limit(SCAN_PAGE)
            .load(conn)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.id;
        for row in &rows {
            entries += 1;
            if row.action == Action::RetentionApplied.as_str() {
                newest_retention.clone_from(&row.detail);
            }
            if row.id <= head.anchor_id {
                note(row.id, BrokenReason::AnchorMismatch);
                continue;
            }
            if row.id > last_id + 1 {
                note(row.id, BrokenReason::DeletedBefore);
            } else if row.prev_hash != last_hash {
                note(row.id, BrokenReason::PrevHashMismatch);
            }
            if row.fields().hash() != row.hash {
                note(row.id, BrokenReason::Edited);
            }
            last_id = row.id;
            last_hash.clone_from(&row.hash);
        }
    }
    if last_id < head.last_id {
        note(last_id + 1, BrokenReason::DeletedAtEnd);
    } else if last_id > head.last_id {
        note(head.last_id + 1, BrokenReason::HeadMismatch);
    } else if last_hash != head.last_hash {
        note(last_id, BrokenReason::HeadMismatch);
    }
    let expected_retention = (head.anchor_id > 0).then(|| retention_detail(head.anchor_id));
    if newest_retention != expected_retention {
        note(head.anchor_id, BrokenReason::AnchorMismatch);
    }
    Ok(Verification {
        entries,
        first_broken,
        last_id: head.last_id,
        last_hash: head.last_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwarn_db::Backend;
    use openwarn_testkit::TestDatabase;

    async fn open(test_db: &TestDatabase) -> (Database, AuditLog) {
        let db = Database::open(test_db.url(), 8).await.unwrap();
        db.migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        (db.clone(), AuditLog::new(db))
    }

    /// SQL run as someone with database access would: the append-only triggers dropped first.
    async fn as_attacker(db: &Database, sql: impl Into<String>) {
        let sql = sql.into();
        let drop = match db.backend() {
            Backend::Postgres => {
                "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log; \
                 DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log;"
            }
            Backend::Sqlite => {
                "DROP TRIGGER IF EXISTS audit_log_no_update; \
                 DROP TRIGGER IF EXISTS audit_log_no_delete;"
            }
        };
        db.run(move |c| {
            c.batch_execute(drop)?;
            c.batch_execute(&sql)
        })
        .await
        .unwrap();
    }

    /// Five entries: ids 1..=5, at 100, 200, …, 500.
    async fn five(log: &AuditLog) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (i, (actor, action, target, detail)) in [
            (Actor::Account(1), Action::SignInSucceeded, None, None),
            (
                Actor::Unknown,
                Action::SignInFailed,
                None,
                Some("unknown_account"),
            ),
            (Actor::Account(1), Action::TeleTanIssued, None, None),
            (Actor::Account(2), Action::AccountDisabled, Some(1), None),
            (
                Actor::Account(1),
                Action::TeleTanRefused,
                None,
                Some("per_officer_limit"),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let at = 100 * (i as i64 + 1);
            entries.push(log.append(at, actor, action, target, detail).await.unwrap());
        }
        entries
    }

    fn broken(v: &Verification) -> Option<(i64, &'static str)> {
        v.first_broken.map(|b| (b.id, b.reason.as_str()))
    }

    fn all(limit: usize) -> Filter {
        Filter {
            limit,
            ..Filter::default()
        }
    }

    #[test]
    fn action_names_are_stable_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for action in Action::ALL {
            let name = action.as_str();
            assert!(valid_detail(name), "{name} is snake_case");
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(Action::parse(name), Some(*action));
        }
        assert_eq!(Action::ALL.len(), 16);
        // Stored and hashed: these must never change.
        assert_eq!(Action::SignInFailed.as_str(), "sign_in_failed");
        assert_eq!(Action::TeleTanIssued.as_str(), "teletan_issued");
        assert_eq!(Action::SecondFactorReset.as_str(), "second_factor_reset");
        assert_eq!(Action::RetentionApplied.as_str(), "retention_applied");
        assert_eq!(Action::parse("Sign_In_Failed"), None);
        assert_eq!(Action::parse(""), None);
    }

    /// The encoding of the module documentation, pinned by vectors computed independently (with
    /// the Python snippet there). Absent and empty differ, and field boundaries count.
    #[test]
    fn the_hash_encoding_is_the_documented_one() {
        let fields = |detail, target, prev_hash| Fields {
            id: 1,
            at: 1_764_237_600,
            actor_kind: "account",
            actor_id: Some(42),
            action: "teletan_refused",
            target,
            detail,
            prev_hash,
        };
        assert_eq!(
            fields(Some("per_officer_limit"), None, GENESIS_HASH).hash(),
            "e61827dd2dbd4a3488c14c6fac13beef0afe76f7e864e99823d0a5353b680bf9"
        );
        let prev = "ab".repeat(32);
        let second = Fields {
            id: 2,
            at: -5,
            actor_kind: "unknown",
            actor_id: None,
            action: "sign_in_failed",
            target: Some(7),
            detail: None,
            prev_hash: &prev,
        };
        assert_eq!(
            second.hash(),
            "4a58994249c0ef880aa556e0b4cc9a0077af25255c0e1b78ce2d25186ef4a9c4"
        );
        assert_ne!(
            fields(None, None, GENESIS_HASH).hash(),
            fields(Some(""), None, GENESIS_HASH).hash()
        );
        assert_ne!(
            fields(Some("a"), None, GENESIS_HASH).hash(),
            fields(None, Some(0), GENESIS_HASH).hash()
        );
        assert_eq!(GENESIS_HASH.len(), 64);
        assert!(GENESIS_HASH.bytes().all(|b| b == b'0'));
    }

    #[test]
    fn details_must_be_short_machine_reasons() {
        let longest = "a".repeat(64);
        let too_long = "a".repeat(65);
        for ok in ["wrong_code", "per_officer_limit", "through_17", &longest] {
            assert!(valid_detail(ok), "{ok}");
        }
        for bad in [
            "",
            "Wrong code",
            "R3KX9MPQ2T",        // a teleTAN as typed
            "123456",            // a TOTP code
            "hunter2!",          // a password
            "alice@example.org", // a username as typed
            "_x",
            &too_long,
        ] {
            assert!(!valid_detail(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn entries_are_appended_chained_listed_filtered_and_paged() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (_db, log) = open(&test_db).await;
            let written = five(&log).await;
            // Ids from 1 without gaps; the first links to the genesis hash, each next to the last.
            assert_eq!(
                written.iter().map(|e| e.id).collect::<Vec<_>>(),
                [1, 2, 3, 4, 5],
                "{label}"
            );
            assert_eq!(written[0].prev_hash, GENESIS_HASH, "{label}");
            for pair in written.windows(2) {
                assert_eq!(pair[1].prev_hash, pair[0].hash, "{label}");
            }
            // Newest first, as written.
            let listed = log.list(&all(100)).await.unwrap();
            assert_eq!(
                listed,
                written.iter().rev().cloned().collect::<Vec<_>>(),
                "{label}"
            );
            assert_eq!(listed[1].actor, Actor::Account(2), "{label}");
            assert_eq!(listed[1].target, Some(1), "{label}");
            assert_eq!(listed[3].actor, Actor::Unknown, "{label}");
            assert_eq!(
                listed[3].detail.as_deref(),
                Some("unknown_account"),
                "{label}"
            );
            let ids = |entries: Vec<Entry>| entries.into_iter().map(|e| e.id).collect::<Vec<_>>();
            // Filters: actor (an account), action, time range [from, to).
            let by_one = Filter {
                actor: Some(1),
                ..all(100)
            };
            assert_eq!(ids(log.list(&by_one).await.unwrap()), [5, 3, 1], "{label}");
            let issued = Filter {
                actor: Some(1),
                action: Some(Action::TeleTanIssued),
                ..all(100)
            };
            assert_eq!(ids(log.list(&issued).await.unwrap()), [3], "{label}");
            let window = Filter {
                from: Some(200),
                to: Some(400),
                ..all(100)
            };
            assert_eq!(ids(log.list(&window).await.unwrap()), [3, 2], "{label}");
            // Pages of two, by before_id.
            let first = log.list(&all(2)).await.unwrap();
            assert_eq!(ids(first.clone()), [5, 4], "{label}");
            let next = Filter {
                before_id: first.last().map(|e| e.id),
                ..all(2)
            };
            assert_eq!(ids(log.list(&next).await.unwrap()), [3, 2], "{label}");
            let last = Filter {
                before_id: Some(2),
                ..all(2)
            };
            assert_eq!(ids(log.list(&last).await.unwrap()), [1], "{label}");
            assert!(log.list(&all(0)).await.unwrap().is_empty(), "{label}");
            // A detail that is not a machine reason never reaches the table.
            let e = log
                .append(
                    600,
                    Actor::Unknown,
                    Action::SignInFailed,
                    None,
                    Some("Alice Smith"),
                )
                .await
                .unwrap();
            assert_eq!(e.detail.as_deref(), Some(INVALID_DETAIL), "{label}");
            assert_eq!(
                log.list(&all(1)).await.unwrap()[0].detail.as_deref(),
                Some(INVALID_DETAIL),
                "{label}"
            );
            assert!(log.verify().await.unwrap().is_intact(), "{label}");
        }
    }

    #[tokio::test]
    async fn an_intact_log_verifies() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (_db, log) = open(&test_db).await;
            let empty = log.verify().await.unwrap();
            assert_eq!(
                empty,
                Verification {
                    entries: 0,
                    first_broken: None,
                    last_id: 0,
                    last_hash: GENESIS_HASH.to_owned()
                },
                "{label}"
            );
            let written = five(&log).await;
            let v = log.verify().await.unwrap();
            assert_eq!(v.entries, 5, "{label}");
            assert_eq!(broken(&v), None, "{label}");
            assert_eq!(v.last_id, 5, "{label}");
            assert_eq!(v.last_hash, written[4].hash, "{label}");
        }
    }

    #[tokio::test]
    async fn an_edited_entry_is_detected() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            five(&log).await;
            as_attacker(
                &db,
                "UPDATE audit_log SET detail = 'wrong_code' WHERE id = 3",
            )
            .await;
            let v = log.verify().await.unwrap();
            assert_eq!(broken(&v), Some((3, "edited")), "{label}");
            assert_eq!(v.entries, 5, "{label}");
        }
    }

    /// The entry's hash recomputed after the edit: its own hash checks out, the next entry's
    /// link does not (and for the newest entry, the head's hash does not).
    #[tokio::test]
    async fn an_edited_and_rehashed_entry_is_detected() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            let written = five(&log).await;
            for (e, expected) in [
                (&written[4], (5, "head_mismatch")),
                (&written[2], (4, "prev_hash_mismatch")),
            ] {
                let forged_hash = Fields {
                    id: e.id,
                    at: e.at,
                    actor_kind: e.actor.kind(),
                    actor_id: e.actor.account(),
                    action: e.action.as_str(),
                    target: e.target,
                    detail: Some("forged"),
                    prev_hash: &e.prev_hash,
                }
                .hash();
                as_attacker(
                    &db,
                    format!(
                        "UPDATE audit_log SET detail = 'forged', hash = '{forged_hash}' \
                         WHERE id = {}",
                        e.id
                    ),
                )
                .await;
                assert_eq!(
                    broken(&log.verify().await.unwrap()),
                    Some(expected),
                    "{label}: entry {}",
                    e.id
                );
            }
        }
    }

    #[tokio::test]
    async fn a_deleted_middle_entry_is_detected() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            five(&log).await;
            as_attacker(&db, "DELETE FROM audit_log WHERE id = 3").await;
            let v = log.verify().await.unwrap();
            assert_eq!(broken(&v), Some((4, "deleted_before")), "{label}");
            assert_eq!(v.entries, 4, "{label}");
        }
    }

    /// Only the head remembers the newest entry: without it, deleting it would leave a valid chain.
    #[tokio::test]
    async fn deleted_newest_entries_are_detected() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            five(&log).await;
            as_attacker(&db, "DELETE FROM audit_log WHERE id >= 4").await;
            assert_eq!(
                broken(&log.verify().await.unwrap()),
                Some((4, "deleted_at_end")),
                "{label}"
            );
            // Every entry deleted.
            db.run(|c| c.batch_execute("DELETE FROM audit_log"))
                .await
                .unwrap();
            assert_eq!(
                broken(&log.verify().await.unwrap()),
                Some((1, "deleted_at_end")),
                "{label}"
            );
        }
    }

    /// Deleting the oldest entries by hand and moving the anchor to match is what retention does,
    /// except for retention's own entry: its absence (or an older one) gives it away.
    #[tokio::test]
    async fn an_anchor_moved_by_hand_is_detected() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            let written = five(&log).await;
            let h2 = written[1].hash.clone();
            as_attacker(
                &db,
                format!(
                    "UPDATE audit_head SET anchor_id = 2, anchor_hash = '{h2}'; \
                     DELETE FROM audit_log WHERE id <= 2"
                ),
            )
            .await;
            assert_eq!(
                broken(&log.verify().await.unwrap()),
                Some((2, "anchor_mismatch")),
                "{label}"
            );
        }
    }

    #[tokio::test]
    async fn retention_deletes_the_oldest_entries_and_the_chain_still_verifies() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            let written = five(&log).await;
            // At 550, keeping 250 s: the entries before 300 go (at 100 and 200).
            let deleted = log
                .apply_retention(550, Duration::from_secs(250))
                .await
                .unwrap();
            assert_eq!(deleted, 2, "{label}");
            let listed = log.list(&all(100)).await.unwrap();
            assert_eq!(
                listed.iter().map(|e| e.id).collect::<Vec<_>>(),
                [6, 5, 4, 3],
                "{label}"
            );
            // Retention's own entry, by the system, names the new anchor.
            assert_eq!(listed[0].actor, Actor::System, "{label}");
            assert_eq!(listed[0].action, Action::RetentionApplied, "{label}");
            assert_eq!(listed[0].at, 550, "{label}");
            assert_eq!(listed[0].detail.as_deref(), Some("through_2"), "{label}");
            assert_eq!(listed[0].prev_hash, written[4].hash, "{label}");
            let v = log.verify().await.unwrap();
            assert_eq!((v.entries, broken(&v)), (4, None), "{label}");
            // Nothing old enough: nothing deleted, nothing written.
            assert_eq!(
                log.apply_retention(550, Duration::from_secs(250))
                    .await
                    .unwrap(),
                0,
                "{label}"
            );
            assert_eq!(log.verify().await.unwrap().entries, 4, "{label}");
            // The chain goes on after retention; an entry out of time order (a clock behind)
            // stops retention there, so that what stays is one chain.
            log.append(90, Actor::Account(3), Action::SignedOut, None, None)
                .await
                .unwrap();
            assert_eq!(
                log.apply_retention(1_000, Duration::from_secs(550))
                    .await
                    .unwrap(),
                2,
                "{label}: entries 3 and 4 (at 300 and 400); 5 (at 500) stays, and so 7 (at 90)"
            );
            let v = log.verify().await.unwrap();
            assert_eq!((v.entries, broken(&v)), (4, None), "{label}");
            // Everything, the previous retention entries included.
            assert_eq!(
                log.apply_retention(10_000, Duration::from_secs(10))
                    .await
                    .unwrap(),
                4,
                "{label}"
            );
            let v = log.verify().await.unwrap();
            assert_eq!((v.entries, broken(&v)), (1, None), "{label}");
            assert_eq!(
                log.list(&all(10)).await.unwrap()[0].detail.as_deref(),
                Some("through_8"),
                "{label}"
            );
            // Deleting any other entry still shows.
            log.append(10_001, Actor::Account(1), Action::SignedOut, None, None)
                .await
                .unwrap();
            log.append(
                10_002,
                Actor::Account(1),
                Action::SignInSucceeded,
                None,
                None,
            )
            .await
            .unwrap();
            as_attacker(&db, "DELETE FROM audit_log WHERE id = 10").await;
            assert_eq!(
                broken(&log.verify().await.unwrap()),
                Some((11, "deleted_before")),
                "{label}"
            );
        }
    }

    /// Several writers at once (tasks on a pool of 8 connections): one chain, ids without gaps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_make_one_chain() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (_db, log) = open(&test_db).await;
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        log.append(
                            1_000 + i,
                            Actor::Account(i),
                            Action::TeleTanIssued,
                            None,
                            None,
                        )
                        .await
                    })
                })
                .collect();
            let mut ids = Vec::new();
            for task in tasks {
                ids.push(task.await.unwrap().unwrap().id);
            }
            ids.sort_unstable();
            assert_eq!(ids, (1..=50).collect::<Vec<_>>(), "{label}");
            let v = log.verify().await.unwrap();
            assert_eq!(
                (v.entries, broken(&v), v.last_id),
                (50, None, 50),
                "{label}"
            );
            let mut listed = log.list(&all(100)).await.unwrap();
            listed.reverse();
            assert_eq!(listed[0].prev_hash, GENESIS_HASH, "{label}");
            for pair in listed.windows(2) {
                assert_eq!(pair[1].prev_hash, pair[0].hash, "{label}");
            }
        }
    }

    #[tokio::test]
    async fn the_database_refuses_edits_and_deletes_above_the_anchor() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (db, log) = open(&test_db).await;
            five(&log).await;
            let update = db
                .run(|c| c.batch_execute("UPDATE audit_log SET detail = 'x' WHERE id = 3"))
                .await
                .unwrap_err();
            assert!(
                update.to_string().contains("append-only"),
                "{label}: {update}"
            );
            let delete = db
                .run(|c| c.batch_execute("DELETE FROM audit_log WHERE id = 1"))
                .await
                .unwrap_err();
            assert!(
                delete.to_string().contains("append-only"),
                "{label}: {delete}"
            );
            if db.backend() == Backend::Postgres {
                let truncate = db
                    .run(|c| c.batch_execute("TRUNCATE audit_log"))
                    .await
                    .unwrap_err();
                assert!(
                    truncate.to_string().contains("append-only"),
                    "{label}: {truncate}"
                );
            }
            let v = log.verify().await.unwrap();
            assert_eq!((v.entries, broken(&v)), (5, None), "{label}");
            // Retention may delete (up to the anchor it sets).
            assert_eq!(
                log.apply_retention(250, Duration::ZERO).await.unwrap(),
                2,
                "{label}"
            );
        }
    }

    #[tokio::test]
    async fn exports_are_json_lines_oldest_first_an_auditor_can_verify() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (_db, log) = open(&test_db).await;
            five(&log).await;
            for i in 0..1_100 {
                log.append(
                    1_000 + i,
                    Actor::Account(9),
                    Action::AuditViewed,
                    None,
                    None,
                )
                .await
                .unwrap();
            }
            let mut out = Vec::new();
            let lines = log.export_jsonl(&all(0), &mut out).await.unwrap();
            assert_eq!(lines, 1_105, "{label}");
            let text = String::from_utf8(out).unwrap();
            let objects: Vec<serde_json::Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            assert_eq!(objects.len(), 1_105, "{label}");
            assert_eq!(
                objects[1],
                serde_json::json!({
                    "id": 2, "at": 200, "actor": "unknown", "actor_id": null,
                    "action": "sign_in_failed", "target": null, "detail": "unknown_account",
                    "prev_hash": objects[0]["hash"], "hash": objects[1]["hash"],
                }),
                "{label}"
            );
            // The auditor's check, from the documentation, not from this module's code.
            let mut prev = GENESIS_HASH.to_owned();
            for (i, o) in objects.iter().enumerate() {
                assert_eq!(o["id"], i as i64 + 1, "{label}");
                assert_eq!(o["prev_hash"], prev.as_str(), "{label}");
                let mut encoded = Vec::new();
                for key in [
                    None,
                    Some("id"),
                    Some("at"),
                    Some("actor"),
                    Some("actor_id"),
                    Some("action"),
                    Some("target"),
                    Some("detail"),
                    Some("prev_hash"),
                ] {
                    let value = match key.map(|k| &o[k]) {
                        None => Some(HASH_DOMAIN.to_owned()),
                        Some(serde_json::Value::Null) => None,
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                    };
                    match value {
                        None => encoded.push(0),
                        Some(v) => {
                            encoded.push(1);
                            encoded.extend_from_slice(&(v.len() as u64).to_be_bytes());
                            encoded.extend_from_slice(v.as_bytes());
                        }
                    }
                }
                let hash = hex::encode(Sha256::digest(&encoded));
                assert_eq!(o["hash"], hash.as_str(), "{label}: entry {}", i + 1);
                prev = hash;
            }
            // Filtered, and paged by hand.
            let mut out = Vec::new();
            let refused = Filter {
                action: Some(Action::TeleTanRefused),
                ..all(0)
            };
            assert_eq!(
                log.export_jsonl(&refused, &mut out).await.unwrap(),
                1,
                "{label}"
            );
            let mut out = Vec::new();
            let page = log.export_page(&all(0), 0, &mut out).await.unwrap();
            assert_eq!(
                page,
                ExportPage {
                    lines: 1_000,
                    next_after: Some(1_000)
                },
                "{label}"
            );
            let page = log.export_page(&all(0), 1_000, &mut out).await.unwrap();
            assert_eq!(
                page,
                ExportPage {
                    lines: 105,
                    next_after: None
                },
                "{label}"
            );
            assert_eq!(
                out.iter().filter(|b| **b == b'\n').count(),
                1_105,
                "{label}"
            );
        }
    }

    #[tokio::test]
    async fn recent_actions_of_an_account_are_counted() {
        for test_db in openwarn_testkit::databases() {
            let label = test_db.label();
            let (_db, log) = open(&test_db).await;
            for (at, actor, action) in [
                (100, Actor::Account(1), Action::SignInFailed),
                (200, Actor::Account(1), Action::SignInFailed),
                (300, Actor::Account(1), Action::SignInFailed),
                (300, Actor::Account(2), Action::SignInFailed),
                (300, Actor::Account(1), Action::SignInSucceeded),
                (300, Actor::Unknown, Action::SignInFailed),
            ] {
                log.append(at, actor, action, None, None).await.unwrap();
            }
            assert_eq!(
                log.count_recent(1, Action::SignInFailed, 200)
                    .await
                    .unwrap(),
                2,
                "{label}"
            );
            assert_eq!(
                log.count_recent(1, Action::SignInFailed, 0).await.unwrap(),
                3,
                "{label}"
            );
            assert_eq!(
                log.count_recent(3, Action::SignInFailed, 0).await.unwrap(),
                0,
                "{label}"
            );
        }
    }
}
