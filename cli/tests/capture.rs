//! `POST /epcis/capture` on a `polyledger node` process with `[traceability]`: GS1's own
//! EPCIS 2.0 examples become transactions on the category ledger, a re-sent event is
//! refused as a duplicate with nothing written, an invalid document is refused with
//! pointers, routing by GTIN goes through the shard map, and each trace code's history
//! is its topic on event account `epcis`.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{NodeProcess, admin_key, get_json, http};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/epcis-examples/JSON");

fn documents(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            documents(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonld")
            && path.file_name().unwrap() != "EPCISQueryDocument.jsonld"
        {
            out.push(path);
        }
    }
}

fn capture(port: u16, query: &str, body: &[u8]) -> (u16, Value) {
    let (status, text) =
        http(port, "POST", &format!("/epcis/capture{query}"), "application/ld+json", body);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn gs1_examples_are_captured_once_each_onto_the_category_ledger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("capture.key.pem"), admin_key().to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("map.json"),
        r#"{"epoch": 1, "categories": {"dairy": ["dairy-0"]}, "prefixes": {"0614141": "dairy"}}"#,
    )
    .unwrap();
    let mut node = NodeProcess::start(
        dir.path(),
        "[traceability]\nshard_map = \"map.json\"\ncapture_key_file = \"capture.key.pem\"\n",
    );

    let mut files = Vec::new();
    documents(Path::new(EXAMPLES), &mut files);
    files.sort();
    let (mut captured, mut duplicates) = (0, 0);
    let mut first: Option<(Vec<u8>, Value)> = None;
    for file in &files {
        let body = std::fs::read(file).unwrap();
        let (status, answer) = capture(node.port, "?category=dairy", &body);
        match status {
            201 => {
                let events = answer["events"].as_array().unwrap();
                assert!(events.iter().all(|e| e["ledger"] == "dairy-0"), "{answer}");
                captured += events.len();
                if first.is_none() {
                    first = Some((body, answer));
                }
            }
            // GS1 repeats some events across examples (e.g. with and without a comment):
            // the whole document is refused, naming each event captured before.
            409 => {
                assert_eq!(answer["code"], "DUPLICATE_EVENT", "{answer}");
                duplicates += 1;
            }
            _ => panic!("{}: {status} {answer}", file.display()),
        }
    }
    eprintln!("{captured} events captured, {duplicates} documents repeated earlier events");
    assert!(captured >= 40, "{captured}");

    // The same document again: refused whole, nothing written.
    let (body, answer) = first.unwrap();
    let height = node.height();
    let (status, again) = capture(node.port, "?category=dairy", &body);
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["errors"][0]["pointer"], "/epcisBody/eventList/0");
    assert_eq!(node.height(), height);

    // The history of a code is its topic.
    let code = answer["events"][0]["codes"][0].as_str().unwrap().to_owned();
    let (status, page) = get_json(
        node.port,
        &format!("/api/v1/ledgers/dairy-0/events/epcis/{}", support::segment(&code)),
    );
    assert_eq!(status, 200, "{page}");
    assert!(!page["events"].as_array().unwrap().is_empty(), "{page}");

    // Invalid: every problem with its pointer, nothing written.
    let mut broken: Value = serde_json::from_slice(&body).unwrap();
    broken["epcisBody"]["eventList"][0].as_object_mut().unwrap().remove("eventTime");
    let (status, answer) = capture(node.port, "", broken.to_string().as_bytes());
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "INVALID_EPCIS");
    assert_eq!(answer["errors"][0]["pointer"], "/epcisBody/eventList/0/eventTime");
    assert_eq!(answer["errors"][0]["event"], 0);
    assert_eq!(node.height(), height);

    // By GTIN through the shard map: 0614141 is dairy; 4012345 is nobody's.
    let document = |epc: &str| {
        serde_json::json!({
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-05-01T10:00:00Z",
            "epcisBody": {"eventList": [{
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving",
                "eventTime": "2024-05-01T09:30:00Z", "eventTimeZoneOffset": "+00:00",
                "epcList": [epc]}]}
        })
        .to_string()
    };
    let (status, answer) =
        capture(node.port, "", document("urn:epc:id:sgtin:0614141.107346.2024").as_bytes());
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["events"][0]["codes"][0], "https://id.gs1.org/01/10614141073464/21/2024");
    let (status, answer) =
        capture(node.port, "", document("urn:epc:id:sgtin:4012345.011111.1").as_bytes());
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "UNROUTABLE");
    assert!(answer["errors"][0]["reason"].as_str().unwrap().contains("not assigned"), "{answer}");
    node.stop();
}
