//! Events and subscriptions: event pages, and live streams of a ledger's blocks, its
//! events (with EPCIS-style filters) or one topic, over Server-Sent Events or WebSocket.
//!
//! Every stream message carries its position (block height, event number, or topic
//! sequence). A stream starts at `from` (default: what commits next) or, for SSE, after
//! the `Last-Event-ID` a reconnecting client sends, so a client that reconnects with its
//! last position gets everything after it: nothing lost, nothing duplicated. Each stream
//! is an `actors::follow::Follower`: a cursor that reads committed data a page at a
//! time, never a queue, so a slow client holds one page and cannot stall commits.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actors::LedgerHandle;
use actors::follow::{self, FollowError, Follower};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use prometheus::{IntCounterVec, IntGaugeVec};
use sdk::wire::{
    BlockMessage, BlockTxView, EventFilter, EventPage, EventView, Problem, StreamItem,
    StreamMessage,
};
use serde::Deserialize;

use crate::api::{block_view, limit_param, query, read};
use crate::{ApiError, AppState};

/// Messages read per page by a stream (its memory bound, with the socket buffer).
pub const STREAM_PAGE: usize = 256;

static SUBSCRIBERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "polyledger_subscribers",
        "Open subscription streams, by ledger and stream (blocks, events, topic) and transport.",
        &["ledger", "stream", "transport"]
    )
    .expect("metric registers once")
});

static DELIVERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "polyledger_stream_messages_total",
        "Messages sent to subscribers, by ledger and stream.",
        &["ledger", "stream"]
    )
    .expect("metric registers once")
});

/// Creates every stream series of `ledgers` at 0, so dashboards and alerts see them
/// before the first subscriber (and `rate()` sees the first message).
pub fn register_metrics(ledgers: &[LedgerHandle]) {
    for handle in ledgers {
        for stream in ["blocks", "events", "topic"] {
            for transport in ["sse", "websocket"] {
                SUBSCRIBERS.with_label_values(&[handle.name(), stream, transport]);
            }
            DELIVERED.with_label_values(&[handle.name(), stream]);
        }
    }
    SUBSCRIBERS.with_label_values(&["*", "system", "sse"]);
    DELIVERED.with_label_values(&["*", "system"]);
}

/// Counts an open stream while it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn new(ledger: &str, stream: &str, transport: &str) -> Self {
        let gauge = SUBSCRIBERS.with_label_values(&[ledger, stream, transport]);
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What a stream follows.
#[derive(Debug, Clone)]
pub enum Spec {
    /// Committed blocks; position = height.
    Blocks,
    /// Events passing a filter; position = ledger-wide event number.
    Events(EventFilter),
    /// One topic; position = sequence in the topic.
    Topic {
        /// Event account.
        account: String,
        /// Topic.
        topic: String,
    },
}

impl Spec {
    fn name(&self) -> &'static str {
        match self {
            Spec::Blocks => "blocks",
            Spec::Events(_) => "events",
            Spec::Topic { .. } => "topic",
        }
    }

    /// The position of whatever commits next (the default start).
    async fn now(&self, handle: &LedgerHandle) -> Result<u64, ApiError> {
        match self {
            Spec::Blocks => Ok(handle.head().height + 1),
            Spec::Events(_) => read(handle, |ledger| Ok(ledger.event_count()?)).await,
            Spec::Topic { account, topic } => {
                let (account, topic) = (account.clone(), topic.clone());
                read(handle, move |ledger| Ok(ledger.topic_length(&account, &topic)?)).await
            }
        }
    }
}

