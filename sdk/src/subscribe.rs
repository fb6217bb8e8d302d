//! Subscriptions: a ledger's blocks, events or one topic as an async stream that
//! survives disconnects.
//!
//! The stream reads the gateway's Server-Sent Events (`/api/v1/ledgers/{id}/stream/…`).
//! When the connection breaks (node restart, network), it reconnects with backoff from
//! the position after the last message it delivered, and drops anything at or below
//! that position: the caller sees every message once, in order, whatever happens to the
//! connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::client::{Client, ClientError};
use crate::wire::{EventFilter, Problem, StreamMessage};

/// What to follow.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// Committed blocks (position: height).
    Blocks,
    /// Events passing a filter (position: ledger-wide event number).
    Events(EventFilter),
    /// One topic (position: sequence).
    Topic {
        /// Event account.
        account: String,
        /// Topic.
        topic: String,
    },
    /// The system events (`$system`: recalls, …) of every ledger on the node; resumed
    /// by the cursor the gateway sends as each message's SSE id (the `ledger` argument
    /// of `subscribe` is ignored; `from` too — a new subscription starts at what
    /// commits next).
    System,
}

/// Backoff between reconnects: doubles from `RECONNECT_MIN` to `RECONNECT_MAX`.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest wait between reconnects.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The node-wide system stream.
const SYSTEM_PATH: &str = "/api/v1/stream/system";

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct State {
    client: Client,
    path: String,
    filter: Vec<(String, String)>,
    /// The position of the next message wanted (`None`: not known yet, "what commits
    /// next").
    next: Option<u64>,
    body: Option<Body>,
    /// The system stream's cursor: the last SSE id (or the start event's cursor).
    cursor: Option<String>,
    system: bool,
    /// The system stream's next position per ledger (hex id), for de-duplication.
    system_next: std::collections::HashMap<String, u64>,
    buffer: Vec<u8>,
    backoff: Duration,
    ready: VecDeque<StreamMessage>,
    done: bool,
}

/// One parsed SSE event.
struct SseEvent {
    event: String,
    data: String,
    id: Option<String>,
}

/// Takes complete events (ended by a blank line) off the front of `buffer`.
fn parse_events(buffer: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let text = String::from_utf8_lossy(buffer);
        let Some((end, skip)) = ["\n\n", "\r\n\r\n"]
            .iter()
            .filter_map(|sep| text.find(sep).map(|at| (at, sep.len())))
            .min()
        else {
            return events;
        };
        let block = text[..end].to_owned();
        let consumed = text[..end + skip].len();
        drop(text);
        buffer.drain(..consumed);
        let (mut event, mut data, mut id) = (String::from("message"), Vec::new(), None);
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = value.to_owned(),
                "data" => data.push(value.to_owned()),
                "id" => id = Some(value.to_owned()),
                _ => {}
            }
        }
        if !data.is_empty() {
            events.push(SseEvent { event, data: data.join("\n"), id });
        }
    }
}

