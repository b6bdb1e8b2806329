//! The API's answers that go on: `ten apply` (one line per finished change), and the logs
//! and events followed as server-sent events; with the queries that narrow them.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;

use crate::body::{self, Body, ndjson_line, sse_event};
use crate::events::{Event, EventFilter, Followed, Follower};
use crate::names::{InstanceKey, ServiceName};
use crate::reconcile::Call;
use crate::runtime::logs::{
    LogQuery, MAX_SEARCH_LIMIT, RING_LINES, Stream, parse_time_bound, unix_millis,
};

use super::error::{CallError, bad_request};
use super::scope::{Filter, Scope, decode_key};
use super::settle::{Goal, settle};
use super::state::ApiState;
use super::types::{ApplyProgress, ApplyRequest};

type Reply = Response<Body>;

impl ApiState {
    /// `ten apply`: executes the plan and streams one line per finished change.
    pub(super) async fn apply(&self, request: ApplyRequest) -> Result<Reply, CallError> {
        let started = self
            .ask(|reply| Call::Apply {
                token: request.token,
                reply,
            })
            .await??;
        let (sender, response) = body::stream("application/x-ndjson");
        let changes = started.changes.len();
        let _ = sender
            .send(ndjson_line(&ApplyProgress::Started {
                token: started.token,
                changes,
            }))
            .await;
        tokio::spawn(async move {
            let (done_sender, mut done) = mpsc::unbounded_channel();
            for change in started.changes {
                let done_sender = done_sender.clone();
                tokio::spawn(async move {
                    let begun = tokio::time::Instant::now();
                    let goal = Goal::of(
                        change.action,
                        change.status.as_ref().map(|s| s.borrow().clone()).as_ref(),
                    );
                    let outcome = settle(change.status, goal, change.timeout).await;
                    let _ = done_sender.send(ApplyProgress::Done {
                        target: change.target,
                        action: change.action.as_str().to_string(),
                        ok: outcome.is_ok(),
                        message: outcome.unwrap_or_else(|error| error),
                        elapsed_ms: begun.elapsed().as_millis() as u64,
                    });
                });
            }
            drop(done_sender);
            let (mut ok, mut failed) = (0, 0);
            while let Some(progress) = done.recv().await {
                if let ApplyProgress::Done { ok: true, .. } = progress {
                    ok += 1;
                } else {
                    failed += 1;
                }
                let _ = sender.send(ndjson_line(&progress)).await;
            }
            let _ = sender
                .send(ndjson_line(&ApplyProgress::Finished { ok, failed }))
                .await;
        });
        Ok(response)
    }

    /// `GET /api/logs`: the last lines of the ring in memory, or, for a time range, a search,
    /// more lines than it holds or an instance it has none of, of the files kept on disk
    /// (read on a blocking thread).
    pub(super) async fn recent_logs(&self, query: LogQuery) -> Result<Reply, CallError> {
        if !query.needs_files(RING_LINES) {
            let lines = self.logs.query(&query);
            // An instance not captured since ten started (stopped before) has its lines on
            // disk only.
            if !lines.is_empty() || query.instance.is_none() {
                return Ok(body::json(hyper::StatusCode::OK, &lines));
            }
        }
        let hub = std::sync::Arc::clone(&self.logs);
        let lines = tokio::task::spawn_blocking(move || hub.search(&query))
            .await
            .map_err(|error| CallError::new(500, format!("the log search failed: {error}")))?;
        Ok(body::json(hyper::StatusCode::OK, &lines))
    }

    /// The events a request asks for (`event_filter`), narrowed to the services of
    /// `?service=NAME` or `?group=NAME` when asked (see `selected`). One instance must be
    /// declared or have events (see `must_have_events`): else nothing would ever come, and
    /// `ten events -f` would wait forever.
    pub(super) async fn event_filter_of(
        &self,
        query: &HashMap<String, String>,
        scope: &Scope,
    ) -> Result<EventFilter, CallError> {
        let selected = self.selected(query).await?;
        let filter = event_filter(&selected.query, scope, selected.services)?;
        if let Some(key) = &filter.instance {
            self.must_have_events(key).await?;
        }
        Ok(filter)
    }

    pub(super) fn follow_logs(&self, query: LogQuery) -> Reply {
        follow(self.logs.subscribe(), "lines", move |line| {
            query.matches(line)
        })
    }