/// Waits for the next messages of `spec` at `follower`'s position.
pub async fn next_messages(
    follower: &mut Follower,
    spec: &Spec,
    ledger: &str,
) -> Result<Vec<StreamMessage>, FollowError> {
    let message = |position, item| StreamMessage { ledger: ledger.to_owned(), position, item };
    let messages: Vec<StreamMessage> = match spec {
        Spec::Blocks => follower
            .next(follow::blocks(STREAM_PAGE))
            .await?
            .into_iter()
            .map(|(position, block)| {
                let transactions = block
                    .transactions
                    .iter()
                    .enumerate()
                    .map(|(index, (hash, result))| BlockTxView {
                        index: index as u32,
                        hash: hex::encode(hash),
                        result: result.name().into(),
                    })
                    .collect();
                let block = BlockMessage { block: block_view(&block), transactions };
                message(position, StreamItem::Block(block))
            })
            .collect(),
        Spec::Events(filter) => {
            let filter = filter.clone();
            let keep = move |e: &engine::ledger::EventRecord| {
                filter.matches(&e.account, &e.topic, &e.payload)
            };
            follower
                .next(follow::events(STREAM_PAGE, keep))
                .await?
                .into_iter()
                .map(|(position, event)| {
                    message(position, StreamItem::Event(EventView::new(&event)))
                })
                .collect()
        }
        Spec::Topic { account, topic } => follower
            .next(follow::topic(account.clone(), topic.clone(), STREAM_PAGE))
            .await?
            .into_iter()
            .map(|(position, event)| message(position, StreamItem::Event(EventView::new(&event))))
            .collect(),
    };
    Ok(messages)
}

/// Query of the event listing and the event stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    /// First position: event number (default: 0 for a page, what commits next for a
    /// stream).
    from: Option<u64>,
    /// Page size (1..=1000, default 100; pages only).
    limit: Option<u32>,
    /// Only this event account.
    account: Option<String>,
    /// Only this topic.
    topic: Option<String>,
    /// Only payloads whose `type` is this (EPCIS event type).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only payloads whose `bizStep` is this (with or without the CBV prefix).
    #[serde(rename = "bizStep")]
    #[param(rename = "bizStep")]
    biz_step: Option<String>,
    /// Only payloads naming this EPC.
    epc: Option<String>,
}

impl EventQuery {
    fn filter(&self) -> EventFilter {
        EventFilter {
            account: self.account.clone(),
            topic: self.topic.clone(),
            event_type: self.event_type.clone(),
            biz_step: self.biz_step.clone(),
            epc: self.epc.clone(),
        }
    }
}

/// Query of a topic listing or stream, and of the block stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PositionQuery {
    /// First position (default: 0 for a page, what commits next for a stream).
    from: Option<u64>,
    /// Page size (1..=1000, default 100; pages only).
    limit: Option<u32>,
}

/// A page of the ledger's events in commit order, optionally filtered.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/events", tag = "events",
    params(("id" = String, Path, description = "ledger id (hex) or name"), EventQuery),
    responses((status = 200, body = EventPage),
        (status = 400, description = "BAD_PARAMETER", body = Problem),
        (status = 404, description = "UNKNOWN_LEDGER", body = Problem)))]
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    event_query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let handle = &state.ledger(&id)?;
    let event_query = query(event_query)?;
    let limit = limit_param(event_query.limit)?;
    let filter = event_query.filter();
    let from = event_query.from.unwrap_or(0);
    let keep =
        move |e: &engine::ledger::EventRecord| filter.matches(&e.account, &e.topic, &e.payload);
    let page = read(handle, move |ledger| Ok(follow::events(limit, keep)(ledger, from)?)).await?;
    let events = page.items.iter().map(|(_, event)| EventView::new(event)).collect();
    Ok(Json(EventPage { events, next: page.next }))
}

