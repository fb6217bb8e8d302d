//! Traceability reads on a `polyledger node` process: a product's trace follows the
//! pallet that held it (and only while it did), shows a recall and flags the events
//! recorded after it, comes back in time order, and every event's proof verifies
//! offline with the SDK while any tampering breaks it; `/epcis/events` filters and
//! pages; the consumer page renders in headless Chromium (screenshot artifact).

mod support;

use engine::model::{Operation, Transaction, TransactionContent};
use sdk::wire::TraceView;
use serde_json::{Value, json};
use support::{NodeProcess, admin_key, fixed_key, get_json, http};

const ITEM: &str = "urn:epc:id:sgtin:0614141.107346.2017";
const OTHER: &str = "urn:epc:id:sgtin:0614141.107346.2018";
const PALLET: &str = "urn:epc:id:sscc:0614141.1234567890";
const PLACE: &str = "urn:epc:id:sgln:0614141.00777.0";

fn document(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-01T00:00:00Z",
        "epcisBody": {"eventList": events}
    }))
    .unwrap()
}

fn event(kind: &str, time: &str, step: &str, extra: Value) -> Value {
    let mut event = json!({
        "type": kind,
        "eventTime": time,
        "eventTimeZoneOffset": "+01:00",
        "bizStep": step,
        "bizLocation": {"id": PLACE},
    });
    for (key, value) in extra.as_object().unwrap() {
        event[key] = value.clone();
    }
    event
}

