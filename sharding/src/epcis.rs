//! EPCIS 2.0 capture documents (JSON / JSON-LD): validation and the trace codes each
//! event names. Pure: the gateway's capture endpoint and an offline client run the same
//! checks.
//!
//! A document is accepted whole or not at all: [`validate_document`] returns every
//! problem found, each with a JSON pointer (`/epcisBody/eventList/3/eventTime`) and the
//! event's index, so a supplier can fix them in one pass.
//!
//! # Rules (EPCIS 2.0 §7–§9, CBV 2.0, the JSON binding)
//! - The document: `type` `EPCISDocument` (a query document is not a capture),
//!   `schemaVersion` `2.0` (or `2`), `creationDate` an RFC 3339 time, and
//!   `epcisBody.eventList` a non-empty array.
//! - Every event: `type` one of `ObjectEvent`, `AggregationEvent`, `TransactionEvent`,
//!   `TransformationEvent`, `AssociationEvent`; `eventTime` an RFC 3339 time with an
//!   explicit offset (`Z` or `±HH:MM`); `eventTimeZoneOffset` `±HH:MM` (hours ≤ 14,
//!   minutes < 60); `action` (`ADD`, `OBSERVE`, `DELETE`) on every type but
//!   `TransformationEvent`, which must not have one; `parentID` on aggregations (unless
//!   `OBSERVE`) and associations; a non-empty `bizTransactionList` on transaction
//!   events; at least one input or output on transformations.
//! - Identifiers — `epcList`, `childEPCs`, `inputEPCList`, `outputEPCList`, `parentID`
//!   and every `epcClass` of a quantity list — are GS1 identifiers as EPC URNs or Digital
//!   Links, check digits verified ([`crate::gs1`]); `readPoint.id` and `bizLocation.id`
//!   are GS1 locations (SGLN) when written as GS1 identifiers, else absolute URIs (such
//!   as `geo:`). Quantities are non-negative numbers.
//! - Within a document no two events have the same [event hash](event_hash).

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::gs1::Identifier;

/// One problem of a capture document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    /// Index of the event in `epcisBody.eventList`; `None` for the document itself.
    pub event: Option<usize>,
    /// JSON pointer (RFC 6901) to the offending member.
    pub pointer: String,
    /// What is wrong, for a person.
    pub reason: String,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.reason)
    }
}

/// The five EPCIS 2.0 event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Objects observed, added or deleted.
    Object,
    /// Children aggregated into (or out of) a parent: cases on a pallet.
    Aggregation,
    /// Objects associated with a business transaction (order, invoice).
    Transaction,
    /// Inputs consumed, outputs produced: processing.
    Transformation,
    /// Assets associated with a parent (sensors on a container).
    Association,
}

impl EventType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ObjectEvent" => EventType::Object,
            "AggregationEvent" => EventType::Aggregation,
            "TransactionEvent" => EventType::Transaction,
            "TransformationEvent" => EventType::Transformation,
            "AssociationEvent" => EventType::Association,
            _ => return None,
        })
    }

    /// The JSON `type`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Object => "ObjectEvent",
            EventType::Aggregation => "AggregationEvent",
            EventType::Transaction => "TransactionEvent",
            EventType::Transformation => "TransformationEvent",
            EventType::Association => "AssociationEvent",
        }
    }
}

/// A validated event.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    /// Position in the document's event list.
    pub index: usize,
    /// Its type.
    pub event_type: EventType,
    /// `eventTime` in milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
    /// `action`, absent on transformations.
    pub action: Option<String>,
    /// `bizStep`, as given.
    pub biz_step: Option<String>,
    /// Every trace code the event names (canonical form, sorted, once each): its EPCs,
    /// parent, children, inputs, outputs and quantity classes.
    pub codes: Vec<String>,
    /// The parent (aggregations and associations), canonical.
    pub parent: Option<String>,
    /// Where it happened: `bizLocation.id`, else `readPoint.id`, canonical when it is a
    /// GS1 location, as given otherwise.
    pub location: Option<String>,
    /// The event as given.
    pub json: Value,
    /// Its [`event_hash`].
    pub hash: [u8; 32],
}

