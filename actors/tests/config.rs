//! Node configuration: the shipped examples parse, defaults, and every rule names its
//! field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use actors::config::{ConfigError, ConsensusKind, NodeConfig, StorageUri};
use crypto_parallel::{HashAlgorithm, PrivateKey, PublicKey, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::store::MemoryStore;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
const MODULE_SOURCE: &str = include_str!("../src/config.rs");

fn deploy(path: &str) -> PathBuf {
    Path::new(DEPLOY).join(path)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A fixed test key (seeded, reproducible).
fn key(seed: u8, algorithm: SignatureAlgorithm) -> PublicKey {
    let mut raw = [seed; 32];
    raw[0] = 1; // keeps SM2/P-256 scalars in range
    PrivateKey::from_raw(algorithm, &raw).unwrap().public_key()
}

fn sm2(seed: u8) -> String {
    key(seed, SignatureAlgorithm::Sm2).to_base58()
}

fn own_key(config: &NodeConfig) -> PublicKey {
    let pem = std::fs::read_to_string(&config.node.key_file).unwrap();
    PrivateKey::from_pem(&pem).unwrap().public_key()
}

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::from_toml_str(text, Path::new("/etc/polyledger"))
}

/// A valid three-node config; the table-driven cases each change one thing in it.
fn base() -> String {
    format!(
        r#"
[node]
id = 1
key_file = "node1.key.pem"
data = "memory://"
p2p_listen = "127.0.0.1:7001"

[[peers]]
id = 2
address = "127.0.0.1:7002"
public_key = "{peer2}"

[[peers]]
id = 3
address = "127.0.0.1:7003"
public_key = "{peer3}"

[[ledgers]]
name = "dairy-0"
admins = ["{admin}"]
created_ms = 1767225600000

[[ledgers]]
name = "meat-0"
participants = [3, 1]
admins = ["{admin}"]
created_ms = 1767225600000
"#,
        peer2 = sm2(2),
        peer3 = sm2(3),
        admin = sm2(100),
    )
}

#[test]
fn base_config_is_valid() {
    let config = parse(&base()).unwrap();
    assert_eq!(config.ledgers[0].participants, [1, 2, 3]);
    assert_eq!(config.ledgers[1].participants, [1, 3], "participants are sorted");
    assert_eq!(config.peer(3).unwrap().address, addr("127.0.0.1:7003"));
    assert!(config.peer(1).is_none());
    assert_eq!(config.ledger("meat-0").unwrap().name, "meat-0");
}

#[test]
fn solo_example_parses() {
    let config = NodeConfig::load(&deploy("solo.toml")).unwrap();
    assert_eq!(config.node.id, 1);
    assert_eq!(config.node.key_file, deploy("solo.key.pem"));
    assert_eq!(config.node.data, StorageUri::RocksDb(deploy("data/solo")));
    assert!(config.peers.is_empty());
    let names: Vec<&str> = config.ledgers.iter().map(|ledger| ledger.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dairy-0",
            "liquor-0",
            "formula-0",
            "drugs-0",
            "produce-0",
            "meat-0",
            "seafood-0",
            "grain-0"
        ]
    );
    let admin = PrivateKey::from_pem(&std::fs::read_to_string(deploy("admin.key.pem")).unwrap())
        .unwrap()
        .public_key();
    let node_key = key(1, SignatureAlgorithm::Sm2);
    for ledger in &config.ledgers {
        assert_eq!(ledger.consensus, ConsensusKind::Solo);
        assert_eq!(ledger.participants, [1]);
        assert_eq!(ledger.admins, std::slice::from_ref(&admin));
        let settings = ledger.settings(&config, &node_key).unwrap();
        assert_eq!(settings.consensus, "solo");
        assert_eq!(settings.participants, std::slice::from_ref(&node_key));
        Ledger::create(MemoryStore::new(), settings).unwrap();
    }
}