fn capture(node: &NodeProcess, events: Vec<Value>) -> Value {
    let (status, text) =
        http(node.port, "POST", "/epcis/capture", "application/ld+json", &document(events));
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn trace(node: &NodeProcess, code: &str) -> TraceView {
    let (status, view) = get_json(node.port, &format!("/api/v1/trace/{}", support::segment(code)));
    assert_eq!(status, 200, "{view}");
    serde_json::from_value(view).unwrap()
}

/// The capture key (the test admin) and a one-ledger shard map, in `dir`.
fn traceability_files(dir: &std::path::Path) {
    std::fs::write(dir.join("capture.key.pem"), admin_key().to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("map.json"),
        r#"{"epoch": 1, "categories": {"dairy": ["dairy-0"]}, "prefixes": {"0614141": "dairy"}}"#,
    )
    .unwrap();
}

/// The `[traceability]` section for `traceability_files`.
const TRACEABILITY: &str =
    "[traceability]\nshard_map = \"map.json\"\ncapture_key_file = \"capture.key.pem\"\n";

fn canonical(code: &str) -> String {
    sharding::gs1::canonicalize(code).unwrap()
}

type Tamper = Box<dyn Fn(&mut TraceView)>;

#[test]
fn a_trace_follows_its_pallet_shows_its_recall_and_every_proof_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let regulator = fixed_key(7);
    traceability_files(dir.path());
    let node = NodeProcess::start_with(
        dir.path(),
        &format!("regulators = [\"{}\"]", regulator.public_key().to_base58()),
        TRACEABILITY,
    );

    // Produced with a lot number, packed on a pallet, the pallet shipped.
    capture(
        &node,
        vec![event(
            "ObjectEvent",
            "2026-03-01T08:00:00.000+01:00",
            "commissioning",
            json!({"action": "ADD", "epcList": [ITEM, OTHER],
                   "ilmd": {"cbvmda:lotNumber": "LOT42"}}),
        )],
    );
    capture(
        &node,
        vec![
            event(
                "AggregationEvent",
                "2026-03-02T08:00:00.000+01:00",
                "packing",
                json!({"action": "ADD", "parentID": PALLET, "childEPCs": [ITEM, OTHER]}),
            ),
            event(
                "ObjectEvent",
                "2026-03-03T08:00:00.000+01:00",
                "shipping",
                json!({"action": "OBSERVE", "epcList": [PALLET],
                       "sourceList": [{"type": "owning_party",
                                       "source": "urn:epc:id:pgln:0614141.00001"}]}),
            ),
        ],
    );

    // A regulator recalls the lot.
    let gtin = sharding::Identifier::parse(ITEM).unwrap().gtin().unwrap().to_owned();
    let recall = Transaction::sign(
        TransactionContent {
            ledger_id: node.ledger,
            nonce: 1,
            timestamp_ms: 1_767_225_600_000,
            operations: vec![Operation::Recall {
                gtin: gtin.clone(),
                lot: "LOT42".into(),
                reason: "Listeria found in lot LOT42".into(),
            }],
        },
        &[&regulator],
    )
    .unwrap();
    node.commit(&[recall]);

    // Unpacked after the recall (recorded, flagged); the pallet goes on without it.
    let unpacked = capture(
        &node,
        vec![event(
            "AggregationEvent",
            "2026-03-04T08:00:00.000+01:00",
            "unpacking",
            json!({"action": "DELETE", "parentID": PALLET, "childEPCs": [ITEM]}),
        )],
    );
    let alerts = &unpacked["events"][0]["recall_alerts"];
    assert_eq!(alerts[0]["gtin"], gtin.as_str(), "{unpacked}");
    assert_eq!(alerts[0]["lot"], "LOT42", "{unpacked}");
    capture(
        &node,
        vec![
            event(
                "ObjectEvent",
                "2026-03-05T08:00:00.000+01:00",
                "shipping",
                json!({"action": "OBSERVE", "epcList": [PALLET]}),
            ),
            event(
                "ObjectEvent",
                "2026-03-06T08:00:00.000+01:00",
                "retail_selling",
                json!({"action": "OBSERVE", "epcList": [ITEM]}),
            ),
        ],
    );

    // The trace: own events, the pallet's while it held the item, in time order.
    let view = trace(&node, ITEM);
    assert_eq!(view.code, canonical(ITEM));
    let steps: Vec<(&str, Option<&str>)> =
        view.events.iter().map(|e| (e.biz_step.as_deref().unwrap(), e.via.as_deref())).collect();
    let pallet = canonical(PALLET);
    assert_eq!(
        steps,
        vec![
            ("commissioning", None),
            ("packing", None),
            ("shipping", Some(pallet.as_str())),
            ("unpacking", None),
            ("retail_selling", None),
        ],
        "{view:#?}"
    );
    assert_eq!(view.containers.len(), 1);
    assert_eq!(view.containers[0].parent, pallet);
    assert!(view.containers[0].until_ms.is_some());
    assert!(!view.truncated);
    assert_eq!(view.recalls.len(), 1);
    assert_eq!((view.recalls[0].gtin.as_str(), view.recalls[0].lot.as_str()), (&*gtin, "LOT42"));
    let flagged: Vec<bool> = view.events.iter().map(|e| e.recall_alert).collect();
    assert_eq!(flagged, vec![false, false, false, true, true]);

    // The Digital Link form is the same product.
    let by_link = trace(&node, &canonical(ITEM));
    assert_eq!(by_link.events.len(), view.events.len());

    // Offline: every proof holds; any tampering breaks the trace.
    let verified = sdk::trace::verify(&view).expect("the trace verifies");
    assert_eq!((verified.events, verified.recalls), (5, 1));
    let tampered: Vec<(&str, Tamper)> = vec![
        (
            "payload",
            Box::new(|t| t.events[2].payload = t.events[2].payload.replace("shipping", "storing")),
        ),
        (
            "transaction",
            Box::new(|t| {
                let mut bytes = hex::decode(&t.events[1].transaction_hex).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                t.events[1].transaction_hex = hex::encode(bytes);
            }),
        ),
        (
            "proof",
            Box::new(|t| {
                let mut bytes = hex::decode(&t.events[0].proof.encoded).unwrap();
                bytes[40] ^= 1;
                t.events[0].proof.encoded = hex::encode(bytes);
            }),
        ),
        ("shown field", Box::new(|t| t.events[3].biz_step = Some("receiving".into()))),
        ("order", Box::new(|t| t.events.swap(0, 4))),
        ("topic", Box::new(|t| t.events[2].topic = canonical(ITEM))),
        ("recall", Box::new(|t| t.recalls[0].lot = "LOT43".into())),
    ];
    for (what, tamper) in tampered {
        let mut copy = view.clone();
        tamper(&mut copy);
        assert!(sdk::trace::verify(&copy).is_err(), "tampered {what} still verifies");
    }

    // The other item was never unpacked: it keeps the pallet's events after (the
    // first item taken off it, the later shipping).
    let other = trace(&node, OTHER);
    let inherited: Vec<&str> = other
        .events
        .iter()
        .filter(|e| e.via.is_some())
        .map(|e| e.biz_step.as_deref().unwrap())
        .collect();
    assert_eq!(inherited, vec!["shipping", "unpacking", "shipping"]);
    assert!(sdk::trace::verify(&other).is_ok());

    // Unknown and malformed codes.
    let (status, problem) = get_json(
        node.port,
        &format!("/api/v1/trace/{}", support::segment("urn:epc:id:sgtin:0614141.107346.9999")),
    );
    assert_eq!((status, problem["code"].as_str()), (404, Some("UNKNOWN_CODE")));
    let (status, problem) = get_json(
        node.port,
        &format!("/api/v1/trace/{}", support::segment("https://id.gs1.org/01/09521234543214/21/1")),
    );
    assert_eq!((status, problem["code"].as_str()), (400, Some("BAD_PARAMETER")), "{problem}");

    // /epcis/events: by EPC, by business step, by time, and paged.
    let query = |q: &str| {
        let (status, page) = get_json(node.port, &format!("/epcis/events?{q}"));
        assert_eq!(status, 200, "{page}");
        page
    };
    let own = query(&format!("MATCH_epc={}", support::segment(&canonical(ITEM))));
    assert_eq!(own["events"].as_array().unwrap().len(), 4, "{own}");
    let shipping = query("EQ_bizStep=urn:epcglobal:cbv:bizstep:shipping");
    assert_eq!(shipping["events"].as_array().unwrap().len(), 2, "{shipping}");
    let window =
        query("GE_eventTime=2026-03-02T08:00:00%2B01:00&LT_eventTime=2026-03-04T07:00:00Z");
    assert_eq!(window["events"].as_array().unwrap().len(), 2, "{window}");
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let page = query(&match &token {
            Some(t) => format!("perPage=2&nextPageToken={}", support::segment(t)),
            None => "perPage=2".into(),
        });
        all.extend(page["events"].as_array().unwrap().iter().map(|e| e["tx_hash"].clone()));
        match page["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(all.len(), 6, "every captured event once: {all:?}");
    let (status, _) = get_json(node.port, "/epcis/events?nextPageToken=nope");
    assert_eq!(status, 400);
    let (status, _) = get_json(node.port, "/epcis/events?GE_eventTime=yesterday");
    assert_eq!(status, 400);

    // The consumer page.
    let (status, html) = http(node.port, "GET", &format!("/trace/{}", canonical(ITEM)), "", b"");
    assert_eq!(status, 200);
    assert!(html.contains("RECALLED") && html.contains("Listeria"), "{html}");
    assert_eq!(html.matches("verified on ledger dairy-0 at height").count(), 5);
    assert!(html.contains("Retail selling") && html.contains("while inside"));
    let (status, _) = http(node.port, "GET", "/trace/01/09521234543214/21/1", "", b"");
    assert_eq!(status, 400);
    screenshot(
        &node,
        &format!("/trace/{}", canonical(ITEM).trim_start_matches("https://id.gs1.org/")),
    );
}

/// Renders `path` in headless Chromium and keeps the screenshot in the target
/// directory's `test-artifacts/`. CI must have Chromium; elsewhere a machine without it
/// skips this step and says so.
fn screenshot(node: &NodeProcess, path: &str) {
    let Some(browser) = support::chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have chromium (scripts/test.sh)");
        eprintln!("SKIPPED consumer page screenshot: no chromium (scripts/test.sh installs it)");
        return;
    };
    let out = support::artifacts_dir().join("trace-page.png");
    let _ = std::fs::remove_file(&out);
    let profile = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg("--window-size=800,1600")
        .arg(format!("{}{path}", node.url()))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let png = std::fs::read(&out).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    println!("consumer page screenshot: {}", out.display());
}

