//! EPCIS 2.0 capture validation: every capture document GS1 publishes is accepted, the
//! query document is not a capture, and each broken variant is refused with a pointer to
//! the event and field.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sharding::epcis::{EventType, parse_offset, parse_time, validate_document};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/epcis-examples/JSON");

fn documents(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            documents(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonld") {
            out.push(path);
        }
    }
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_gs1_capture_example_is_accepted() {
    let mut files = Vec::new();
    documents(Path::new(EXAMPLES), &mut files);
    files.sort();
    let (mut accepted, mut events, mut codes) = (0, 0, 0);
    for file in &files {
        let document = load(file);
        let result = validate_document(&document);
        if file.file_name().unwrap() == "EPCISQueryDocument.jsonld" {
            let errors = result.expect_err("a query document is not a capture");
            assert_eq!(errors[0].pointer, "/type");
            continue;
        }
        let captured = result.unwrap_or_else(|errors| {
            panic!(
                "{}: {}",
                file.display(),
                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
            )
        });
        accepted += 1;
        events += captured.len();
        codes += captured.iter().map(|e| e.codes.len()).sum::<usize>();
    }
    eprintln!("{accepted} documents, {events} events, {codes} trace codes");
    assert_eq!(accepted, 46);
    assert!(events >= 54 && codes > 100, "{events} events, {codes} codes");
}

fn minimal() -> Value {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-05-01T10:00:00Z",
        "epcisBody": {"eventList": [
            {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
             "eventTime": "2024-05-01T09:30:00.000+02:00", "eventTimeZoneOffset": "+02:00",
             "epcList": ["urn:epc:id:sgtin:0614141.112345.400"],
             "readPoint": {"id": "urn:epc:id:sgln:0614141.12345.0"}},
            {"type": "AggregationEvent", "action": "ADD",
             "eventTime": "2024-05-01T09:31:00Z", "eventTimeZoneOffset": "+00:00",
             "parentID": "urn:epc:id:sscc:0614141.1234567890",
             "childEPCs": ["https://id.gs1.org/01/10614141123459/21/400"]}
        ]}
    })
}

#[test]
fn events_carry_their_codes_in_canonical_form() {
    let events = validate_document(&minimal()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, EventType::Object);
    assert_eq!(events[0].codes, vec!["https://id.gs1.org/01/10614141123459/21/400"]);
    assert_eq!(events[0].biz_step.as_deref(), Some("shipping"));
    assert_eq!(events[0].event_time_ms, parse_time("2024-05-01T07:30:00Z").unwrap());
    assert_eq!(events[1].parent.as_deref(), Some("https://id.gs1.org/00/106141412345678908"));
    // The URN in one event and the Digital Link in the other name the same item.
    assert!(events[1].codes.contains(&events[0].codes[0]));
    assert_ne!(events[0].hash, events[1].hash);
}

/// Applies `change` to the minimal document and expects one error at `pointer`.
fn refused(change: impl FnOnce(&mut Value), pointer: &str, reason: &str) {
    let mut document = minimal();
    change(&mut document);
    let errors = validate_document(&document).expect_err(pointer);
    assert!(
        errors.iter().any(|e| e.pointer == pointer && e.reason.contains(reason)),
        "expected `{reason}` at {pointer}, got {errors:?}"
    );
    if let Some(index) =
        pointer.strip_prefix("/epcisBody/eventList/").and_then(|p| p.split('/').next())
    {
        let index: usize = index.parse().unwrap();
        assert!(errors.iter().any(|e| e.event == Some(index)));
    }
}

fn event(document: &mut Value, i: usize) -> &mut serde_json::Map<String, Value> {
    document["epcisBody"]["eventList"][i].as_object_mut().unwrap()
}