#[test]
fn local_3_examples_parse_and_agree_on_every_genesis() {
    let configs: Vec<NodeConfig> = (1..=3)
        .map(|i| NodeConfig::load(&deploy(&format!("local-3/node{i}.toml"))).unwrap())
        .collect();
    let keys: Vec<PublicKey> = configs.iter().map(own_key).collect();
    for (i, config) in configs.iter().enumerate() {
        let id = i as u64 + 1;
        assert_eq!(config.node.id, id);
        assert_eq!(config.node.key_file, deploy(&format!("local-3/node{id}.key.pem")));
        assert_eq!(
            config.node.data,
            StorageUri::RocksDb(deploy(&format!("local-3/data/node{id}")))
        );
        assert_eq!(config.node.p2p_listen, addr(&format!("127.0.0.1:710{id}")));
        assert_eq!(config.node.http_listen, addr(&format!("127.0.0.1:810{id}")));
        assert_eq!(config.peers.len(), 2);
        // Each peer's configured key is the one in that peer's key file.
        for peer in &config.peers {
            assert_eq!(peer.address, addr(&format!("127.0.0.1:710{}", peer.id)));
            assert_eq!(peer.public_key, keys[peer.id as usize - 1]);
        }
        assert_eq!(config.ledgers.len(), 4);
        for ledger in &config.ledgers {
            assert_eq!(ledger.consensus, ConsensusKind::Raft);
            assert_eq!(ledger.participants, [1, 2, 3]);
            assert_ne!(ledger.created_ms, 0);
        }
    }
    // Same settings on every node, hence the same genesis block and ledger id.
    for (index, ledger) in configs[0].ledgers.iter().enumerate() {
        let settings: Vec<_> = configs
            .iter()
            .zip(&keys)
            .map(|(config, own)| config.ledgers[index].settings(config, own).unwrap())
            .collect();
        assert_eq!(settings[0], settings[1], "{}", ledger.name);
        assert_eq!(settings[0], settings[2], "{}", ledger.name);
        assert_eq!(settings[0].participants, keys);
        assert_eq!(settings[0].consensus, "raft");
        let ids: Vec<_> = settings
            .into_iter()
            .map(|settings| Ledger::create(MemoryStore::new(), settings).unwrap().id())
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[2]);
    }
}

#[test]
fn module_docs_example_parses() {
    let example: String = MODULE_SOURCE
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```toml")
        .skip(1)
        .take_while(|line| *line != "```")
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(example.contains("[pools]"), "example not found in the module docs");
    let config = NodeConfig::from_toml_str(&example, Path::new("/srv/node1")).unwrap();
    assert_eq!(config.node.data, StorageUri::RocksDb("/srv/node1/data/node1".into()));
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.ledgers[0].participants, [1, 2, 3]);
    // The example spells out every default.
    let defaults = parse(&minimal()).unwrap();
    assert_eq!(config.block, defaults.block);
    assert_eq!(config.mempool, defaults.mempool);
    assert_eq!(config.raft, defaults.raft);
    assert_eq!(config.pools, defaults.pools);
    assert_eq!(config.node.http_listen, defaults.node.http_listen);
    assert_eq!(config.ledgers[0].hash, defaults.ledgers[0].hash);
    assert_eq!(config.ledgers[0].signatures, defaults.ledgers[0].signatures);
}

fn minimal() -> String {
    format!(
        r#"
[node]
id = 7
key_file = "keys/node.pem"
data = "rocksdb:///var/lib/polyledger"
p2p_listen = "0.0.0.0:7000"

[[ledgers]]
name = "grain-0"
admins = ["{admin}"]
"#,
        admin = sm2(100)
    )
}