/// A page of one topic's events, by sequence.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/events/{account}/{topic}", tag = "events",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("account" = String, Path, description = "event account"),
        ("topic" = String, Path, description = "topic"), PositionQuery),
    responses((status = 200, body = EventPage),
        (status = 400, description = "BAD_PARAMETER", body = Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_ACCOUNT", body = Problem)))]
pub async fn list_topic(
    State(state): State<Arc<AppState>>,
    Path((id, account, topic)): Path<(String, String, String)>,
    position: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let handle = &state.ledger(&id)?;
    let position = query(position)?;
    let limit = limit_param(position.limit)?;
    let from = position.from.unwrap_or(0);
    let name = account.clone();
    let page = read(handle, move |ledger| {
        if ledger.event_account_owner(&name)?.is_none() {
            return Err(ApiError::not_found("UNKNOWN_ACCOUNT", format!("no event account {name}")));
        }
        Ok(follow::topic(name, topic, limit)(ledger, from)?)
    })
    .await?;
    let events = page.items.iter().map(|(_, event)| EventView::new(event)).collect();
    Ok(Json(EventPage { events, next: page.next }))
}

/// Where a stream starts: after `Last-Event-ID` (SSE reconnect), else `from`, else what
/// commits next.
async fn start(
    handle: &LedgerHandle,
    spec: &Spec,
    from: Option<u64>,
    headers: &HeaderMap,
) -> Result<u64, ApiError> {
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_parameter("Last-Event-ID", "not a position"))?;
        return Ok(last.saturating_add(1));
    }
    match from {
        Some(from) => Ok(from),
        None => spec.now(handle).await,
    }
}

fn sse(handle: LedgerHandle, spec: Spec, from: u64) -> Response {
    let ledger = hex::encode(handle.id().0);
    let open = Open::new(handle.name(), spec.name(), "sse");
    let delivered = DELIVERED.with_label_values(&[handle.name(), spec.name()]);
    let follower = Follower::new(handle, from);
    let state = (follower, std::collections::VecDeque::new(), false, open);
    // First, where the stream starts (`from` resolved): a client that asked for "what
    // commits next" learns the position to resume from even before any message.
    let start = Event::default().event("start").data(format!("{{\"from\":{from}}}"));
    let start = futures::stream::once(async move { Ok::<_, Infallible>(start) });
    let stream = futures::stream::unfold(state, move |(mut follower, mut queue, done, open)| {
        let (spec, ledger, delivered) = (spec.clone(), ledger.clone(), delivered.clone());
        async move {
            if done {
                return None;
            }
            if queue.is_empty() {
                match next_messages(&mut follower, &spec, &ledger).await {
                    Ok(messages) => queue.extend(messages),
                    Err(error) => {
                        let problem = stream_problem(&error);
                        let event = Event::default().event("error").json_data(problem).ok()?;
                        return Some((Ok(event), (follower, queue, true, open)));
                    }
                }
            }
            let message: StreamMessage = queue.pop_front()?;
            delivered.inc();
            let event = Event::default()
                .id(message.position.to_string())
                .event(match message.item {
                    StreamItem::Block(_) => "block",
                    StreamItem::Event(_) => "event",
                })
                .json_data(&message)
                .ok()?;
            Some((Ok::<_, Infallible>(event), (follower, queue, false, open)))
        }
    });
    sse_response(futures::StreamExt::chain(start, stream))
}

fn sse_response(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn stream_problem(error: &FollowError) -> Problem {
    let (status, code) = match error {
        FollowError::Stopped => (503, "STOPPED"),
        FollowError::Engine(_) => (500, "INTERNAL"),
    };
    Problem { status, code: code.into(), title: "stream ended".into(), detail: error.to_string() }
}

async fn websocket(mut socket: WebSocket, handle: LedgerHandle, spec: Spec, from: u64) {
    let ledger = hex::encode(handle.id().0);
    let _open = Open::new(handle.name(), spec.name(), "websocket");
    let delivered = DELIVERED.with_label_values(&[handle.name(), spec.name()]);
    let mut follower = Follower::new(handle, from);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; anything else from the client is
                // ignored, a close or an error ends the stream.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            messages = next_messages(&mut follower, &spec, &ledger) => match messages {
                Ok(messages) => {
                    for message in messages {
                        let Ok(text) = serde_json::to_string(&message) else { return };
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                        delivered.inc();
                    }
                }
                Err(error) => {
                    let text = serde_json::to_string(&stream_problem(&error)).unwrap_or_default();
                    let _ = socket.send(Message::Text(text.into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
        }
    }
}

/// Streams the ledger's committed blocks (SSE). Each message's `id` is the block height.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/stream/blocks", tag = "events",
    params(("id" = String, Path, description = "ledger id (hex) or name"), PositionQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = "text/event-stream of StreamMessage (event `block`)", body = StreamMessage, content_type = "text/event-stream"),
        (status = 404, description = "UNKNOWN_LEDGER", body = Problem)))]
