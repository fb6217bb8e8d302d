//! The shard map and its routing function.

use sharding::map::{RouteError, ShardMap, Target, bucket};

fn map() -> ShardMap {
    ShardMap::from_json(
        r#"{"epoch": 3,
            "categories": {"dairy": ["dairy-0"], "liquor": ["liquor-0", "liquor-1", "liquor-2"],
                           "formula": ["formula-0"]},
            "prefixes": {"0614141": "dairy", "06141411": "liquor", "9506000": "formula"},
            "gtins": {"10614141123459": "formula"}}"#,
    )
    .unwrap()
}

#[test]
fn routing_is_pinned_across_versions() {
    // These values are part of the format (docs/FORMAT.md): a change would send new
    // records of an existing code to another ledger than its history.
    assert_eq!(bucket("https://id.gs1.org/01/09506000134352/21/12345", 4), 0);
    assert_eq!(bucket("https://id.gs1.org/01/09506000134352/21/12345", 7), 6);
    assert_eq!(bucket("https://id.gs1.org/01/10614141123453/21/400", 4), 2);
    assert_eq!(bucket("https://id.gs1.org/01/10614141123453/21/400", 7), 1);
    assert_eq!(bucket("anything", 1), 0);
}

#[test]
fn gtins_go_to_their_category_by_exact_entry_then_longest_prefix() {
    let map = map();
    assert_eq!(map.category_of_gtin("10614141123459").unwrap(), "formula"); // exact entry
    assert_eq!(map.category_of_gtin("00614141999996").unwrap(), "dairy"); // 0614141
    assert_eq!(map.category_of_gtin("00614141177776").unwrap(), "liquor"); // 06141411, longer
    assert_eq!(map.category_of_gtin("09506000134352").unwrap(), "formula");
    assert_eq!(
        map.category_of_gtin("04012345123456"),
        Err(RouteError::UnassignedGtin("04012345123456".into()))
    );
    assert_eq!(
        map.category_of_gtin("04012345123457"),
        Err(RouteError::BadGtin("04012345123457".into()))
    );
    let code = "https://id.gs1.org/01/00614141177776/21/9";
    let ledger = map.route(Target::Gtin("00614141177776"), code).unwrap();
    assert_eq!(ledger, map.route(Target::Category("liquor"), code).unwrap());
    assert!(ledger.starts_with("liquor-"));
    assert_eq!(map.route(Target::Category("dairy"), code).unwrap(), "dairy-0");
    assert_eq!(
        map.route(Target::Category("wine"), code),
        Err(RouteError::UnknownCategory("wine".into()))
    );
}

#[test]
fn keys_without_a_gtin_go_by_their_company_prefix() {
    use sharding::Identifier;
    let map = map();
    let digits = |code: &str| Identifier::parse(code).unwrap().company_digits().unwrap().to_owned();
    let pallet = "urn:epc:id:sscc:0614141.1234567890";
    // SSCC-18: extension digit, company prefix, serial reference, check digit.
    assert_eq!(digits(pallet), "0614141234567890");
    let code = sharding::gs1::canonicalize(pallet).unwrap();
    assert_eq!(map.route(Target::Company(&digits(pallet)), &code).unwrap(), "dairy-0");
    let place = "urn:epc:id:sgln:9506000.00001.0";
    assert_eq!(map.category_of_company(&digits(place)), Some("formula"));
    assert_eq!(
        map.route(Target::Company("4012345000"), "x"),
        Err(RouteError::UnassignedCompany("4012345000".into()))
    );
}

#[test]
fn a_split_category_spreads_evenly() {
    // Chi-square goodness of fit over 100,000 codes; the codes are fixed, so the
    // statistic is too: the bound is the 99.9th percentile of chi-square with k-1
    // degrees of freedom.
    for (k, bound) in [(2usize, 10.83), (3, 13.82), (4, 16.27), (8, 24.32), (16, 37.70)] {
        let mut counts = vec![0u64; k];
        for i in 0..100_000u64 {
            let code = format!("https://id.gs1.org/01/09506000134352/21/{i}");
            counts[bucket(&code, k)] += 1;
        }
        let expected = 100_000.0 / k as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < bound, "k = {k}: chi-square {chi2:.2} >= {bound} ({counts:?})");
    }
}

#[test]
fn maps_are_validated_and_versioned() {
    let map = map();
    let again = ShardMap::from_json(&map.to_canonical_json()).unwrap();
    assert_eq!(again, map);
    assert_eq!(again.digest(), map.digest());
    let bad = [
        (r#"{"epoch": 0, "categories": {"a": ["a-0"]}}"#, "epoch starts at 1"),
        (r#"{"epoch": 1, "categories": {}}"#, "no categories"),
        (r#"{"epoch": 1, "categories": {"a": []}}"#, "needs 1 to"),
        (r#"{"epoch": 1, "categories": {"a": ["x"], "b": ["x"]}}"#, "listed twice"),
        (r#"{"epoch": 1, "categories": {"a b": ["x"]}}"#, "category name"),
        (r#"{"epoch": 1, "categories": {"a": ["x"]}, "prefixes": {"06a": "a"}}"#, "4 to 12 digits"),
        (
            r#"{"epoch": 1, "categories": {"a": ["x"]}, "prefixes": {"0614141": "b"}}"#,
            "unknown category",
        ),
        (
            r#"{"epoch": 1, "categories": {"a": ["x"]}, "gtins": {"10614141123458": "a"}}"#,
            "valid check digit",
        ),
        (r#"{"epoch": 1, "categories": {"a": ["x"]}, "extra": 1}"#, "unknown field"),
    ];
    for (text, expected) in bad {
        let error = ShardMap::from_json(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: `{error}` lacks `{expected}`");
    }
    // A split: liquor's three ledgers become six, in the next epoch.
    let mut next = map.clone();
    next.epoch = 4;
    next.categories.insert("liquor".into(), (3..9).map(|i| format!("liquor-{i}")).collect());
    map.successor(&next).unwrap();
    assert_ne!(next.digest(), map.digest());
    let mut skipped = next.clone();
    skipped.epoch = 5;
    assert!(map.successor(&skipped).unwrap_err().to_string().contains("cannot follow"));
}