#[test]
fn defaults() {
    let config = parse(&minimal()).unwrap();
    assert_eq!(config.node.key_file, PathBuf::from("/etc/polyledger/keys/node.pem"));
    assert_eq!(config.node.data, StorageUri::RocksDb("/var/lib/polyledger".into()));
    assert_eq!(config.node.http_listen, addr("127.0.0.1:8080"));
    let ledger = &config.ledgers[0];
    assert_eq!(ledger.consensus, ConsensusKind::Solo);
    assert_eq!(ledger.participants, [7]);
    assert_eq!(ledger.hash, HashAlgorithm::Sm3);
    assert_eq!(ledger.signatures, [SignatureAlgorithm::Sm2]);
    assert_eq!(ledger.created_ms, 0);
    assert_eq!((config.block.max_txs, config.block.max_delay_ms), (2000, 20));
    assert_eq!(config.block.max_delay(), std::time::Duration::from_millis(20));
    assert_eq!(config.mempool.capacity, 100_000);
    assert_eq!(config.raft.tick_ms, 100);
    assert_eq!(config.raft.tick(), std::time::Duration::from_millis(100));
    assert_eq!(config.raft.election_ticks, 10);
    assert_eq!(config.raft.heartbeat_ticks, 2);
    assert_eq!(config.raft.max_log_entries_kept, 1000);
    assert_eq!(config.pools.verify_threads, 0);
    assert!(config.pools.verify_threads_resolved() >= 1);
    assert_eq!(config.pools.transport_threads, 1);
    assert!(config.node.p2p_tls, "TLS between nodes is on by default");
    assert_eq!(config.gateway, actors::config::GatewaySection::default(), "open HTTP API");

    // With peers, a ledger defaults to raft among all nodes (and then needs created_ms).
    let config = parse(&base()).unwrap();
    assert_eq!(config.ledgers[0].consensus, ConsensusKind::Raft);
    assert_eq!(config.ledgers[0].participants, [1, 2, 3]);
    // A raft ledger whose genesis participants leave this node out: it joins when
    // admitted.
    let text = base().replacen("participants = [3, 1]", "participants = [2, 3]", 1);
    assert_eq!(parse(&text).unwrap().ledgers[1].participants, [2, 3]);
    assert_eq!(parse(&text).unwrap().ledgers[1].participant_quorum, 0);
    // A solo ledger next to peers defaults to this node alone.
    let text = base().replacen("name = \"dairy-0\"", "name = \"dairy-0\"\nconsensus = \"solo\"", 1);
    assert_eq!(parse(&text).unwrap().ledgers[0].participants, [1]);
}