fn category(node: &NodeProcess, args: &[&str]) -> Value {
    let output = support::polyledger()
        .arg("category")
        .args(args)
        .args(["--gateway", &node.url(), "--key"])
        .arg(node.dir.join("capture.key.pem"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn ledgers(node: &NodeProcess) -> Vec<Value> {
    let (status, list) = get_json(node.port, "/api/v1/ledgers");
    assert_eq!(status, 200);
    list.as_array().unwrap().clone()
}

#[test]
fn a_history_spanning_a_split_an_aggregation_a_recall_and_a_merge_verifies_whole() {
    let dir = tempfile::tempdir().unwrap();
    traceability_files(dir.path());
    let admin = admin_key().public_key().to_base58();
    let regulator = fixed_key(7);
    let mut node = NodeProcess::start_with(
        dir.path(),
        &format!("regulators = [\"{}\"]", regulator.public_key().to_base58()),
        &format!(
            "[[ledgers]]\nname = \"system\"\nsignatures = [\"ed25519\"]\nadmins = [\"{admin}\"]\n\
             created_ms = 1767225600000\n\n\
             [traceability]\nshard_map = \"map.json\"\ncapture_key_file = \"capture.key.pem\"\n\
             map_ledger = \"system\"\n"
        ),
    );
    let commissioned = capture(
        &node,
        vec![event(
            "ObjectEvent",
            "2026-03-01T08:00:00.000+01:00",
            "commissioning",
            json!({"action": "ADD", "epcList": [ITEM], "ilmd": {"cbvmda:lotNumber": "LOT7"}}),
        )],
    );
    assert_eq!(commissioned["events"][0]["ledger"], "dairy-0");
    let (_, map) = get_json(node.port, "/api/v1/shard-map");
    assert_eq!((map["epoch"].as_u64(), map["ledger"].as_str()), (Some(1), Some("system")));

    // Split dairy-0 in two, on the running node.
    let split = category(&node, &["split", "--category", "dairy", "--into", "dairy-1,dairy-2"]);
    assert_eq!(split["epoch"], 2, "{split}");
    let listed = ledgers(&node);
    let parent = listed.iter().find(|l| l["name"] == "dairy-0").unwrap();
    assert!(parent["sealed"]["height"].as_u64().is_some(), "{parent}");
    assert!(
        listed.iter().any(|l| l["name"] == "dairy-1")
            && listed.iter().any(|l| l["name"] == "dairy-2")
    );
    let (status, settings) = get_json(node.port, "/api/v1/ledgers/dairy-1/settings");
    assert_eq!(status, 200);
    assert_eq!(settings["parents"][0]["ledger_id"], parent["id"]);
    assert_eq!(settings["parents"][0]["height"], parent["sealed"]["height"]);

    // The parent takes nothing more.
    let late = node.transactions(1, vec![support::register_events("late")]);
    let (status, problem) = http(
        node.port,
        "POST",
        &format!("/api/v1/ledgers/{}/transactions", node.id),
        "application/vnd.polyledger.batch",
        &engine::model::encode_transactions(late.iter()),
    );
    assert_eq!(status, 409, "{problem}");
    assert!(problem.contains("LEDGER_SEALED"));

    // New records route to a child, exactly as a client routes offline with the map.
    let shipped = capture(
        &node,
        vec![event(
            "ObjectEvent",
            "2026-03-02T08:00:00.000+01:00",
            "shipping",
            json!({"action": "OBSERVE", "epcList": [ITEM]}),
        )],
    );
    let (_, map) = get_json(node.port, "/api/v1/shard-map");
    let offline: sdk::routing::ShardMap = serde_json::from_value(map["map"].clone()).unwrap();
    let gtin = sharding::Identifier::parse(ITEM).unwrap().gtin().unwrap().to_owned();
    let child = offline.route(sharding::Target::Gtin(&gtin), &canonical(ITEM)).unwrap().to_owned();
    assert_eq!(shipped["events"][0]["ledger"], child.as_str());

    // Packed on a pallet, which ships: the pallet (an SSCC) routes by its company prefix
    // and its own hash, so its events may sit on the other child.
    capture(
        &node,
        vec![
            event(
                "AggregationEvent",
                "2026-03-02T12:00:00.000+01:00",
                "packing",
                json!({"action": "ADD", "parentID": PALLET, "childEPCs": [ITEM]}),
            ),
            event(
                "ObjectEvent",
                "2026-03-02T18:00:00.000+01:00",
                "shipping",
                json!({"action": "OBSERVE", "epcList": [PALLET]}),
            ),
        ],
    );

    // A regulator of the category's ledgers (inherited from the parent) recalls the lot.
    let child_view = ledgers(&node).into_iter().find(|l| l["name"] == child.as_str()).unwrap();
    let child_id = child_view["id"].as_str().unwrap().to_owned();
    let recall = Transaction::sign(
        TransactionContent {
            ledger_id: engine::model::LedgerId(hex::decode(&child_id).unwrap().try_into().unwrap()),
            nonce: 2,
            timestamp_ms: 1_767_225_600_000,
            operations: vec![Operation::Recall {
                gtin: gtin.clone(),
                lot: "LOT7".into(),
                reason: "undeclared allergen".into(),
            }],
        },
        &[&regulator],
    )
    .unwrap();
    let (status, answer) = http(
        node.port,
        "POST",
        &format!("/api/v1/ledgers/{child_id}/transactions?wait=commit&timeout_ms=30000"),
        "application/vnd.polyledger.batch",
        &engine::model::encode_transactions([&recall].into_iter()),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"result\":\"committed\""), "{answer}");

    // The trace spans the split and the pallet, shows the recall, verifies as one.
    let view = trace(&node, ITEM);
    let steps: Vec<(&str, bool)> =
        view.events.iter().map(|e| (e.biz_step.as_deref().unwrap(), e.via.is_some())).collect();
    assert_eq!(
        steps,
        vec![("commissioning", false), ("shipping", false), ("packing", false), ("shipping", true)]
    );
    assert_eq!(view.events[0].ledger, "dairy-0");
    assert!(
        view.events[1..].iter().all(|e| e.ledger.starts_with("dairy-") && e.ledger != "dairy-0")
    );
    assert_eq!(view.recalls.len(), 1);
    assert!(view.events.iter().all(|e| !e.recall_alert));
    let verified = sdk::trace::verify(&view).expect("verifies");
    let children: std::collections::BTreeSet<&str> =
        view.events[1..].iter().map(|e| e.ledger.as_str()).collect();
    assert_eq!(verified.lineage_links, children.len());
    let mut forged = view.clone();
    let at = forged.ledgers.iter().position(|l| l.name == child).unwrap();
    let mut bytes = hex::decode(&forged.ledgers[at].settings_hex).unwrap();
    let last = bytes.len() - 1; // the parent's sealing block hash
    bytes[last] ^= 1;
    forged.ledgers[at].settings_hex = hex::encode(bytes);
    assert!(sdk::trace::verify(&forged).is_err(), "altered child settings still verify");
    let mut unsealed = view.clone();
    let at = unsealed.ledgers.iter().position(|l| l.name == "dairy-0").unwrap();
    unsealed.ledgers[at].sealed = None;
    assert!(sdk::trace::verify(&unsealed).is_err(), "a lineage without the seal verifies");

    // After a restart: the children reopen (the node's catalog), the map is epoch 2.
    node.stop();
    node.restart();
    assert_eq!(ledgers(&node).len(), 4);
    let (_, map) = get_json(node.port, "/api/v1/shard-map");
    assert_eq!(map["epoch"], 2);
    assert_eq!(trace(&node, ITEM).events.len(), 4);

    // Merge the children back into one ledger; the history now spans three.
    let merged = category(&node, &["merge", "--category", "dairy", "--into", "dairy-m"]);
    assert_eq!(merged["epoch"], 3, "{merged}");
    let sold = capture(
        &node,
        vec![event(
            "ObjectEvent",
            "2026-03-03T08:00:00.000+01:00",
            "retail_selling",
            json!({"action": "OBSERVE", "epcList": [ITEM]}),
        )],
    );
    assert_eq!(sold["events"][0]["ledger"], "dairy-m");
    // Recorded after the recall (on another ledger of the lineage): flagged.
    assert_eq!(sold["events"][0]["recall_alerts"][0]["lot"], "LOT7", "{sold}");
    let view = trace(&node, ITEM);
    assert_eq!(view.events.len(), 5);
    assert_eq!(view.events[4].ledger, "dairy-m");
    assert!(view.events[4].recall_alert && !view.events[3].recall_alert);
    let verified = sdk::trace::verify(&view).expect("verifies");
    // dairy-0 → dairy-1 and dairy-2 (both continue it), dairy-1 and dairy-2 → dairy-m.
    assert_eq!(verified.lineage_links, 4);

    // A new category at run time, with its own ledger and company prefix.
    let created = category(
        &node,
        &[
            "create",
            "--category",
            "wine",
            "--ledger",
            "wine-0",
            "--like",
            "dairy-0",
            "--prefix",
            "9506000",
        ],
    );
    assert_eq!(created["epoch"], 4, "{created}");
    let wine = capture(
        &node,
        vec![event(
            "ObjectEvent",
            "2026-03-04T08:00:00.000+01:00",
            "commissioning",
            json!({"action": "ADD", "epcList": ["urn:epc:id:sgtin:9506000.134352.1"]}),
        )],
    );
    assert_eq!(wine["events"][0]["ledger"], "wine-0");

    // Every change is a version of the map on the system ledger.
    let (status, history) =
        get_json(node.port, "/api/v1/ledgers/system/accounts/shard-map/keys/map/history");
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(4), "{history}");
}

#[test]
fn nested_containers_are_followed_for_as_long_as_they_held_the_item() {
    const CASE: &str = "urn:epc:id:sscc:0614141.2000000001";
    let dir = tempfile::tempdir().unwrap();
    traceability_files(dir.path());
    let node = NodeProcess::start(dir.path(), TRACEABILITY);
    let at = |day: u32| format!("2026-04-{day:02}T08:00:00.000+01:00");
    let aggregate = |day, action: &str, parent: &str, child: &str| {
        event(
            "AggregationEvent",
            &at(day),
            if action == "ADD" { "packing" } else { "unpacking" },
            json!({"action": action, "parentID": parent, "childEPCs": [child]}),
        )
    };
    let observe = |day, code: &str| {
        event("ObjectEvent", &at(day), "shipping", json!({"action": "OBSERVE", "epcList": [code]}))
    };
    // The case goes onto the pallet before the item goes into the case.
    capture(
        &node,
        vec![
            observe(1, PALLET),                   // before: not the item's
            aggregate(2, "ADD", PALLET, CASE),    // case onto pallet
            observe(3, PALLET),                   // before the item: not the item's
            aggregate(4, "ADD", CASE, ITEM),      // item into case
            observe(5, PALLET),                   // the item's, through case and pallet
            aggregate(6, "DELETE", PALLET, CASE), // case off the pallet
            observe(7, PALLET),                   // not the item's any more
            observe(8, CASE),                     // the item's, through the case
            aggregate(9, "DELETE", CASE, ITEM),   // item out of the case
            observe(10, CASE),                    // not the item's
        ],
    );
    let view = trace(&node, ITEM);
    let days: Vec<(i64, Option<String>)> = view
        .events
        .iter()
        .map(|e| ((e.event_time_ms - view.events[0].event_time_ms) / 86_400_000 + 4, e.via.clone()))
        .collect();
    let (case, pallet) = (Some(canonical(CASE)), Some(canonical(PALLET)));
    assert_eq!(
        days,
        vec![(4, None), (5, pallet.clone()), (6, case.clone()), (8, case.clone()), (9, None)],
        "{view:#?}"
    );
    assert!(sdk::trace::verify(&view).is_ok());
}
