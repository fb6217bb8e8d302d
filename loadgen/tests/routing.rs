//! The load generator routes trace codes with the shard map's one routing function, so a
//! split category is loaded exactly as the gateway's capture and the SDK route it.

use std::sync::Arc;

use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use engine::model::{LedgerId, Operation};
use loadgen::ledger::{LedgerTarget, Routing, Workload, WorkloadSpec};
use sharding::{ShardMap, Target};

#[test]
fn every_code_of_a_ledger_routes_to_that_ledger() {
    let map = ShardMap::from_json(
        r#"{"epoch": 2, "categories": {"dairy": ["dairy-1", "dairy-2", "dairy-3"]},
            "prefixes": {"0614141": "dairy"}}"#,
    )
    .unwrap();
    let ledgers: Vec<LedgerTarget> = map.categories["dairy"]
        .iter()
        .enumerate()
        .map(|(i, name)| LedgerTarget { id: LedgerId([i as u8; 32]), name: name.clone() })
        .collect();
    let routing = Arc::new(Routing { map: map.clone(), category: "dairy".into() });
    let spec = WorkloadSpec { keys: 500, routing: Some(routing), ..WorkloadSpec::default() };
    let signer = PrivateKey::generate(SignatureAlgorithm::Ed25519);
    let workload = Workload::new(spec, ledgers.clone(), signer);
    let mut per_ledger = [0usize; 3];
    for (index, ledger) in ledgers.iter().enumerate() {
        for k in 0..500 {
            let code = workload.key(index, k);
            // A canonical GS1 Digital Link: the gateway routes exactly this string.
            assert_eq!(sharding::gs1::canonicalize(&code).unwrap(), code);
            assert_eq!(map.route(Target::Category("dairy"), &code).unwrap(), ledger.name);
            // Routing by the code's GTIN (what capture does without ?category=) agrees.
            let gtin = sharding::Identifier::parse(&code).unwrap().gtin().unwrap().to_owned();
            assert_eq!(map.route(Target::Gtin(&gtin), &code).unwrap(), ledger.name);
            per_ledger[index] += 1;
        }
        // The transactions write those codes on that ledger.
        let (k, content) = workload.transaction(index, 7);
        assert_eq!(content.ledger_id, ledger.id);
        let written = content.operations.iter().find_map(|op| match op {
            Operation::WriteKv { key, .. } => Some(String::from_utf8(key.clone()).unwrap()),
            _ => None,
        });
        assert_eq!(written.unwrap(), workload.key(index, k));
    }
    assert_eq!(per_ledger, [500; 3]);
}
