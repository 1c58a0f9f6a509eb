//! Group commit: writes that arrive while earlier ones are being written go to the database
//! together, as one statement (PostgreSQL) or one transaction (SQLite).
//!
//! Under load this is what lets a service write at a rate close to the database's own ceiling:
//! the per-statement costs (a round trip, parsing and planning, a commit and its WAL flush) are
//! paid once per batch instead of once per request, while each caller still gets its own answer.
//! Unloaded, a batch is one item and nothing waits: there is no timer, a batch is simply whatever
//! queued up while the previous batches were running.

use crate::{AnyConnection, Database, DbError};
use diesel::result::Error as DieselError;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// How big and how many batches may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most items in one batch.
    pub max_items: usize,
    /// Most batches written at the same time, each on its own pooled connection. A batch beyond
    /// the first starts only while a full batch (`max_items`) is waiting.
    pub parallel: usize,
}

impl BatchLimits {
    /// Defaults for a backend: SQLite has one writer at a time; PostgreSQL writes one batch at a
    /// time too while that keeps up, and up to four when full batches are waiting.
    pub fn for_database(db: &Database) -> Self {
        match db.backend() {
            crate::Backend::Sqlite => Self {
                max_items: 64,
                parallel: 1,
            },
            crate::Backend::Postgres => Self {
                max_items: 64,
                parallel: 4,
            },
        }
    }
}

/// Writes one batch: one result per item, in the items' order. On PostgreSQL the function should
/// be one statement (atomic by itself); on SQLite it runs inside a write transaction already.
pub type WriteFn<T, R> =
    dyn Fn(&mut AnyConnection, &[T]) -> Result<Vec<R>, DieselError> + Send + Sync + 'static;

struct Pending<T, R> {
    item: T,
    reply: oneshot::Sender<Result<R, DbError>>,
    /// The caller's span: the batch's span is a child of its first item's caller and links the
    /// others.
    span: tracing::Span,
}

/// Collects concurrent writes of one kind into batches. Cheap to clone; the writer task stops
/// when the last clone is dropped.
pub struct Batcher<T, R> {
    name: &'static str,
    queue: mpsc::Sender<Pending<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            queue: self.queue.clone(),
        }
    }
}

impl<T, R> std::fmt::Debug for Batcher<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the writer task (call from within a tokio runtime). `name` labels the batch-size
    /// histogram `openwarn_db_batch_items{batch="…"}`.
    pub fn new<F>(name: &'static str, db: Database, limits: BatchLimits, write: F) -> Self
    where
        F: Fn(&mut AnyConnection, &[T]) -> Result<Vec<R>, DieselError> + Send + Sync + 'static,
    {
        let (queue, pending) = mpsc::channel(limits.max_items.max(1) * 64);
        tokio::spawn(drive(name, db, limits, Arc::new(write), pending));
        Self { name, queue }
    }

    /// Writes `item` with whatever else is queued; resolves when its batch is written.
    pub async fn write(&self, item: T) -> Result<R, DbError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::info_span!("db.write", db.batch = self.name);
        let queued = async {
            self.queue
                .send(Pending {
                    item,
                    reply,
                    span: tracing::Span::current(),
                })
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        queued.instrument(span).await
    }
}

fn stopped() -> DbError {
    DbError::Unavailable("the batch writer stopped".into())
}

async fn drive<T: Send + 'static, R: Send + 'static>(
    name: &'static str,
    db: Database,
    limits: BatchLimits,
    write: Arc<WriteFn<T, R>>,
    mut pending: mpsc::Receiver<Pending<T, R>>,
) {
    let (max_items, parallel) = (limits.max_items.max(1), limits.parallel.max(1));
    let mut running = tokio::task::JoinSet::new();
    let mut waiting: Vec<Pending<T, R>> = Vec::with_capacity(max_items);
    loop {
        // One batch at a time keeps batches as large as the load makes them (every statement
        // saved is CPU saved on both sides); another runs beside it only once a full batch is
        // waiting, i.e. when one writer at a time cannot keep up.
        while starts_a_batch(running.len(), waiting.len(), max_items, parallel) {
            let batch: Vec<_> = waiting.drain(..waiting.len().min(max_items)).collect();
            running.spawn(write_and_answer(name, db.clone(), write.clone(), batch));
        }
        // Requests are taken off the queue only when they could start a batch; the rest stay
        // queued and become the next batch.
        let take = running.len() < parallel && waiting.len() < max_items;
        tokio::select! {
            Some(_) = running.join_next(), if !running.is_empty() => {}
            next = pending.recv(), if take => match next {
                Some(p) => {
                    waiting.push(p);
                    while waiting.len() < max_items {
                        match pending.try_recv() {
                            Ok(p) => waiting.push(p),
                            Err(_) => break,
                        }
                    }
                }
                None => break,
            },
        }
    }
    // Every Batcher is gone, so nobody waits for `waiting`; let the batches being written finish.
    while running.join_next().await.is_some() {}
}

