//! Retention: TANs, teleTANs and teleTAN sessions go after `OPENWARN_SESSION_RETENTION`; a GUID
//! session then becomes tombstones of its ids, held exactly as long as test-result holds the
//! lab's result for each id (the time test-result answers, on its own clock), so that the same
//! GUID cannot register again — and get TANs again — while its result can still be read.

use crate::store::Store;
use crate::testresults::TestResults;
use openwarn_db::DbError;

/// GUID sessions buried per page (each asks test-result once per id).
const PAGE: i64 = 200;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// GUID sessions replaced by tombstones.
    pub buried: usize,
    /// Rows deleted: TANs, teleTANs, teleTAN sessions, tombstones no longer held.
    pub deleted: usize,
    /// GUID sessions past their retention kept for the next run: test-result could not say how
    /// long it holds their results.
    pub deferred: bool,
}

/// One run at `now`: sessions created more than `keep` seconds before `now` are past their
/// retention. A GUID session is deleted only together with its tombstones; when test-result does
/// not answer, it stays (and registration stays refused) until a later run.
pub async fn apply(
    store: &Store,
    results: &TestResults,
    now: i64,
    keep: i64,
) -> Result<Retained, DbError> {
    let cutoff = now.saturating_sub(keep);
    let mut retained = Retained::default();
    'pages: loop {
        let expiring = store.expiring_guid_sessions(cutoff, PAGE).await?;
        if expiring.is_empty() {
            break;
        }
        for session in expiring {
            let mut held = Vec::with_capacity(session.ids.len());
            for id in session.ids {
                match results.held_until(&id).await {
                    Ok(until) => held.push((id, until)),
                    Err(()) => {
                        retained.deferred = true;
                        break 'pages;
                    }
                }
            }
            store.bury(session.token_hash, held).await?;
            retained.buried += 1;
        }
    }
    retained.deleted = store.apply_retention(cutoff, now).await?;
    Ok(retained)
}