/// Each case replaces `from` (which occurs once in `base()`) by `to`, or appends `to`
/// when `from` is empty, and expects an `Invalid` error naming `field`.
#[test]
fn every_rule_names_its_field() {
    let ed25519 = key(9, SignatureAlgorithm::Ed25519).to_base58();
    let admin = sm2(100);
    let two_admins = format!("admins = [\"{admin}\", \"{admin}\"]");
    let ed_admin = format!("admins = [\"{ed25519}\"]");
    let peer2_key = format!("public_key = \"{}\"", sm2(2));
    let peer3_key = format!("public_key = \"{}\"", sm2(3));
    let first_ledger = "name = \"dairy-0\"\nadmins";
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("node id 0", "id = 1\n", "id = 0\n".into(), "node.id"),
        ("empty key file", "\"node1.key.pem\"", "\"\"".into(), "node.key_file"),
        ("bad data URI", "\"memory://\"", "\"postgres://db\"".into(), "node.data"),
        ("bad p2p address", "\"127.0.0.1:7001\"", "\"localhost:7001\"".into(), "node.p2p_listen"),
        (
            "http on the p2p address",
            "p2p_listen",
            "http_listen = \"127.0.0.1:7001\"\np2p_listen".into(),
            "node.http_listen",
        ),
        (
            "bad http address",
            "p2p_listen",
            "http_listen = \"8080\"\np2p_listen".into(),
            "node.http_listen",
        ),
        ("peer id 0", "id = 2\n", "id = 0\n".into(), "peers[0].id"),
        ("peer with this node's id", "id = 2\n", "id = 1\n".into(), "peers[0].id"),
        ("duplicate peer ids", "id = 3\n", "id = 2\n".into(), "peers[1].id"),
        (
            "duplicate peer addresses",
            "\"127.0.0.1:7003\"",
            "\"127.0.0.1:7002\"".into(),
            "peers[1].address",
        ),
        (
            "peer on this node's address",
            "\"127.0.0.1:7002\"",
            "\"127.0.0.1:7001\"".into(),
            "peers[0].address",
        ),
        ("bad peer address", "\"127.0.0.1:7002\"", "\"peer2\"".into(), "peers[0].address"),
        ("duplicate peer keys", &peer3_key, peer2_key.clone(), "peers[1].public_key"),
        ("bad peer key", &peer2_key, "public_key = \"not-base58!\"".into(), "peers[0].public_key"),
        ("peer without key", &peer2_key, String::new(), "peers[0].public_key"),
        (
            "peer with two keys",
            &peer2_key,
            format!("{peer2_key}\npublic_key_file = \"node2.pub.pem\""),
            "peers[0].public_key",
        ),
        ("duplicate ledger names", "\"meat-0\"", "\"dairy-0\"".into(), "ledgers[1].name"),
        ("bad ledger name", "\"meat-0\"", "\"meat 0\"".into(), "ledgers[1].name"),
        ("unknown participant", "[3, 1]", "[1, 9]".into(), "ledgers[1].participants"),
        (
            "solo participants without this node",
            "participants = [3, 1]",
            "consensus = \"solo\"\nparticipants = [3]".into(),
            "ledgers[1].participants",
        ),
        ("duplicate participants", "[3, 1]", "[1, 3, 3]".into(), "ledgers[1].participants"),
        (
            "solo with several participants",
            "participants = [3, 1]",
            "consensus = \"solo\"\nparticipants = [3, 1]".into(),
            "ledgers[1].participants",
        ),
        (
            "multi-node raft without created_ms",
            "participants = [3, 1]\nadmins = [\"ADMIN\"]\ncreated_ms = 1767225600000",
            "participants = [3, 1]\nadmins = [\"ADMIN\"]".into(),
            "ledgers[1].created_ms",
        ),
        (
            "unknown consensus",
            first_ledger,
            "name = \"dairy-0\"\nconsensus = \"pbft\"\nadmins".into(),
            "ledgers[0].consensus",
        ),
        (
            "unknown hash",
            first_ledger,
            "name = \"dairy-0\"\nhash = \"md5\"\nadmins".into(),
            "ledgers[0].hash",
        ),
        (
            "unknown signature algorithm",
            first_ledger,
            "name = \"dairy-0\"\nsignatures = [\"sm2\", \"rsa\"]\nadmins".into(),
            "ledgers[0].signatures[1]",
        ),
        (
            "no signature algorithm",
            first_ledger,
            "name = \"dairy-0\"\nsignatures = []\nadmins".into(),
            "ledgers[0].signatures",
        ),
        (
            "duplicate signature algorithm",
            first_ledger,
            "name = \"dairy-0\"\nsignatures = [\"sm2\", \"SM2\"]\nadmins".into(),
            "ledgers[0].signatures[1]",
        ),
        (
            "no admins",
            "admins = [\"ADMIN\"]\ncreated_ms = 1767225600000\n\n[[ledgers]]",
            "admins = []\ncreated_ms = 1767225600000\n\n[[ledgers]]".into(),
            "ledgers[0].admins",
        ),
        (
            "bad admin key",
            "admins = [\"ADMIN\"]\ncreated_ms = 1767225600000\n\n[[ledgers]]",
            "admins = [\"xyz\"]\ncreated_ms = 1767225600000\n\n[[ledgers]]".into(),
            "ledgers[0].admins[0]",
        ),
        (
            "duplicate admins",
            "participants = [3, 1]\nadmins = [\"ADMIN\"]",
            format!("participants = [3, 1]\n{two_admins}"),
            "ledgers[1].admins[1]",
        ),
        (
            "admin algorithm not accepted",
            "participants = [3, 1]\nadmins = [\"ADMIN\"]",
            format!("participants = [3, 1]\n{ed_admin}"),
            "ledgers[1].admins[0]",
        ),
        ("max_txs 0", "", "[block]\nmax_txs = 0".into(), "block.max_txs"),
        ("max_txs above the engine limit", "", "[block]\nmax_txs = 20001".into(), "block.max_txs"),
        ("max_delay_ms 0", "", "[block]\nmax_delay_ms = 0".into(), "block.max_delay_ms"),
        ("max_delay_ms too long", "", "[block]\nmax_delay_ms = 10001".into(), "block.max_delay_ms"),
        (
            "mempool smaller than a block",
            "",
            "[block]\nmax_txs = 5000\n[mempool]\ncapacity = 4999".into(),
            "mempool.capacity",
        ),
        ("tick 0", "", "[raft]\ntick_ms = 0".into(), "raft.tick_ms"),
        ("heartbeat 0", "", "[raft]\nheartbeat_ticks = 0".into(), "raft.heartbeat_ticks"),
        (
            "election not longer than heartbeat",
            "",
            "[raft]\nelection_ticks = 3\nheartbeat_ticks = 3".into(),
            "raft.election_ticks",
        ),
        (
            "no transport thread",
            "",
            "[pools]\ntransport_threads = 0".into(),
            "pools.transport_threads",
        ),
        (
            "gateway certificate without its key",
            "",
            "[gateway]\ntls_cert_file = \"gw.crt.pem\"".into(),
            "gateway.tls_key_file",
        ),
        (
            "gateway token hash not hex",
            "",
            "[[gateway.tokens]]\nname = \"erp\"\nsha256 = \"secret-token\"".into(),
            "gateway.tokens[0].sha256",
        ),
        (
            "gateway token names twice",
            "",
            "[[gateway.tokens]]\nname = \"erp\"\nsha256 = \"abababababababababababababababababababababababababababababababab\"\n\
                 [[gateway.tokens]]\nname = \"erp\"\nsha256 = \"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\""
                .into(),
            "gateway.tokens[1].name",
        ),
        (
            "gateway token bound to a bad key",
            "",
            "[[gateway.tokens]]\nname = \"erp\"\nsha256 = \"abababababababababababababababababababababababababababababababab\"\nuser = \"nope\"".into(),
            "gateway.tokens[0].user",
        ),
        (
            "shard map on a ledger this node does not run",
            "",
            "[traceability]\nshard_map = \"map.json\"\ncapture_key_file = \"c.pem\"\n\
             map_ledger = \"system\"".into(),
            "traceability.map_ledger",
        ),
    ];
    let base = base().replace(&admin, "ADMIN");
    for (name, from, to, field) in cases {
        let text = if from.is_empty() {
            format!("{base}\n{to}\n")
        } else {
            let from = from.replace(&admin, "ADMIN");
            assert_eq!(base.matches(&from).count(), 1, "{name}: `{from}` must occur once");
            base.replacen(&from, &to, 1)
        };
        let text = text.replace("ADMIN", &admin);
        match parse(&text) {
            Err(error @ ConfigError::Invalid { .. }) => {
                assert_eq!(error.field(), Some(field), "{name}: {error}");
                assert!(error.to_string().starts_with(&format!("{field}: ")), "{name}: {error}");
            }
            other => panic!("{name}: expected Invalid naming {field}, got {other:?}"),
        }
    }
}