/// Whether a new batch starts, with `running` batches being written and `waiting` requests taken.
fn starts_a_batch(running: usize, waiting: usize, max_items: usize, parallel: usize) -> bool {
    running < parallel && waiting > 0 && (running == 0 || waiting >= max_items)
}

async fn write_and_answer<T: Send + 'static, R: Send + 'static>(
    name: &'static str,
    db: Database,
    write: Arc<WriteFn<T, R>>,
    batch: Vec<Pending<T, R>>,
) {
    let span = batch_span(name, &batch);
    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let results = db
        .with_connection(move |conn| write_batch(conn, &items, &*write))
        .instrument(span)
        .await
        .unwrap_or_else(|e| {
            let message = e.to_string();
            replies
                .iter()
                .map(|_| Err(DbError::Unavailable(message.clone())))
                .collect()
        });
    metrics::histogram!("openwarn_db_batch_items", "batch" => name).record(replies.len() as f64);
    for (reply, result) in replies.into_iter().zip(results) {
        // A caller that went away no longer needs its answer.
        let _ = reply.send(result);
    }
}

/// The span of writing one batch: a child of its first item's caller, linked to the others'.
fn batch_span<T, R>(name: &'static str, batch: &[Pending<T, R>]) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let parent = batch
        .first()
        .map(|p| p.span.clone())
        .unwrap_or_else(tracing::Span::none);
    let span = tracing::info_span!(parent: &parent, "db.batch", db.batch = name, db.batch.items = batch.len());
    for other in batch.iter().skip(1) {
        let context = other.span.context();
        let linked = context.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
    span
}

/// Writes the batch; when it fails for a reason other than the database being unreachable, each
/// item is written on its own, so that one item that cannot be written does not fail the others.
/// An unreachable database fails the whole batch (every item gets the outage, and the
/// connection is dropped from the pool).
fn write_batch<T, R>(
    conn: &mut AnyConnection,
    items: &[T],
    write: &WriteFn<T, R>,
) -> Result<Vec<Result<R, DbError>>, DbError> {
    Ok(match write_atomically(conn, items, write) {
        Ok(results) => answered(items.len(), results),
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) if items.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, items = items.len(), "a batch failed; writing its items one by one");
            items
                .chunks(1)
                .flat_map(|one| match write_atomically(conn, one, write) {
                    Ok(results) => answered(1, results),
                    Err(e) => vec![Err(e)],
                })
                .collect()
        }
    })
}

/// The write's results, one per item; when it gave another number of results (a bug in the
/// write — which has run and must not run again), an error for every item.
fn answered<R>(items: usize, results: Vec<R>) -> Vec<Result<R, DbError>> {
    if results.len() == items {
        return results.into_iter().map(Ok).collect();
    }
    tracing::error!(
        items,
        results = results.len(),
        "a batch write answered the wrong number of items"
    );
    (0..items)
        .map(|_| {
            Err(DbError::Query(DieselError::QueryBuilderError(
                format!("a batch of {items} items gave {} results", results.len()).into(),
            )))
        })
        .collect()
}

