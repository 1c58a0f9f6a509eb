//! Redeemed marks at test-result, sent off the upload's path and together.
//!
//! When a TAN is spent, its GUID session is redeemed here at once (the app reads 4 from then on);
//! the mark at test-result only keeps labs from changing a result that was used. So committing a
//! TAN only queues the mark, and one sender sends the queue: whatever queued while its previous
//! call ran goes in the next `MarkRedeemed` call. Under load that is one call for many uploads
//! instead of one each. A call that test-result could not take (unavailable, timed out) is sent
//! again after a pause — marks are idempotent — and given up after [`ATTEMPTS`], counted in
//! `openwarn_test_result_redeem_failures_total` like a mark that found the queue full. When the
//! service stops, what is still queued is sent within the termination grace period.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most marks in one call (test-result takes up to 1000).
pub const MAX_PER_CALL: usize = 500;
/// Marks that may wait for the sender; beyond that a mark is dropped and counted.
const QUEUE: usize = 100_000;
/// Tries of one call before its marks are given up.
pub const ATTEMPTS: u32 = 3;
/// Pause before the second try; doubled before each later one.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RedeemMarks {
    queue: mpsc::Sender<String>,
}

impl RedeemMarks {
    /// Starts the sender as a task of its own (call from within a tokio runtime); `send` makes
    /// one call with the ids given. The sender stops when the last clone is dropped, after
    /// sending what was queued.
    #[cfg(test)]
    pub fn start<F, Fut>(send: F) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send,
    {
        let (marks, sender) = Self::with_queue(QUEUE, send, std::future::pending(), Duration::ZERO);
        tokio::spawn(sender);
        marks
    }