pub async fn stream_blocks(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    position: Result<Query<PositionQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let from = start(&handle, &Spec::Blocks, query(position)?.from, &headers).await?;
    Ok(sse(handle, Spec::Blocks, from))
}

/// Streams the ledger's events in commit order, filtered (SSE). Each message's `id` is
/// the event number.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/stream/events", tag = "events",
    params(("id" = String, Path, description = "ledger id (hex) or name"), EventQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = "text/event-stream of StreamMessage (event `event`)", body = StreamMessage, content_type = "text/event-stream"),
        (status = 404, description = "UNKNOWN_LEDGER", body = Problem)))]
pub async fn stream_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    event_query: Result<Query<EventQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let event_query = query(event_query)?;
    let spec = Spec::Events(event_query.filter());
    let from = start(&handle, &spec, event_query.from, &headers).await?;
    Ok(sse(handle, spec, from))
}

/// Streams one topic's events (SSE). Each message's `id` is the topic sequence.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/stream/events/{account}/{topic}", tag = "events",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("account" = String, Path, description = "event account"),
        ("topic" = String, Path, description = "topic"), PositionQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = "text/event-stream of StreamMessage (event `event`)", body = StreamMessage, content_type = "text/event-stream"),
        (status = 404, description = "UNKNOWN_LEDGER", body = Problem)))]
pub async fn stream_topic(
    State(state): State<Arc<AppState>>,
    Path((id, account, topic)): Path<(String, String, String)>,
    position: Result<Query<PositionQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let spec = Spec::Topic { account, topic };
    let from = start(&handle, &spec, query(position)?.from, &headers).await?;
    Ok(sse(handle, spec, from))
}

/// The same three streams over WebSocket: each text frame is one `StreamMessage`.
pub async fn ws_blocks(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    position: Result<Query<PositionQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let from = start(&handle, &Spec::Blocks, query(position)?.from, &HeaderMap::new()).await?;
    Ok(upgrade.on_upgrade(move |socket| websocket(socket, handle, Spec::Blocks, from)))
}

/// WebSocket form of `stream_events`.
pub async fn ws_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    event_query: Result<Query<EventQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let event_query = query(event_query)?;
    let spec = Spec::Events(event_query.filter());
    let from = start(&handle, &spec, event_query.from, &HeaderMap::new()).await?;
    Ok(upgrade.on_upgrade(move |socket| websocket(socket, handle, spec, from)))
}

/// WebSocket form of `stream_topic`.
pub async fn ws_topic(
    State(state): State<Arc<AppState>>,
    Path((id, account, topic)): Path<(String, String, String)>,
    position: Result<Query<PositionQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let handle = state.ledger(&id)?;
    let spec = Spec::Topic { account, topic };
    let from = start(&handle, &spec, query(position)?.from, &HeaderMap::new()).await?;
    Ok(upgrade.on_upgrade(move |socket| websocket(socket, handle, spec, from)))
}

/// A position in the system stream: for each ledger (by name), the event number it
/// resumes at. Written `name=N,name=N,…` (the SSE `id` of every message).
fn parse_cursor(
    state: &AppState,
    text: &str,
) -> Result<std::collections::BTreeMap<String, u64>, ApiError> {
    let mut cursor = std::collections::BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (name, position) = part.split_once('=').ok_or_else(|| {
            ApiError::bad_parameter("cursor", format!("`{part}` is not ledger=position"))
        })?;
        let position = position
            .parse::<u64>()
            .map_err(|_| ApiError::bad_parameter("cursor", format!("`{part}`: not a position")))?;
        let handle = &state.ledger(name)?;
        cursor.insert(handle.name().to_owned(), position);
    }
    Ok(cursor)
}