#[test]
fn each_broken_variant_is_refused_with_its_pointer() {
    refused(
        |d| {
            event(d, 0).remove("eventTime");
        },
        "/epcisBody/eventList/0/eventTime",
        "required",
    );
    refused(
        |d| {
            event(d, 0).remove("eventTimeZoneOffset");
        },
        "/epcisBody/eventList/0/eventTimeZoneOffset",
        "required",
    );
    refused(
        |d| {
            event(d, 1).insert("eventTimeZoneOffset".into(), json!("+15:00"));
        },
        "/epcisBody/eventList/1/eventTimeZoneOffset",
        "±HH:MM",
    );
    refused(
        |d| {
            event(d, 1).insert("eventTime".into(), json!("2024-05-01 09:31:00"));
        },
        "/epcisBody/eventList/1/eventTime",
        "RFC 3339",
    );
    refused(
        |d| {
            event(d, 1).insert("eventTime".into(), json!("2024-02-30T09:31:00Z"));
        },
        "/epcisBody/eventList/1/eventTime",
        "RFC 3339",
    );
    refused(
        |d| {
            event(d, 0).insert(
                "epcList".into(),
                json!([
                    "urn:epc:id:sgtin:0614141.112345.400",
                    "https://id.gs1.org/01/10614141123458/21/9"
                ]),
            );
        },
        "/epcisBody/eventList/0/epcList/1",
        "check digit",
    );
    refused(
        |d| {
            event(d, 0).insert("type".into(), json!("SensorEvent"));
        },
        "/epcisBody/eventList/0/type",
        "unknown event type",
    );
    refused(
        |d| {
            event(d, 0).remove("action");
        },
        "/epcisBody/eventList/0/action",
        "required",
    );
    refused(
        |d| {
            event(d, 0).insert("action".into(), json!("UPDATE"));
        },
        "/epcisBody/eventList/0/action",
        "ADD, OBSERVE or DELETE",
    );
    refused(
        |d| {
            event(d, 1).remove("parentID");
        },
        "/epcisBody/eventList/1/parentID",
        "required",
    );
    refused(
        |d| {
            event(d, 0)
                .insert("readPoint".into(), json!({"id": "urn:epc:id:sscc:0614141.1234567890"}));
        },
        "/epcisBody/eventList/0/readPoint/id",
        "location",
    );
    refused(
        |d| {
            event(d, 0).insert("bizLocation".into(), json!({"id": "warehouse 7"}));
        },
        "/epcisBody/eventList/0/bizLocation/id",
        "absolute URI",
    );
    refused(
        |d| {
            event(d, 0).insert(
                "quantityList".into(),
                json!([{"epcClass": "urn:epc:class:lgtin:0614141.112345.L1", "quantity": -2}]),
            );
        },
        "/epcisBody/eventList/0/quantityList/0/quantity",
        ">= 0",
    );
    refused(
        |d| {
            let e = event(d, 0);
            e.insert("type".into(), json!("TransformationEvent"));
        },
        "/epcisBody/eventList/0/action",
        "no action",
    );
    refused(
        |d| {
            let e = event(d, 0);
            e.insert("type".into(), json!("TransactionEvent"));
        },
        "/epcisBody/eventList/0/bizTransactionList",
        "required",
    );
    refused(
        |d| {
            let copy = d["epcisBody"]["eventList"][0].clone();
            d["epcisBody"]["eventList"].as_array_mut().unwrap().push(copy);
        },
        "/epcisBody/eventList/2",
        "same event as event 0",
    );
    refused(
        |d| {
            d["type"] = json!("EPCISQueryDocument");
        },
        "/type",
        "only an EPCISDocument",
    );
    refused(
        |d| {
            d.as_object_mut().unwrap().remove("creationDate");
        },
        "/creationDate",
        "required",
    );
    refused(
        |d| {
            d["epcisBody"]["eventList"] = json!([]);
        },
        "/epcisBody/eventList",
        "non-empty",
    );
    // Every problem is reported at once.
    let mut document = minimal();
    event(&mut document, 0).remove("eventTime");
    event(&mut document, 1).remove("parentID");
    assert_eq!(validate_document(&document).unwrap_err().len(), 2);
}

#[test]
fn times_and_offsets() {
    assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
    assert_eq!(parse_time("1970-01-01T01:00:00+01:00").unwrap(), 0);
    assert_eq!(parse_time("2000-03-01T00:00:00.5Z").unwrap(), 951_868_800_500);
    assert_eq!(parse_time("2024-02-29T23:59:59.999-05:30").unwrap(), 1_709_270_999_999);
    for bad in [
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "x",
    ] {
        assert!(parse_time(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_offset("-05:30").unwrap(), -330);
    assert_eq!(parse_offset("+14:00").unwrap(), 840);
    for bad in ["+14:30", "+1:00", "05:00", "+05:60", "+05-00"] {
        assert!(parse_offset(bad).is_err(), "{bad}");
    }
}

#[test]
fn civil_time_inverts_parse_time() {
    for text in [
        "1970-01-01T00:00:00Z",
        "2000-02-29T23:59:59Z",
        "2026-11-24T10:03:07Z",
        "1969-12-31T23:59:59Z",
        "2100-03-01T12:30:00Z",
    ] {
        let ms = sharding::epcis::parse_time(text).unwrap();
        let (y, mo, d, h, mi, s) = sharding::epcis::civil_time(ms);
        assert_eq!(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"), text);
    }
}