    /// The marks, and their sender for the service to run as one of its tasks: `send` makes one
    /// call with the ids given. Once `stopping` resolves (the service stops), the sender still
    /// sends what is queued — and what calls still under way queue — for up to `grace`: it ends
    /// when the last clone of the marks is dropped and the queue is empty, or when `grace` is
    /// over (marks still queued then are counted as given up).
    pub fn until<F, Fut>(
        send: F,
        stopping: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> (Self, impl Future<Output = ()> + Send + 'static)
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send,
    {
        Self::with_queue(QUEUE, send, stopping, grace)
    }

    /// [`Self::until`] with room for `capacity` waiting marks.
    fn with_queue<F, Fut>(
        capacity: usize,
        send: F,
        stopping: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> (Self, impl Future<Output = ()> + Send + 'static)
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send,
    {
        let (queue, mut pending) = mpsc::channel::<String>(capacity);
        let sender = async move {
            let mut stopping = std::pin::pin!(stopping);
            // Set once the service stops: the end of the grace period.
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let first = match deadline {
                    None => tokio::select! {
                        first = pending.recv() => first,
                        () = &mut stopping => {
                            deadline = Some(tokio::time::Instant::now() + grace);
                            continue;
                        }
                    },
                    Some(at) => match tokio::time::timeout_at(at, pending.recv()).await {
                        Ok(first) => first,
                        Err(_) => return give_up(&mut pending, 0),
                    },
                };
                // Every clone dropped and nothing queued: no mark can come any more.
                let Some(first) = first else { return };
                let mut ids = vec![first];
                while ids.len() < MAX_PER_CALL {
                    match pending.try_recv() {
                        Ok(id) => ids.push(id),
                        Err(_) => break,
                    }
                }
                let marks = ids.len();
                let delivery = deliver(&send, ids);
                let mut delivery = std::pin::pin!(delivery);
                let at = match deadline {
                    Some(at) => at,
                    None => tokio::select! {
                        () = &mut delivery => continue,
                        // Stopping while a call is under way: it gets the grace period too.
                        () = &mut stopping => {
                            let at = tokio::time::Instant::now() + grace;
                            deadline = Some(at);
                            at
                        }
                    },
                };
                if tokio::time::timeout_at(at, delivery).await.is_err() {
                    return give_up(&mut pending, marks);
                }
            }
        };
        (Self { queue }, sender)
    }

    /// Queues the mark of one result; never waits.
    pub fn mark(&self, hashed_guid: String) {
        if self.queue.try_send(hashed_guid).is_err() {
            failed(1);
            tracing::warn!("redeemed marks are not being sent fast enough; one dropped");
        }
    }
}

async fn deliver<F, Fut>(send: &F, ids: Vec<String>)
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        match send(ids.clone()).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS && retryable(e.code()) => {
                tracing::info!(code = ?e.code(), marks = ids.len(), "test-result did not take the redeemed marks; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                failed(ids.len());
                tracing::warn!(code = ?e.code(), marks = ids.len(), "could not mark test results redeemed");
                return;
            }
        }
    }
}

/// The grace period is over: `in_call` marks of a call cut short and whatever is still queued
/// are given up.
fn give_up(pending: &mut mpsc::Receiver<String>, in_call: usize) {
    let marks = in_call + pending.len();
    if marks > 0 {
        failed(marks);
        tracing::warn!(
            marks,
            "stopping: redeemed marks not sent within the grace period"
        );
    }
}

fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

fn failed(marks: usize) {
    metrics::counter!("openwarn_test_result_redeem_failures_total").increment(marks as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::Notify;

    type Calls = Arc<Mutex<Vec<Vec<String>>>>;
    type Call = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;

    fn ids(range: std::ops::RangeInclusive<u8>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    /// Marks whose calls are recorded and answered by `answer(first id, number of the call)`.
    fn recording(
        answer: impl Fn(&str, usize) -> Result<(), tonic::Status> + Send + Sync + 'static,
    ) -> (RedeemMarks, Calls) {
        let calls: Calls = Arc::default();
        let recorded = calls.clone();
        let answer = Arc::new(answer);
        let marks = RedeemMarks::start(move |ids: Vec<String>| {
            let (calls, answer) = (recorded.clone(), answer.clone());
            async move {
                let mut calls = calls.lock().unwrap();
                calls.push(ids.clone());
                answer(&ids[0], calls.len())
            }
        });
        (marks, calls)
    }

    /// A `send` that records each call and holds the first one until `gate` is notified.
    fn gated(
        calls: &Calls,
        gate: &Arc<Notify>,
    ) -> impl Fn(Vec<String>) -> Call + Send + Sync + 'static {
        let (calls, gate) = (calls.clone(), gate.clone());
        move |ids: Vec<String>| {
            let (calls, gate) = (calls.clone(), gate.clone());
            Box::pin(async move {
                let first = calls.lock().unwrap().is_empty();
                calls.lock().unwrap().push(ids);
                if first {
                    gate.notified().await;
                }
                Ok(())
            })
        }
    }

    /// The stop signal of a service, as a future.
    async fn stopped(stopping: tokio::sync::oneshot::Receiver<()>) {
        let _ = stopping.await;
    }

    async fn until_calls(calls: &Calls, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while calls.lock().unwrap().len() < n {
                // A sleep, not a yield: with the clock paused, time moves only while all wait.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the call was never made");
    }

    /// Marks queued while a call is under way go together in the next call.
    #[tokio::test]
    async fn marks_queued_during_a_call_go_in_the_next_one() {
        let calls: Calls = Arc::default();
        let gate = Arc::new(Notify::new());
        let marks = RedeemMarks::start(gated(&calls, &gate));
        marks.mark("1".into());
        until_calls(&calls, 1).await;
        for id in ids(2..=9) {
            marks.mark(id);
        }
        gate.notify_one();
        until_calls(&calls, 2).await;
        assert_eq!(*calls.lock().unwrap(), vec![ids(1..=1), ids(2..=9)]);
    }

    /// A mark that finds the queue full is dropped, never waited for; the queue goes on.
    #[tokio::test]
    async fn a_mark_finding_the_queue_full_is_dropped() {
        let calls: Calls = Arc::default();
        let gate = Arc::new(Notify::new());
        let (marks, sender) = RedeemMarks::with_queue(
            2,
            gated(&calls, &gate),
            std::future::pending(),
            Duration::ZERO,
        );
        tokio::spawn(sender);
        marks.mark("1".into());
        until_calls(&calls, 1).await;
        for id in ids(2..=4) {
            marks.mark(id);
        }
        gate.notify_one();
        until_calls(&calls, 2).await;
        assert_eq!(
            *calls.lock().unwrap(),
            vec![ids(1..=1), ids(2..=3)],
            "4 found the queue (room for 2) full"
        );
    }

    /// An unavailable test-result gets the same call again after a pause; a refusal is final.
    #[tokio::test(start_paused = true)]
    async fn a_call_test_result_could_not_take_is_sent_again() {
        let (marks, calls) = recording(|first, call| match (first, call) {
            ("1", 1) => Err(tonic::Status::unavailable("down")),
            ("bad", _) => Err(tonic::Status::invalid_argument("no")),
            _ => Ok(()),
        });
        marks.mark("1".into());
        until_calls(&calls, 2).await;
        marks.mark("bad".into());
        until_calls(&calls, 3).await;
        marks.mark("2".into());
        until_calls(&calls, 4).await;
        assert_eq!(
            *calls.lock().unwrap(),
            vec![ids(1..=1), ids(1..=1), vec!["bad".to_owned()], ids(2..=2)],
            "the unavailable call was sent twice, the refused one once"
        );
    }

    /// A call that keeps failing is given up after the last attempt; later marks still go.
    #[tokio::test(start_paused = true)]
    async fn a_call_is_given_up_after_the_last_attempt() {
        let (marks, calls) = recording(|first, _| match first {
            "1" => Err(tonic::Status::unavailable("down")),
            _ => Ok(()),
        });
        marks.mark("1".into());
        until_calls(&calls, ATTEMPTS as usize).await;
        marks.mark("2".into());
        until_calls(&calls, ATTEMPTS as usize + 1).await;
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), ATTEMPTS as usize + 1);
        assert_eq!(calls.last().unwrap(), &ids(2..=2));
    }

    /// Marks still queued when the service stops are sent before the sender ends (they were
    /// dropped with the process before), and the sender ends once the marks are dropped.
    #[tokio::test]
    async fn marks_queued_at_stop_are_sent_before_the_sender_ends() {
        let calls: Calls = Arc::default();
        let gate = Arc::new(Notify::new());
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let (marks, sender) = RedeemMarks::until(
            gated(&calls, &gate),
            stopped(stopping),
            Duration::from_secs(60),
        );
        let sender = tokio::spawn(sender);
        marks.mark("1".into());
        until_calls(&calls, 1).await;
        for id in ids(2..=9) {
            marks.mark(id);
        }
        stop.send(()).unwrap();
        gate.notify_one();
        drop(marks);
        tokio::time::timeout(Duration::from_secs(30), sender)
            .await
            .expect("the sender ends once the marks are dropped")
            .unwrap();
        assert_eq!(*calls.lock().unwrap(), vec![ids(1..=1), ids(2..=9)]);
    }

    /// A test-result that never answers does not hold the stop beyond the grace period: the
    /// call under way and the marks still queued are given up when it is over.
    #[tokio::test(start_paused = true)]
    async fn a_stop_waits_for_marks_no_longer_than_the_grace_period() {
        let calls: Calls = Arc::default();
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let (marks, sender) = RedeemMarks::until(
            {
                let calls = calls.clone();
                move |ids: Vec<String>| {
                    let calls = calls.clone();
                    async move {
                        calls.lock().unwrap().push(ids);
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                }
            },
            stopped(stopping),
            Duration::from_secs(10),
        );
        let sender = tokio::spawn(sender);
        marks.mark("1".into());
        until_calls(&calls, 1).await;
        marks.mark("2".into());
        let started = tokio::time::Instant::now();
        stop.send(()).unwrap();
        sender.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(*calls.lock().unwrap(), vec![ids(1..=1)]);
        drop(marks);
    }
}