#[test]
fn no_ledgers_is_invalid() {
    let text = "[node]\nid = 1\nkey_file = \"k.pem\"\ndata = \"memory://\"\np2p_listen = \"127.0.0.1:7001\"\n";
    let error = parse(text).unwrap_err();
    assert_eq!(error.field(), Some("ledgers"), "{error}");
}

#[test]
fn validate_checks_a_config_changed_in_code() {
    let mut config = parse(&base()).unwrap();
    config.validate().unwrap();
    config.ledgers.push(config.ledgers[0].clone());
    assert_eq!(config.validate().unwrap_err().field(), Some("ledgers[2].name"));
    config.ledgers.pop();
    config.ledgers[0].created_ms = 0;
    assert_eq!(config.validate().unwrap_err().field(), Some("ledgers[0].created_ms"));
}

#[test]
fn unknown_fields_are_rejected() {
    let cases = [
        ("[block]\nmax_tx = 100\n", "max_tx"),
        ("[blocks]\nmax_txs = 100\n", "blocks"),
        ("[pools]\nverify_thread = 4\n", "verify_thread"),
    ];
    for (extra, typo) in cases {
        let text = format!("{}\n{extra}", base());
        match parse(&text) {
            Err(ConfigError::Toml(message)) => {
                assert!(message.contains(typo), "{message}");
                assert!(message.contains("unknown field"), "{message}");
            }
            other => panic!("{typo}: expected a TOML error, got {other:?}"),
        }
    }
    for (from, to, typo) in [
        ("id = 1\n", "id = 1\nkey = \"x\"\n", "key"),
        ("id = 2\n", "id = 2\npubkey = \"x\"\n", "pubkey"),
        ("name = \"dairy-0\"\n", "name = \"dairy-0\"\nadmin = []\n", "admin"),
    ] {
        let text = base().replacen(from, to, 1);
        match parse(&text) {
            Err(ConfigError::Toml(message)) => {
                assert!(message.contains("unknown field"), "{message}");
                assert!(message.contains(&format!("`{typo}`")), "{message}");
            }
            other => panic!("{typo}: expected a TOML error, got {other:?}"),
        }
    }
}