fn write_atomically<T, R>(
    conn: &mut AnyConnection,
    items: &[T],
    write: &WriteFn<T, R>,
) -> Result<Vec<R>, DbError> {
    use diesel::connection::SimpleConnection;
    match conn {
        AnyConnection::Postgresql(_) => Ok(write(conn, items)?),
        AnyConnection::Sqlite(_) => {
            // One write transaction for the whole batch (the write lock taken up front).
            conn.batch_execute("BEGIN IMMEDIATE")?;
            match write(conn, items).and_then(|r| conn.batch_execute("COMMIT").map(|()| r)) {
                Ok(r) => Ok(r),
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    Err(e.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;
    use diesel::result::DatabaseErrorKind;
    use diesel::sql_types::{Array, Integer};
    use std::sync::Mutex;

    async fn open(url: &str) -> Database {
        let db = Database::open(url, 4).await.unwrap();
        db.run(|c| diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY)").execute(c))
            .await
            .unwrap();
        db
    }

    /// Inserts the batch's ids all or nothing; the result of each item is its id doubled.
    fn insert(conn: &mut AnyConnection, ids: &[i32]) -> Result<Vec<i32>, DieselError> {
        match conn {
            AnyConnection::Postgresql(pg) => {
                crate::prepared("INSERT INTO items (id) SELECT * FROM UNNEST($1::int4[])")
                    .bind::<Array<Integer>, _>(ids.to_vec())
                    .execute(pg)?;
            }
            AnyConnection::Sqlite(_) => {
                for id in ids {
                    diesel::sql_query("INSERT INTO items (id) VALUES (?)")
                        .bind::<Integer, _>(*id)
                        .execute(conn)?;
                }
            }
        }
        Ok(ids.iter().map(|id| id * 2).collect())
    }

    async fn count(db: &Database) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct C {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            c: i64,
        }
        db.run(|c| diesel::sql_query("SELECT count(*) AS c FROM items").get_result::<C>(c))
            .await
            .unwrap()
            .c
    }

    /// A batcher over `items` whose first batch (the item 0) is held until `hold` sends: the item
    /// 0 is being written when `start` returns. `sizes` are the sizes of the batches written.
    struct HeldFirstBatch {
        batcher: Batcher<i32, i32>,
        sizes: Arc<Mutex<Vec<usize>>>,
        hold: std::sync::mpsc::Sender<()>,
        first: tokio::task::JoinHandle<Result<i32, DbError>>,
    }

    impl HeldFirstBatch {
        async fn start(database: &Database, limits: BatchLimits) -> Self {
            let sizes = Arc::new(Mutex::new(Vec::new()));
            let (hold, held) = std::sync::mpsc::channel::<()>();
            let held = Mutex::new(held);
            let recorded = sizes.clone();
            let batcher = Batcher::new(
                "test",
                database.clone(),
                limits,
                move |conn, ids: &[i32]| {
                    recorded.lock().unwrap().push(ids.len());
                    if ids == [0] {
                        held.lock().unwrap().recv().unwrap();
                    }
                    insert(conn, ids)
                },
            );
            let first = tokio::spawn({
                let b = batcher.clone();
                async move { b.write(0).await }
            });
            tokio::time::timeout(std::time::Duration::from_secs(60), async {
                while sizes.lock().unwrap().is_empty() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the first batch never started");
            Self {
                batcher,
                sizes,
                hold,
                first,
            }
        }
    }

    /// While a batch is being written, everything that arrives queues up and is written as the
    /// next batch; each caller gets its own item's result.
    #[tokio::test]
    async fn writes_arriving_during_a_batch_form_the_next_batch() {
        for db in openwarn_testkit::databases() {
            let database = open(db.url()).await;
            let HeldFirstBatch {
                batcher,
                sizes,
                hold,
                first,
            } = HeldFirstBatch::start(
                &database,
                BatchLimits {
                    max_items: 64,
                    parallel: 1,
                },
            )
            .await;
            let capacity = batcher.queue.capacity();
            let rest: Vec<_> = (1..=40)
                .map(|id| {
                    let b = batcher.clone();
                    tokio::spawn(async move { b.write(id).await })
                })
                .collect();
            while batcher.queue.capacity() > capacity - 40 {
                tokio::task::yield_now().await;
            }
            hold.send(()).unwrap();
            assert_eq!(first.await.unwrap().unwrap(), 0);
            for (id, task) in (1..=40).zip(rest) {
                assert_eq!(task.await.unwrap().unwrap(), id * 2, "{}", db.label());
            }
            assert_eq!(*sizes.lock().unwrap(), vec![1, 40], "{}", db.label());
            assert_eq!(count(&database).await, 41);
        }
    }

    #[test]
    fn a_batch_starts_when_idle_or_when_a_full_one_waits_and_a_writer_is_free() {
        let (max, parallel) = (4, 2);
        assert!(!starts_a_batch(0, 0, max, parallel), "nothing to write");
        assert!(
            starts_a_batch(0, 1, max, parallel),
            "idle: one request goes at once"
        );
        assert!(
            !starts_a_batch(1, 3, max, parallel),
            "busy: a small batch waits"
        );
        assert!(
            starts_a_batch(1, 4, max, parallel),
            "busy: a full batch goes beside"
        );
        assert!(!starts_a_batch(2, 4, max, parallel), "every writer busy");
        assert!(starts_a_batch(0, 1, max, 1) && !starts_a_batch(1, 9, max, 1));
    }

    /// With room for two batches, a second one starts beside a running batch only once a full
    /// batch is waiting; fewer wait for the running one instead of making a small batch.
    /// PostgreSQL only: SQLite has one writer (a held write transaction blocks the second).
    #[tokio::test]
    async fn a_second_batch_runs_beside_the_first_only_when_full() {
        let postgres = openwarn_testkit::databases()
            .into_iter()
            .filter(|db| db.label() == "postgres");
        for db in postgres {
            let database = open(db.url()).await;
            let HeldFirstBatch {
                batcher,
                sizes,
                hold,
                first,
            } = HeldFirstBatch::start(
                &database,
                BatchLimits {
                    max_items: 4,
                    parallel: 2,
                },
            )
            .await;
            let rest: Vec<_> = (1..=7)
                .map(|id| {
                    let b = batcher.clone();
                    tokio::spawn(async move { b.write(id).await })
                })
                .collect();
            // Four of the seven make a full batch, which runs while the first is still held.
            tokio::time::timeout(std::time::Duration::from_secs(60), async {
                while sizes.lock().unwrap().len() < 2 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("no second batch started beside the held one");
            assert_eq!(*sizes.lock().unwrap(), vec![1, 4], "{}", db.label());
            hold.send(()).unwrap();
            assert_eq!(first.await.unwrap().unwrap(), 0);
            for (id, task) in (1..=7).zip(rest) {
                assert_eq!(task.await.unwrap().unwrap(), id * 2, "{}", db.label());
            }
            // The other three waited for a writer and went together.
            assert_eq!(*sizes.lock().unwrap(), vec![1, 4, 3], "{}", db.label());
            assert_eq!(count(&database).await, 8);
        }
    }

    /// An item that cannot be written fails alone: its batch is rolled back and written again one
    /// item at a time.
    #[tokio::test]
    async fn a_failing_item_does_not_fail_its_batch() {
        for db in openwarn_testkit::databases() {
            let database = open(db.url()).await;
            database
                .run(|c| diesel::sql_query("INSERT INTO items (id) VALUES (7)").execute(c))
                .await
                .unwrap();
            let items = vec![1, 2, 7, 3];
            let results = database
                .with_connection(move |conn| write_batch(conn, &items, &insert))
                .await
                .unwrap();
            assert_eq!(results[0].as_ref().unwrap(), &2);
            assert_eq!(results[1].as_ref().unwrap(), &4);
            assert!(results[2].as_ref().unwrap_err().is_unique_violation());
            assert_eq!(results[3].as_ref().unwrap(), &6);
            assert_eq!(
                count(&database).await,
                4,
                "{}: 7 once, 1 2 3 once",
                db.label()
            );
        }
    }

    /// A write that answers fewer items than it got is an error for every item of the batch,
    /// not a success for some, and is not run again item by item (it has written already).
    #[tokio::test]
    async fn a_write_with_a_result_missing_fails_every_item() {
        let db = openwarn_testkit::TestDatabase::sqlite();
        let database = Database::open(db.url(), 1).await.unwrap();
        let calls = Mutex::new(0);
        let short = move |_: &mut AnyConnection, _: &[i32]| -> Result<Vec<i32>, DieselError> {
            *calls.lock().unwrap() += 1;
            assert_eq!(*calls.lock().unwrap(), 1, "written once");
            Ok(vec![1])
        };
        let results = database
            .with_connection(move |conn| write_batch(conn, &[1, 2], &short))
            .await
            .unwrap();
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(Result::is_err), "{results:?}");
    }

    /// When the database is gone, every item of the batch is told so at once (no retries one by
    /// one against a database that is not there).
    #[tokio::test]
    async fn an_unreachable_database_fails_the_whole_batch_once() {
        let db = openwarn_testkit::TestDatabase::sqlite();
        let database = Database::open(db.url(), 1).await.unwrap();
        let calls = Mutex::new(0);
        let write = move |_: &mut AnyConnection, _: &[i32]| -> Result<Vec<i32>, DieselError> {
            *calls.lock().unwrap() += 1;
            assert_eq!(*calls.lock().unwrap(), 1, "written once");
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("server closed the connection".to_owned()),
            ))
        };
        let failed = database
            .with_connection(move |conn| write_batch(conn, &[1, 2, 3], &write))
            .await
            .unwrap_err();
        assert!(failed.is_unavailable(), "{failed}");
    }
}
