//! GS1 identifiers: GS1's own EPCIS 2.0 examples, conversions between the URN and
//! Digital Link forms, and every kind of refusal.

use std::path::{Path, PathBuf};

use sharding::gs1::{Identifier, canonicalize, check_digit};

/// GS1's examples, copied into the repository (testdata/epcis-examples/README.md).
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/epcis-examples/JSON");

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonld" || e == "json") {
            out.push(path);
        }
    }
}

/// Keys whose values are EPCs (or EPC classes), and the objects whose `id` is one.
const EPC_KEYS: [&str; 6] =
    ["epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList", "epcClass"];
const LOCATION_KEYS: [&str; 2] = ["readPoint", "bizLocation"];

fn collect(value: &serde_json::Value, key: &str, parent: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect(v, k, key, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect(item, key, parent, out);
            }
        }
        serde_json::Value::String(text) => {
            let epc_field =
                EPC_KEYS.contains(&key) || (key == "id" && LOCATION_KEYS.contains(&parent));
            if text.starts_with("urn:epc:") || (epc_field && text.starts_with("http")) {
                out.push(text.clone());
            }
        }
        _ => {}
    }
}

#[test]
fn every_identifier_in_gs1_examples_parses() {
    let dir = Path::new(EXAMPLES);
    assert!(dir.is_dir(), "GS1's examples are expected at {}", dir.display());
    let mut files = Vec::new();
    example_files(dir, &mut files);
    assert!(files.len() >= 40, "only {} example files", files.len());
    let (mut urns, mut links) = (0, 0);
    for file in &files {
        let document: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut found = Vec::new();
        collect(&document, "", "", &mut found);
        for text in found {
            let id = Identifier::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // The canonical form is a fixed point.
            assert_eq!(canonicalize(&id.canonical()).unwrap(), id.canonical(), "{text}");
            if text.starts_with("urn:") { urns += 1 } else { links += 1 }
        }
    }
    eprintln!("{} files: {urns} EPC URNs and {links} Digital Links parsed", files.len());
    assert!(urns > 100 && links > 10, "{urns} URNs, {links} Digital Links");
}

#[test]
fn urn_and_digital_link_of_one_thing_meet() {
    let pairs = [
        ("urn:epc:id:sgtin:0614141.112345.400", "https://id.gs1.org/01/10614141123459/21/400"),
        (
            "urn:epc:class:lgtin:0614141.112345.L-7",
            "https://example.com/dl/01/10614141123459/10/L-7",
        ),
        ("urn:epc:idpat:sgtin:0614141.112345.*", "https://id.gs1.org/01/10614141123459"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0614141.12345.0", "https://id.gs1.org/414/0614141123452"),
        ("urn:epc:id:sgln:0614141.12345.7", "https://id.gs1.org/414/0614141123452/254/7"),
        ("urn:epc:id:pgln:0614141.12345", "https://id.gs1.org/417/0614141123452"),
        ("urn:epc:id:grai:4012345.00077.8765", "https://id.example.com/8003/040123450007718765"),
        ("urn:epc:id:giai:0614141.A%2F1", "https://id.gs1.org/8004/0614141A%2F1"),
        // An escaped `/` in a serial stays a serial character.
        ("urn:epc:id:sgtin:0614141.112345.a%2Fb", "https://id.gs1.org/01/10614141123459/21/a%2Fb"),
        // GTIN-13 in a Digital Link is padded; a query string is ignored.
        (
            "urn:epc:id:sgtin:9506000.013435.12345",
            "https://id.gs1.org/01/9506000134352/21/12345?17=201231",
        ),
    ];
    for (urn, link) in pairs {
        let a = Identifier::parse(urn).unwrap_or_else(|e| panic!("{e}"));
        let b = Identifier::parse(link).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b, "{urn} vs {link}");
        assert_eq!(a.canonical(), b.canonical());
    }
    assert_eq!(
        canonicalize("urn:epc:id:sgtin:0614141.112345.400").unwrap(),
        "https://id.gs1.org/01/10614141123459/21/400"
    );
    let id = Identifier::parse("urn:epc:class:lgtin:0614141.112345.L-7").unwrap();
    assert_eq!(id.gtin(), Some("10614141123459"));
    assert_eq!(Identifier::parse("urn:epc:id:sscc:0614141.1234567890").unwrap().gtin(), None);
}

#[test]
fn check_digits_are_gs1s() {
    // GS1's worked examples: GTIN-13 629104150021 → 3; SSCC 37610425002123456 → 9.
    assert_eq!(check_digit("629104150021"), 3);
    assert_eq!(check_digit("37610425002123456"), 9);
    assert_eq!(check_digit("0061414112345"), 2);
}

#[test]
fn refusals_say_what_is_wrong() {
    let cases = [
        ("https://id.gs1.org/01/10614141123458/21/400", "check digit 8 should be 9"),
        ("https://id.gs1.org/00/106141412345678907", "check digit"),
        ("https://id.gs1.org/414/0614141123453", "check digit"),
        ("https://id.gs1.org/01/1061414112345/21/400", "check digit"),
        ("https://id.gs1.org/01/123/21/400", "8, 12, 13 or 14 digits"),
        ("https://id.gs1.org/01/10614141123459/21/", "AI/value pairs"),
        ("https://id.gs1.org/01/10614141123459/21/a%20b", "not in GS1 CSet 82"),
        ("https://id.gs1.org/01/10614141123459/21/123456789012345678901", "longer than 20"),
        ("https://id.gs1.org/01/10614141123459/21/1/10/2", "out of order"),
        ("https://id.gs1.org/01/10614141123459/99/1", "not a supported qualifier"),
        ("https://example.com/products/42", "no GS1 primary key"),
        ("urn:epc:id:sgtin:0614141.11234.400", "13 digits together"),
        ("urn:epc:id:sgtin:06141.1123456.400", "6 to 12 digits"),
        ("urn:epc:id:sgtin:0614141.112345", "3 fields"),
        ("urn:epc:id:sgtin:0614141.112345.", "serial is empty"),
        ("urn:epc:id:sgtin:0614141.112345.%G1", "bad %-escape"),
        ("urn:epc:id:bic:CSQU3054383", "unsupported EPC scheme"),
        ("urn:epc:idpat:sgtin:0614141.*.*", "CP.IR.*"),
        ("EAN 4006381333931", "not an EPC URN"),
    ];
    for (input, expected) in cases {
        match Identifier::parse(input) {
            Ok(id) => panic!("{input} was accepted as {id:?}"),
            Err(error) => {
                assert!(
                    error.to_string().contains(expected),
                    "{input}: `{error}` lacks `{expected}`"
                )
            }
        }
    }
}