#[test]
fn storage_uris() {
    let base_dir = Path::new("/etc/polyledger");
    let good = [
        ("memory://", StorageUri::Memory),
        ("rocksdb:///var/lib/pl", StorageUri::RocksDb("/var/lib/pl".into())),
        ("rocksdb://data/node1", StorageUri::RocksDb("/etc/polyledger/data/node1".into())),
        (
            "tikv://pd1:2379",
            StorageUri::TiKv { endpoints: vec!["pd1:2379".into()], keyspace: None, prefix: None },
        ),
        (
            "tikv://pd1:2379?keyspace=retail&prefix=eu/",
            StorageUri::TiKv {
                endpoints: vec!["pd1:2379".into()],
                keyspace: Some("retail".into()),
                prefix: Some("eu/".into()),
            },
        ),
        (
            "tikv://pd1:2379, 10.0.0.2:2379",
            StorageUri::TiKv {
                endpoints: vec!["pd1:2379".into(), "10.0.0.2:2379".into()],
                keyspace: None,
                prefix: None,
            },
        ),
    ];
    for (text, expected) in good {
        assert_eq!(StorageUri::parse(text, base_dir), Ok(expected.clone()), "{text}");
    }
    assert_eq!(StorageUri::RocksDb("/var/lib/pl".into()).to_string(), "rocksdb:///var/lib/pl");
    let tikv = |keyspace: Option<&str>| StorageUri::TiKv {
        endpoints: vec!["a:1".into(), "b:2".into()],
        keyspace: keyspace.map(Into::into),
        prefix: None,
    };
    assert_eq!(tikv(None).to_string(), "tikv://a:1,b:2");
    assert_eq!(tikv(Some("k")).to_string(), "tikv://a:1,b:2?keyspace=k");
    assert_eq!(StorageUri::parse(&tikv(Some("k")).to_string(), base_dir), Ok(tikv(Some("k"))));
    for bad in [
        "",
        "memory",
        "memory://x",
        "rocksdb://",
        "tikv://",
        "tikv://pd1",
        "tikv://pd1:x",
        "tikv://pd1:2379?keyspace=",
        "tikv://pd1:2379?region=eu",
        "s3://b",
    ] {
        assert!(StorageUri::parse(bad, base_dir).is_err(), "{bad}");
    }
    let text = base().replace("\"memory://\"", "\"postgres://db/ledgers\"");
    let error = parse(&text).unwrap_err();
    assert_eq!(error.field(), Some("node.data"));
    let message = error.to_string();
    for scheme in ["postgres://db/ledgers", "memory://", "rocksdb://", "tikv://"] {
        assert!(message.contains(scheme), "{message}");
    }
}