    pub(super) fn follow_events(&self, filter: EventFilter) -> Reply {
        follow(self.events.follow(), "events", move |event| {
            filter.matches(event)
        })
    }
}

/// What a followed stream gives next.
enum Next<T> {
    Item(T),
    /// This many were lost before the next.
    Skipped(u64),
    Closed,
}

/// A stream a client follows: the captured lines (a broadcast), the events (a broadcast that
/// catches up from the event ring). `next` is cancel-safe: dropped before it is ready, it
/// loses nothing.
trait Source: Send + 'static {
    type Item: serde::Serialize + Send;
    fn next(&mut self) -> impl std::future::Future<Output = Next<Self::Item>> + Send;
}

impl<T: serde::Serialize + Clone + Send + 'static> Source for tokio::sync::broadcast::Receiver<T> {
    type Item = T;

    async fn next(&mut self) -> Next<T> {
        use tokio::sync::broadcast::error::RecvError;
        match self.recv().await {
            Ok(item) => Next::Item(item),
            Err(RecvError::Lagged(missed)) => Next::Skipped(missed),
            Err(RecvError::Closed) => Next::Closed,
        }
    }
}

impl Source for Follower {
    type Item = std::sync::Arc<Event>;

    async fn next(&mut self) -> Next<Self::Item> {
        match Follower::next(self).await {
            Followed::Event(event) => Next::Item(event),
            Followed::Skipped(lost) => Next::Skipped(lost),
            Followed::Closed => Next::Closed,
        }
    }
}

/// Streams what `source` gives and `keep` keeps as server-sent events, until the client goes
/// or the source ends. A client that lost some (too slow to follow) is told how many `noun`
/// it missed (an SSE comment) and goes on with the next: a burst never ends its stream.
fn follow<S: Source>(
    mut source: S,
    noun: &'static str,
    keep: impl Fn(&S::Item) -> bool + Send + Sync + 'static,
) -> Reply {
    let (sender, response) = body::stream("text/event-stream");
    tokio::spawn(async move {
        while let Some(chunk) = next_chunk(&mut source, noun, &keep).await {
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
    });
    response
}

/// The most events (or notes) sent as one chunk.
const CHUNK_ITEMS: usize = 64;
/// A chunk takes no more items once it holds this many bytes: the body's queue (of chunks)
/// for a client that stopped reading stays about the size it was at one item a chunk.
const CHUNK_BYTES: usize = 16 * 1024;

/// The next chunk of the stream: the next item `keep` keeps (waited for) and those already
/// waiting after it (up to [`CHUNK_ITEMS`] and about [`CHUNK_BYTES`]), so that a burst is
/// written in a few writes rather than one each; `None` once the source ended with nothing
/// left.
async fn next_chunk<S: Source>(
    source: &mut S,
    noun: &str,
    keep: &impl Fn(&S::Item) -> bool,
) -> Option<Bytes> {
    use futures_util::FutureExt;
    let mut chunk = Vec::new();
    let mut taken = 0;
    let mut next = Some(source.next().await);
    while let Some(item) = next.take() {
        match item {
            Next::Item(item) if keep(&item) => chunk.extend_from_slice(&sse_event(&item)),
            Next::Item(_) => {}
            Next::Skipped(missed) => chunk.extend_from_slice(
                format!(": {missed} {noun} were skipped (too fast to follow)\n\n").as_bytes(),
            ),
            Next::Closed => break,
        }
        taken += 1;
        next = if chunk.is_empty() {
            // Nothing kept yet: wait for the next one.
            Some(source.next().await)
        } else if taken < CHUNK_ITEMS && chunk.len() < CHUNK_BYTES {
            // Cancel-safe (`Source`): one not ready yet is not lost.
            source.next().now_or_never()
        } else {
            None
        };
    }
    (!chunk.is_empty()).then(|| Bytes::from(chunk))
}

/// `notes:alice` (also percent-encoded) as a key.
fn parse_key(text: &str) -> Result<InstanceKey, CallError> {
    decode_key(text).map_err(|error| bad_request(error.to_string()))
}

/// The instance asked for: `?instance=S:ID` (or `all`), or `?process=S&id=ID` (the
/// original's names) when `names` allows them.
fn instance_filter(query: &HashMap<String, String>, names: bool) -> Result<Filter, CallError> {
    let (process, id) = if names {
        (query.get("process"), query.get("id"))
    } else {
        (None, None)
    };
    Ok(match (query.get("instance"), process, id) {
        (Some(all), _, _) if all == "all" => Filter::All,
        (Some(key), _, _) => Filter::One(parse_key(key)?),
        (None, Some(process), Some(id)) => Filter::One(parse_key(&format!("{process}:{id}"))?),
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(bad_request(
                "give both `process` and `id`, or `instance=S:ID`",
            ));
        }
        (None, None, None) => Filter::Unspecified,
    })
}