/// An event's identity for duplicate detection: SHA-256 of its canonical JSON (members
/// sorted by name at every level, no whitespace) without `eventID` and `recordTime`
/// (which a re-sent copy may change).
pub fn event_hash(event: &Value) -> [u8; 32] {
    let mut copy = event.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("eventID");
        map.remove("recordTime");
    }
    // serde_json's maps are sorted (no `preserve_order`), so this is canonical.
    Sha256::digest(serde_json::to_vec(&copy).expect("JSON values serialise")).into()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time with an explicit offset
/// (`2019-04-02T15:00:00.000+01:00`, `…Z`); fractions beyond milliseconds are truncated.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("`{text}` is not an RFC 3339 time with an offset (2020-03-04T10:00:30.000+01:00)")
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(bad)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => parse_offset(rest).map_err(|_| bad())?,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// The UTC civil time of `ms` since the Unix epoch: (year, month, day, hour, minute,
/// second) — the inverse of [`parse_time`]'s date arithmetic (H. Hinnant's algorithm).
pub fn civil_time(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (days, seconds) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) / 1000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let seconds = seconds as u32;
    (year, month, day, seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// Minutes east of UTC of `±HH:MM` (hours ≤ 14, minutes < 60).
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a time zone offset ±HH:MM (hours up to 14)");
    let bytes = text.as_bytes();
    if bytes.len() != 6 || !matches!(bytes[0], b'+' | b'-') || bytes[3] != b':' {
        return Err(bad());
    }
    let hours: i64 = text[1..3].parse().map_err(|_| bad())?;
    let minutes: i64 = text[4..6].parse().map_err(|_| bad())?;
    if !text[1..3].bytes().chain(text[4..6].bytes()).all(|b| b.is_ascii_digit())
        || hours > 14
        || minutes > 59
        || (hours == 14 && minutes > 0)
    {
        return Err(bad());
    }
    Ok(if bytes[0] == b'-' { -(hours * 60 + minutes) } else { hours * 60 + minutes })
}