impl State {
    async fn connect(&mut self) -> Result<(), ClientError> {
        let mut query = self.filter.clone();
        if let Some(next) = self.next.filter(|_| !self.system) {
            query.push(("from".into(), next.to_string()));
        }
        let url = format!("{}{}", self.client.base_url(), self.path);
        let mut request =
            self.client.http().get(url).query(&query).header("accept", "text/event-stream");
        if let Some(cursor) = self.cursor.as_ref().filter(|_| self.system) {
            request = request.header("last-event-id", cursor);
        }
        let response = request.send().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(ClientError::Problem(serde_json::from_slice(&body).unwrap_or(Problem {
                status: status.as_u16(),
                code: format!("HTTP_{}", status.as_u16()),
                title: status.canonical_reason().unwrap_or("error").to_owned(),
                detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
            })));
        }
        self.body = Some(Box::pin(response.bytes_stream()));
        self.buffer.clear();
        Ok(())
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
    }

    fn take(&mut self, event: SseEvent) -> Result<(), ClientError> {
        match event.event.as_str() {
            "start" if self.system => {
                if self.cursor.is_none() {
                    let start: serde_json::Value = serde_json::from_str(&event.data)
                        .map_err(|e| ClientError::Decode(format!("start event: {e}")))?;
                    self.cursor = start.get("from").and_then(|v| v.as_str()).map(str::to_owned);
                }
            }
            "start" => {
                if self.next.is_none() {
                    let start: serde_json::Value = serde_json::from_str(&event.data)
                        .map_err(|e| ClientError::Decode(format!("start event: {e}")))?;
                    self.next = start.get("from").and_then(serde_json::Value::as_u64);
                }
            }
            "error" => {
                let problem: Problem = serde_json::from_str(&event.data)
                    .map_err(|e| ClientError::Decode(format!("error event: {e}")))?;
                return Err(ClientError::Problem(problem));
            }
            _ => {
                let message: StreamMessage = serde_json::from_str(&event.data)
                    .map_err(|e| ClientError::Decode(format!("stream message: {e}")))?;
                if self.system {
                    let next = self.system_next.entry(message.ledger.clone()).or_insert(0);
                    if message.position >= *next {
                        *next = message.position + 1;
                        self.ready.push_back(message);
                    }
                    if event.id.is_some() {
                        self.cursor = event.id;
                    }
                } else if self.next.is_none_or(|next| message.position >= next) {
                    self.next = Some(message.position + 1);
                    self.ready.push_back(message);
                }
            }
        }
        Ok(())
    }

    /// The next message, reconnecting as long as it takes; `Err` only for an answer
    /// that retrying cannot change (unknown ledger, bad parameter).
    async fn next_message(&mut self) -> Option<Result<StreamMessage, ClientError>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(Ok(message));
            }
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                match self.connect().await {
                    Ok(()) => {}
                    Err(ClientError::Problem(problem)) if (400..500).contains(&problem.status) => {
                        self.done = true;
                        return Some(Err(ClientError::Problem(problem)));
                    }
                    Err(_) => self.pause().await,
                }
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => {
                    self.buffer.extend_from_slice(&chunk);
                    let mut broken = false;
                    for event in parse_events(&mut self.buffer) {
                        if self.take(event).is_err() {
                            // A stream ended by the node (shutdown) or garbled: resume.
                            broken = true;
                            break;
                        }
                    }
                    if broken {
                        self.body = None;
                        self.pause().await;
                    } else if !self.ready.is_empty() {
                        self.backoff = RECONNECT_MIN;
                    }
                }
                Some(Err(_)) | None => {
                    self.body = None;
                    self.pause().await;
                }
            }
        }
    }
}

impl Client {
    /// Follows `subscription` on `ledger` (id in hex, or name) from position `from`
    /// (`None`: what commits next). The stream never ends by itself: it reconnects
    /// after any break and resumes after the last message delivered. It yields an
    /// error, and ends, only when the gateway refuses the subscription (4xx).
    pub fn subscribe(
        &self,
        ledger: &str,
        subscription: Subscription,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<StreamMessage, ClientError>> + Send + 'static {
        let base = format!("/api/v1/ledgers/{}/stream", segment_str(ledger));
        let (path, filter) = match subscription {
            Subscription::Blocks => (format!("{base}/blocks"), Vec::new()),
            Subscription::Events(filter) => {
                let pairs = [
                    ("account", filter.account),
                    ("topic", filter.topic),
                    ("type", filter.event_type),
                    ("bizStep", filter.biz_step),
                    ("epc", filter.epc),
                ];
                let filter =
                    pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect();
                (format!("{base}/events"), filter)
            }
            Subscription::Topic { account, topic } => (
                format!("{base}/events/{}/{}", segment_str(&account), segment_str(&topic)),
                Vec::new(),
            ),
            Subscription::System => (SYSTEM_PATH.to_owned(), Vec::new()),
        };
        let system = path == SYSTEM_PATH;
        let state = State {
            client: self.clone(),
            path,
            filter,
            next: from,
            body: None,
            cursor: None,
            system,
            system_next: Default::default(),
            buffer: Vec::new(),
            backoff: RECONNECT_MIN,
            ready: VecDeque::new(),
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next_message().await?;
            Some((item, state))
        })
    }
}

fn segment_str(text: &str) -> String {
    crate::client::segment(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_parsed_across_chunks() {
        let mut buffer = b"event: start\ndata: {\"from\":3}\n\nid: 3\nevent: block\nda".to_vec();
        let events = parse_events(&mut buffer);
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].event.as_str(), events[0].data.as_str()), ("start", "{\"from\":3}"));
        buffer.extend_from_slice(b"ta: {}\n\n: keep-alive\n\n");
        let events = parse_events(&mut buffer);
        assert_eq!(events.len(), 1, "the comment is not an event");
        assert_eq!(events[0].event, "block");
        assert!(buffer.is_empty());
    }
}