/// The events asked for: `?instance=S:ID` (or `all`), narrowed to what `scope` may see;
/// `services`: those of `?service=` or `?group=` (see `selected`).
fn event_filter(
    query: &HashMap<String, String>,
    scope: &Scope,
    services: Option<BTreeSet<ServiceName>>,
) -> Result<EventFilter, CallError> {
    Ok(EventFilter {
        instance: scope.narrow(instance_filter(query, false)?)?,
        services,
    })
}

/// `?limit=`, if given: a count of `what` (at most `max`), else a 400 that says so.
pub(super) fn limit_of(
    query: &HashMap<String, String>,
    what: &str,
    max: Option<usize>,
) -> Result<Option<usize>, CallError> {
    let Some(limit) = query.get("limit") else {
        return Ok(None);
    };
    let within = |count: &usize| max.is_none_or(|max| *count <= max);
    match limit.parse::<usize>() {
        Ok(count) if within(&count) => Ok(Some(count)),
        _ => Err(bad_request(match max {
            Some(max) => format!("limit must be a number of {what} up to {max}, not {limit:?}"),
            None => format!("limit must be a number of {what}, not {limit:?}"),
        })),
    }
}

/// `?process=S&id=ID` or `?instance=S:ID`, `level`, `search`, `limit` (at most
/// [`MAX_SEARCH_LIMIT`]), `since` and `until` (see [`parse_time_bound`]); narrowed to what
/// `scope` may see. `services`: those of `?service=` or `?group=` (see `selected`).
pub(super) fn log_query(
    query: &HashMap<String, String>,
    scope: &Scope,
    services: Option<BTreeSet<ServiceName>>,
) -> Result<LogQuery, CallError> {
    let instance = scope.narrow(instance_filter(query, true)?)?;
    let stream = match query.get("level") {
        Some(level) => Some(Stream::parse(level).ok_or_else(|| {
            bad_request(format!("level must be stdout or stderr, not {level:?}"))
        })?),
        None => None,
    };
    let limit = limit_of(query, "lines", Some(MAX_SEARCH_LIMIT)).map_err(|error| {
        error.hint("narrow the lines with `since`, `until` or `search` instead")
    })?;
    let now = unix_millis();
    let bound = |name: &str| -> Result<Option<u64>, CallError> {
        query
            .get(name)
            .filter(|text| !text.is_empty())
            .map(|text| {
                parse_time_bound(text, now).map_err(|error| bad_request(format!("{name}: {error}")))
            })
            .transpose()
    };
    let (since_ms, until_ms) = (bound("since")?, bound("until")?);
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since >= until
    {
        return Err(bad_request(format!(
            "since ({since}) is not before until ({until}): no line can match"
        ))
        .hint("give a `since` earlier than `until`"));
    }
    Ok(LogQuery {
        instance,
        services,
        stream,
        search: query
            .get("search")
            .filter(|search| !search.is_empty())
            .cloned(),
        limit,
        since_ms,
        until_ms,
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A broadcast of numbers, as the followed streams are.
    fn numbers() -> (
        tokio::sync::broadcast::Sender<u32>,
        tokio::sync::broadcast::Receiver<u32>,
    ) {
        tokio::sync::broadcast::channel(4)
    }

    /// What is already waiting goes out as one chunk, in order and without what `keep` drops
    /// (at most `CHUNK_ITEMS` at a time); a chunk waits for its first item; a lag is a note in
    /// its place; an ended source ends the stream after what was left.
    #[tokio::test]
    async fn what_is_waiting_goes_out_as_one_chunk() {
        let odd = |n: &u32| n % 2 == 1;
        let text = |chunk: Option<Bytes>| String::from_utf8(chunk.unwrap().to_vec()).unwrap();
        let (sender, mut receiver) = numbers();
        for n in 1..=4 {
            sender.send(n).unwrap();
        }
        assert_eq!(
            text(next_chunk(&mut receiver, "numbers", &odd).await),
            "data: 1\n\ndata: 3\n\n"
        );
        // Nothing waiting: the next chunk waits for the next item kept.
        let later = tokio::spawn(async move {
            let chunk = next_chunk(&mut receiver, "numbers", &odd).await;
            (chunk, receiver)
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!later.is_finished());
        sender.send(6).unwrap();
        sender.send(7).unwrap();
        let (chunk, mut receiver) = later.await.unwrap();
        assert_eq!(text(chunk), "data: 7\n\n");
        // Lagged: told how many were lost, then the rest.
        for n in 10..20 {
            sender.send(n).unwrap();
        }
        assert_eq!(
            text(next_chunk(&mut receiver, "numbers", &|_: &u32| true).await),
            ": 6 numbers were skipped (too fast to follow)\n\ndata: 16\n\ndata: 17\n\ndata: 18\n\ndata: 19\n\n"
        );
        // At most about CHUNK_BYTES at a time.
        let (sender, mut receiver) = tokio::sync::broadcast::channel(8);
        let long = "x".repeat(CHUNK_BYTES / 2);
        for _ in 0..4 {
            sender.send(long.clone()).unwrap();
        }
        let keep_all = |_: &String| true;
        let chunk = next_chunk(&mut receiver, "lines", &keep_all).await.unwrap();
        assert_eq!(chunk.len(), 2 * sse_event(&long).len());
        // At most CHUNK_ITEMS at a time.
        let (sender, mut receiver) = tokio::sync::broadcast::channel(2 * CHUNK_ITEMS);
        for n in 0..CHUNK_ITEMS as u32 + 1 {
            sender.send(n).unwrap();
        }
        let all = |_: &u32| true;
        let first = text(next_chunk(&mut receiver, "numbers", &all).await);
        assert_eq!(first.matches("data: ").count(), CHUNK_ITEMS);
        sender.send(1000).unwrap();
        drop(sender);
        assert_eq!(
            text(next_chunk(&mut receiver, "numbers", &all).await),
            format!("data: {CHUNK_ITEMS}\n\ndata: 1000\n\n")
        );
        assert_eq!(next_chunk(&mut receiver, "numbers", &all).await, None);
    }

    /// A limit is a count (at most `max`, when there is one); anything else is a 400 that
    /// says what it must be.
    #[test]
    fn a_limit_is_a_count_or_a_bad_request() {
        let query = |limit: &str| HashMap::from([("limit".to_string(), limit.to_string())]);
        assert_eq!(limit_of(&HashMap::new(), "events", None).unwrap(), None);
        assert_eq!(limit_of(&query("0"), "events", None).unwrap(), Some(0));
        assert_eq!(
            limit_of(&query("100000"), "lines", Some(100_000)).unwrap(),
            Some(100_000)
        );
        for (limit, max, said) in [
            ("abc", None, "limit must be a number of events, not \"abc\""),
            ("-1", None, "limit must be a number of events, not \"-1\""),
            ("", None, "limit must be a number of events, not \"\""),
            (
                "100001",
                Some(100_000),
                "limit must be a number of events up to 100000, not \"100001\"",
            ),
        ] {
            let error = limit_of(&query(limit), "events", max).unwrap_err();
            assert_eq!((error.status, error.message.as_str()), (400, said));
        }
    }

    /// A burst larger than the channel holds while nobody reads: the follower is told how many
    /// it missed and gets the rest. (Before, the stream of events ended at the first lag.)
    #[tokio::test]
    async fn a_follower_that_lags_is_told_what_it_missed_and_goes_on() {
        let (sender, receiver) = tokio::sync::broadcast::channel::<u32>(4);
        for number in 0..10 {
            sender.send(number).unwrap();
        }
        drop(sender);
        let response = follow(receiver, "events", |number| number % 2 == 1);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            ": 6 events were skipped (too fast to follow)\n\ndata: 7\n\ndata: 9\n\n"
        );
    }
}