fn format_cursor(cursor: &std::collections::BTreeMap<String, u64>) -> String {
    cursor.iter().map(|(name, position)| format!("{name}={position}")).collect::<Vec<_>>().join(",")
}

/// Query of the system stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SystemQuery {
    /// Where to start: `ledger=position,…` (event numbers; a ledger left out starts at
    /// what commits next).
    from: Option<String>,
}

/// Streams the system events (`$system`: recalls, …) of every ledger on this node
/// (SSE). Each message's `id` is the whole cursor (`ledger=next position,…`), so
/// `Last-Event-ID` resumes every ledger at once.
#[utoipa::path(get, path = "/api/v1/stream/system", tag = "events",
    params(SystemQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume at this cursor")),
    responses((status = 200, description = "text/event-stream of StreamMessage (event `event`), ids are cursors", body = StreamMessage, content_type = "text/event-stream"),
        (status = 400, description = "BAD_PARAMETER", body = Problem),
        (status = 404, description = "UNKNOWN_LEDGER (named in the cursor)", body = Problem)))]
pub async fn stream_system(
    State(state): State<Arc<AppState>>,
    system_query: Result<Query<SystemQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let system_query = query(system_query)?;
    let given = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_parameter("Last-Event-ID", "not text"))?
                .to_owned(),
        ),
        None => system_query.from,
    };
    let mut cursor = match &given {
        Some(text) => parse_cursor(&state, text)?,
        None => Default::default(),
    };
    let filter = EventFilter {
        account: Some(engine::ledger::SYSTEM_ACCOUNT.to_owned()),
        ..EventFilter::default()
    };
    let mut streams = Vec::new();
    for handle in state.ledgers().iter() {
        let spec = Spec::Events(filter.clone());
        let from = match cursor.get(handle.name()) {
            Some(from) => *from,
            None => spec.now(handle).await?,
        };
        cursor.insert(handle.name().to_owned(), from);
        let name = handle.name().to_owned();
        let ledger = hex::encode(handle.id().0);
        let follower = Follower::new(handle.clone(), from);
        let stream = futures::stream::unfold(
            (follower, spec, ledger, name),
            |(mut follower, spec, ledger, name)| async move {
                let result = next_messages(&mut follower, &spec, &ledger).await;
                let items: Vec<(String, Result<StreamMessage, Problem>)> = match result {
                    Ok(messages) => messages.into_iter().map(|m| (name.clone(), Ok(m))).collect(),
                    Err(error) => vec![(name.clone(), Err(stream_problem(&error)))],
                };
                // After an error the merged stream ends (the system stream stops at the
                // first `error` event it sends).
                Some((futures::stream::iter(items), (follower, spec, ledger, name)))
            },
        );
        streams.push(Box::pin(futures::StreamExt::flatten(stream)));
    }
    let open = Open::new("*", "system", "sse");
    let delivered = DELIVERED.with_label_values(&["*", "system"]);
    let start = Event::default()
        .event("start")
        .data(serde_json::json!({ "from": format_cursor(&cursor) }).to_string());
    let merged = futures::stream::select_all(streams);
    let events = futures::stream::unfold(
        (merged, cursor, false, open),
        move |(mut merged, mut cursor, done, open)| {
            let delivered = delivered.clone();
            async move {
                if done {
                    return None;
                }
                let (name, item) = futures::StreamExt::next(&mut merged).await?;
                match item {
                    Ok(message) => {
                        cursor.insert(name, message.position + 1);
                        delivered.inc();
                        let event = Event::default()
                            .id(format_cursor(&cursor))
                            .event("event")
                            .json_data(&message)
                            .ok()?;
                        Some((Ok::<_, Infallible>(event), (merged, cursor, false, open)))
                    }
                    Err(problem) => {
                        let event = Event::default().event("error").json_data(problem).ok()?;
                        Some((Ok(event), (merged, cursor, true, open)))
                    }
                }
            }
        },
    );
    let start = futures::stream::once(async move { Ok::<_, Infallible>(start) });
    Ok(sse_response(futures::StreamExt::chain(start, events)))
}