#[test]
fn toml_syntax_error_reports_its_line() {
    let text = "[node]\nid = 1\nkey_file = \"k.pem\n";
    match parse(text) {
        Err(ConfigError::Toml(message)) => assert!(message.contains("line 3"), "{message}"),
        other => panic!("expected a TOML error, got {other:?}"),
    }
    // A type error points at its line too.
    let text = base().replacen("id = 2\n", "id = \"two\"\n", 1);
    let line = text.lines().position(|line| line == "id = \"two\"").unwrap() + 1;
    match parse(&text) {
        Err(ConfigError::Toml(message)) => {
            assert!(message.contains(&format!("line {line}")), "{message}");
        }
        other => panic!("expected a TOML error, got {other:?}"),
    }
}

#[test]
fn peer_key_from_a_pem_file() {
    let dir = tempfile::tempdir().unwrap();
    let peer2 = key(2, SignatureAlgorithm::Sm2);
    std::fs::write(dir.path().join("node2.pub.pem"), peer2.to_pem().unwrap()).unwrap();
    let text = base().replacen(
        &format!("public_key = \"{}\"", peer2.to_base58()),
        "public_key_file = \"node2.pub.pem\"",
        1,
    );
    let config = NodeConfig::from_toml_str(&text, dir.path()).unwrap();
    assert_eq!(config.peer(2).unwrap().public_key, peer2);

    // A missing file is an I/O error naming it; a file that is not a public key names
    // the field.
    let missing = text.replace("node2.pub.pem", "absent.pem");
    match NodeConfig::from_toml_str(&missing, dir.path()) {
        Err(ConfigError::Io { path, .. }) => assert_eq!(path, dir.path().join("absent.pem")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    std::fs::write(dir.path().join("garbage.pem"), "hello").unwrap();
    let garbage = text.replace("node2.pub.pem", "garbage.pem");
    let error = NodeConfig::from_toml_str(&garbage, dir.path()).unwrap_err();
    assert_eq!(error.field(), Some("peers[0].public_key_file"), "{error}");

    // load() resolves against the file's directory and names a missing config file.
    std::fs::write(dir.path().join("node1.toml"), &text).unwrap();
    let loaded = NodeConfig::load(&dir.path().join("node1.toml")).unwrap();
    assert_eq!(loaded.node.key_file, dir.path().join("node1.key.pem"));
    match NodeConfig::load(&dir.path().join("nope.toml")) {
        Err(ConfigError::Io { path, .. }) => assert_eq!(path, dir.path().join("nope.toml")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn settings_reject_a_node_key_that_is_also_a_peer_key() {
    let config = parse(&base()).unwrap();
    let error = config.ledgers[0].settings(&config, &key(2, SignatureAlgorithm::Sm2)).unwrap_err();
    assert_eq!(error.field(), Some("node.key_file"), "{error}");
    let settings = config.ledgers[1].settings(&config, &key(1, SignatureAlgorithm::Sm2)).unwrap();
    assert_eq!(
        settings.participants,
        [key(1, SignatureAlgorithm::Sm2), key(3, SignatureAlgorithm::Sm2)]
    );
    assert_eq!(settings.initial_users, [key(100, SignatureAlgorithm::Sm2)]);
    assert_eq!(settings.created_ms, 1_767_225_600_000);
}

/// `[[webhooks]]`: defaults, and each rule names its field.
#[test]
fn webhooks_are_validated() {
    let hook = |body: &str| format!("{}\n[[webhooks]]\n{body}\n", base());
    let good = "name = \"erp\"\nledger = \"dairy-0\"\nurl = \"http://10.0.0.9:9000/hook\"";
    let config = parse(&hook(good)).expect("a valid webhook");
    let webhook = &config.webhooks[0];
    assert_eq!(
        (webhook.stream.as_str(), webhook.batch, webhook.timeout_ms, webhook.from),
        ("events", 100, 5000, 0)
    );
    let cases = [
        ("name = \"erp\"", "name = \"bad name\"", "webhooks[0].name"),
        ("ledger = \"dairy-0\"", "ledger = \"nope\"", "webhooks[0].ledger"),
        ("url = \"http://10.0.0.9:9000/hook\"", "url = \"ftp://x\"", "webhooks[0].url"),
        ("name = \"erp\"", "name = \"erp\"\nstream = \"tx\"", "webhooks[0].stream"),
        (
            "name = \"erp\"",
            "name = \"erp\"\nstream = \"blocks\"\naccount = \"a\"",
            "webhooks[0].stream",
        ),
        ("name = \"erp\"", "name = \"erp\"\nbatch = 0", "webhooks[0].batch"),
        ("name = \"erp\"", "name = \"erp\"\ntimeout_ms = 0", "webhooks[0].timeout_ms"),
    ];
    for (from, to, field) in cases {
        let error = parse(&hook(&good.replace(from, to))).expect_err(to);
        assert_eq!(error.field(), Some(field), "{to}: {error}");
    }
    let twice = format!("{}\n[[webhooks]]\n{good}\n", hook(good));
    assert_eq!(parse(&twice).unwrap_err().field(), Some("webhooks[1].name"));
}

/// `regulators`: in the genesis settings; duplicates and algorithms the ledger does not
/// accept name their field.
#[test]
fn regulators_are_validated() {
    let regulator = sm2(101);
    let with = |list: &str| {
        base().replacen("created_ms", &format!("regulators = [{list}]\ncreated_ms"), 1)
    };
    let config = parse(&with(&format!("\"{regulator}\""))).expect("a regulator");
    assert_eq!(config.ledgers[0].regulators.len(), 1);
    let twice = parse(&with(&format!("\"{regulator}\", \"{regulator}\""))).unwrap_err();
    assert_eq!(twice.field(), Some("ledgers[0].regulators[1]"));
    let ed25519 = key(9, SignatureAlgorithm::Ed25519).to_base58();
    let foreign = parse(&with(&format!("\"{ed25519}\""))).unwrap_err();
    assert_eq!(foreign.field(), Some("ledgers[0].regulators[0]"));
    let garbage = parse(&with("\"not-base58!\"")).unwrap_err();
    assert_eq!(garbage.field(), Some("ledgers[0].regulators[0]"));
}

/// `roles`: permission names are checked and name their field; the genesis carries them.
#[test]
fn roles_are_validated() {
    let with =
        |roles: &str| base().replacen("created_ms", &format!("roles = [{roles}]\ncreated_ms"), 1);
    let config = parse(&with(
        r#"{ name = "brand", permissions = ["register_data_account", "write_data"] }"#,
    ))
    .expect("a role");
    let bits =
        engine::model::permission::REGISTER_DATA_ACCOUNT | engine::model::permission::WRITE_DATA;
    assert_eq!(config.ledgers[0].roles, vec![("brand".to_owned(), bits)]);
    let error = parse(&with(r#"{ name = "brand", permissions = ["fly"] }"#)).unwrap_err();
    assert_eq!(error.field(), Some("ledgers[0].roles[0].permissions[0]"));
    let error = parse(&with(r#"{ name = "bad name", permissions = [] }"#)).unwrap_err();
    assert_eq!(error.field(), Some("ledgers[0].roles[0].name"));
}