/// `scheme:rest` with an RFC 3986 scheme.
fn is_absolute_uri(text: &str) -> bool {
    match text.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// Escapes a member name for a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

struct Checker {
    errors: Vec<CaptureError>,
}

impl Checker {
    fn fail(&mut self, event: Option<usize>, pointer: String, reason: impl Into<String>) {
        self.errors.push(CaptureError { event, pointer, reason: reason.into() });
    }

    /// A GS1 identifier at `pointer`; its canonical form.
    fn identifier(&mut self, event: usize, pointer: String, value: &Value) -> Option<Identifier> {
        match value.as_str() {
            Some(text) => match Identifier::parse(text) {
                Ok(id) => Some(id),
                Err(error) => {
                    self.fail(Some(event), pointer, error.reason);
                    None
                }
            },
            None => {
                self.fail(Some(event), pointer, "must be a string (an EPC URN or Digital Link)");
                None
            }
        }
    }

    /// The array under `name` and its pointer; `None` when absent (or not an array,
    /// which is recorded).
    fn array<'v>(
        &mut self,
        event: usize,
        base: &str,
        map: &'v Map<String, Value>,
        name: &str,
    ) -> Option<(String, &'v [Value])> {
        let value = map.get(name)?;
        let pointer = format!("{base}/{}", escape(name));
        match value.as_array() {
            Some(items) => Some((pointer, items)),
            None => {
                self.fail(Some(event), pointer, "must be an array");
                None
            }
        }
    }

    /// An array of identifiers under `name`; adds their canonical forms to `codes`.
    fn identifier_list(
        &mut self,
        event: usize,
        base: &str,
        map: &Map<String, Value>,
        name: &str,
        codes: &mut BTreeSet<String>,
    ) -> usize {
        let Some((pointer, items)) = self.array(event, base, map, name) else { return 0 };
        for (i, item) in items.iter().enumerate() {
            if let Some(id) = self.identifier(event, format!("{pointer}/{i}"), item) {
                codes.insert(id.canonical());
            }
        }
        items.len()
    }

    /// A quantity list under `name` (`[{epcClass, quantity?, uom?}]`).
    fn quantity_list(
        &mut self,
        event: usize,
        base: &str,
        map: &Map<String, Value>,
        name: &str,
        codes: &mut BTreeSet<String>,
    ) -> usize {
        let Some((pointer, items)) = self.array(event, base, map, name) else { return 0 };
        for (i, item) in items.iter().enumerate() {
            let at = format!("{pointer}/{i}");
            let Some(element) = item.as_object() else {
                self.fail(Some(event), at, "must be an object with epcClass");
                continue;
            };
            match element.get("epcClass") {
                Some(class) => {
                    if let Some(id) = self.identifier(event, format!("{at}/epcClass"), class) {
                        codes.insert(id.canonical());
                    }
                }
                None => self.fail(Some(event), format!("{at}/epcClass"), "required"),
            }
            if let Some(quantity) = element.get("quantity")
                && !quantity.as_f64().is_some_and(|q| q >= 0.0)
            {
                self.fail(Some(event), format!("{at}/quantity"), "must be a number >= 0");
            }
        }
        items.len()
    }

    /// A read point or business location: a GS1 location (SGLN URN or a Digital Link
    /// with AI 414) when it is written as a GS1 identifier, else any absolute URI (EPCIS
    /// allows, e.g., `geo:` URIs).
    fn location(&mut self, event: usize, base: &str, map: &Map<String, Value>, name: &str) {
        let Some(value) = map.get(name) else { return };
        let pointer = format!("{base}/{name}/id");
        let Some(id) = value.get("id") else {
            return self.fail(Some(event), pointer, "required");
        };
        let Some(text) = id.as_str() else {
            return self.fail(Some(event), pointer, "must be a string (a URI)");
        };
        let gs1 = text.starts_with("urn:epc:")
            || (text.starts_with("http") && Identifier::parse(text).is_ok());
        if gs1 {
            if let Some(parsed) = self.identifier(event, pointer.clone(), id)
                && !matches!(parsed, Identifier::Sgln { .. })
            {
                self.fail(Some(event), pointer, "must be a location (SGLN or Digital Link /414/)");
            }
        } else if !is_absolute_uri(text) {
            self.fail(Some(event), pointer, format!("`{text}` is not an absolute URI"));
        }
    }

    fn event(&mut self, index: usize, value: &Value) -> Option<CapturedEvent> {
        let base = format!("/epcisBody/eventList/{index}");
        let errors_before = self.errors.len();
        let Some(map) = value.as_object() else {
            self.fail(Some(index), base, "an event must be a JSON object");
            return None;
        };
        let event_type = match map.get("type").and_then(Value::as_str) {
            Some(name) => match EventType::parse(name) {
                Some(event_type) => event_type,
                None => {
                    self.fail(
                        Some(index),
                        format!("{base}/type"),
                        format!(
                            "unknown event type `{name}` (ObjectEvent, AggregationEvent, \
                             TransactionEvent, TransformationEvent, AssociationEvent)"
                        ),
                    );
                    return None;
                }
            },
            None => {
                self.fail(Some(index), format!("{base}/type"), "required");
                return None;
            }
        };
        let mut event_time_ms = 0;
        match map.get("eventTime").and_then(Value::as_str) {
            Some(text) => match parse_time(text) {
                Ok(ms) => event_time_ms = ms,
                Err(reason) => self.fail(Some(index), format!("{base}/eventTime"), reason),
            },
            None => self.fail(Some(index), format!("{base}/eventTime"), "required (a string)"),
        }
        match map.get("eventTimeZoneOffset").and_then(Value::as_str) {
            Some(text) => {
                if let Err(reason) = parse_offset(text) {
                    self.fail(Some(index), format!("{base}/eventTimeZoneOffset"), reason);
                }
            }
            None => self.fail(
                Some(index),
                format!("{base}/eventTimeZoneOffset"),
                "required (a string ±HH:MM)",
            ),
        }
        let action = map.get("action").map(|a| a.as_str().unwrap_or("").to_owned());
        match (&action, event_type) {
            (Some(_), EventType::Transformation) => self.fail(
                Some(index),
                format!("{base}/action"),
                "a TransformationEvent has no action",
            ),
            (None, EventType::Transformation) => {}
            (None, _) => self.fail(
                Some(index),
                format!("{base}/action"),
                "required (ADD, OBSERVE or DELETE)",
            ),
            (Some(a), _) if !["ADD", "OBSERVE", "DELETE"].contains(&a.as_str()) => {
                self.fail(
                    Some(index),
                    format!("{base}/action"),
                    format!("`{a}`: ADD, OBSERVE or DELETE"),
                );
            }
            _ => {}
        }
        let mut codes = BTreeSet::new();
        let mut parent = None;
        if let Some(value) = map.get("parentID")
            && let Some(id) = self.identifier(index, format!("{base}/parentID"), value)
        {
            parent = Some(id.canonical());
            codes.insert(id.canonical());
        }
        let needs_parent = match event_type {
            EventType::Aggregation => action.as_deref() != Some("OBSERVE"),
            EventType::Association => true,
            _ => false,
        };
        if needs_parent && !map.contains_key("parentID") {
            self.fail(Some(index), format!("{base}/parentID"), "required");
        }
        self.identifier_list(index, &base, map, "epcList", &mut codes);
        self.identifier_list(index, &base, map, "childEPCs", &mut codes);
        self.quantity_list(index, &base, map, "quantityList", &mut codes);
        self.quantity_list(index, &base, map, "childQuantityList", &mut codes);
        let inputs = self.identifier_list(index, &base, map, "inputEPCList", &mut codes)
            + self.quantity_list(index, &base, map, "inputQuantityList", &mut codes);
        let outputs = self.identifier_list(index, &base, map, "outputEPCList", &mut codes)
            + self.quantity_list(index, &base, map, "outputQuantityList", &mut codes);
        if event_type == EventType::Transformation && inputs + outputs == 0 {
            self.fail(
                Some(index),
                format!("{base}/inputEPCList"),
                "a TransformationEvent needs at least one input or output",
            );
        }
        if event_type == EventType::Transaction
            && map.get("bizTransactionList").and_then(Value::as_array).is_none_or(|l| l.is_empty())
        {
            self.fail(Some(index), format!("{base}/bizTransactionList"), "required, non-empty");
        }
        self.location(index, &base, map, "readPoint");
        self.location(index, &base, map, "bizLocation");
        let biz_step = map.get("bizStep").and_then(Value::as_str).map(str::to_owned);
        let location = ["bizLocation", "readPoint"].iter().find_map(|name| {
            let id = map.get(*name)?.get("id")?.as_str()?;
            Some(Identifier::parse(id).map_or_else(|_| id.to_owned(), |parsed| parsed.canonical()))
        });
        if self.errors.len() > errors_before {
            return None;
        }
        Some(CapturedEvent {
            index,
            event_type,
            event_time_ms,
            action,
            biz_step,
            codes: codes.into_iter().collect(),
            parent,
            location,
            hash: event_hash(value),
            json: value.clone(),
        })
    }
}

/// Checks a capture document; every event if all is well, else every problem found.
pub fn validate_document(document: &Value) -> Result<Vec<CapturedEvent>, Vec<CaptureError>> {
    let mut checker = Checker { errors: Vec::new() };
    let Some(map) = document.as_object() else {
        checker.fail(None, String::new(), "an EPCISDocument must be a JSON object");
        return Err(checker.errors);
    };
    match map.get("type").and_then(Value::as_str) {
        Some("EPCISDocument") => {}
        Some(other) => checker.fail(
            None,
            "/type".into(),
            format!("`{other}`: only an EPCISDocument is captured"),
        ),
        None => checker.fail(None, "/type".into(), "required (EPCISDocument)"),
    }
    match map.get("schemaVersion") {
        Some(Value::String(v)) if v == "2.0" || v == "2" => {}
        Some(Value::Number(n)) if n.as_f64() == Some(2.0) => {}
        Some(other) => {
            checker.fail(None, "/schemaVersion".into(), format!("{other}: 2.0 expected"))
        }
        None => checker.fail(None, "/schemaVersion".into(), "required (2.0)"),
    }
    match map.get("creationDate").and_then(Value::as_str) {
        Some(text) => {
            if let Err(reason) = parse_time(text) {
                checker.fail(None, "/creationDate".into(), reason);
            }
        }
        None => checker.fail(None, "/creationDate".into(), "required (an RFC 3339 time)"),
    }
    let list =
        map.get("epcisBody").and_then(|body| body.get("eventList")).and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        checker.fail(None, "/epcisBody/eventList".into(), "required, a non-empty array");
        return Err(checker.errors);
    };
    let mut events = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashMap::new();
    for (index, value) in list.iter().enumerate() {
        if let Some(event) = checker.event(index, value) {
            if let Some(first) = seen.insert(event.hash, index) {
                checker.fail(
                    Some(index),
                    format!("/epcisBody/eventList/{index}"),
                    format!("the same event as event {first}"),
                );
            }
            events.push(event);
        }
    }
    if checker.errors.is_empty() { Ok(events) } else { Err(checker.errors) }
}
