//! `polyledger category create | split | merge`: operations on the shard map, on
//! running nodes, with no restart.
//!
//! - `create` adds a category with a new ledger (settings copied from `--like`, a
//!   ledger of the same participants), created on every node given.
//! - `split` seals a category's ledger and continues it in `k` children: each child's
//!   genesis commits to the parent's sealing block (`LedgerSettings::parents`); new
//!   records of the category route to the children (by trace code hash), and traces
//!   read the parent's history through the lineage.
//! - `merge` seals every ledger of a category and continues them in one.
//!
//! Each records the next epoch of the shard map on the map ledger
//! (`[traceability] map_ledger`), through the first `--gateway`. Every `--gateway` must
//! be a node of the ledgers' participants, reached on loopback (administration answers
//! only there: run the command on each node's machine, or through an SSH tunnel).
//! The seal is signed by `--key` (an initial user of the parents). Steps already done
//! (a parent sealed, a child created) are recognised, so a failed run can be repeated.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use engine::model::{LedgerId, LedgerSettings, Lineage, Operation};
use sdk::routing::ShardMap;
use sdk::{Client, ClientError, TxBuilder};
use serde_json::json;

use crate::{Failure, invalid, runtime};

/// `polyledger category …`.
#[derive(Subcommand, Debug)]
pub enum CategoryCommand {
    /// Add a category with a new ledger.
    Create {
        #[command(flatten)]
        common: Common,
        /// The new category.
        #[arg(long)]
        category: String,
        /// Its ledger's name.
        #[arg(long)]
        ledger: String,
        /// An existing ledger whose participants, users and algorithms the new one
        /// copies.
        #[arg(long)]
        like: String,
        /// GS1 company prefixes assigned to the category (repeatable).
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
    },
    /// Seal a category's ledger and continue it in children.
    Split {
        #[command(flatten)]
        common: Common,
        /// The category (it must have one ledger).
        #[arg(long)]
        category: String,
        /// The children's names, comma-separated (2 or more).
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        into: Vec<String>,
    },
    /// Seal every ledger of a category and continue them in one.
    Merge {
        #[command(flatten)]
        common: Common,
        /// The category (it must have 2 or more ledgers).
        #[arg(long)]
        category: String,
        /// The merged ledger's name.
        #[arg(long)]
        into: String,
    },
}

/// What every operation needs.
#[derive(Args, Debug)]
pub struct Common {
    /// The nodes' gateways (repeatable); the first records the shard map.
    #[arg(long = "gateway", required = true)]
    gateways: Vec<String>,
    /// An administrator's key (initial user of the ledgers): signs the seals.
    #[arg(long)]
    key: PathBuf,
    /// How long to wait for each commit.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    timeout: Duration,
}

/// Runs a category command; prints a JSON summary.
pub fn run(command: CategoryCommand) -> Result<(), Failure> {
    crate::tools::tokio_runtime()?.block_on(async move {
        let summary = match command {
            CategoryCommand::Create { common, category, ledger, like, prefixes } => {
                create(&common, &category, &ledger, &like, &prefixes).await?
            }
            CategoryCommand::Split { common, category, into } => {
                if into.len() < 2 {
                    return Err(invalid("--into: a split needs 2 or more children"));
                }
                continue_category(&common, &category, &into, true).await?
            }
            CategoryCommand::Merge { common, category, into } => {
                continue_category(&common, &category, &[into], false).await?
            }
        };
        println!("{}", serde_json::to_string_pretty(&summary).expect("JSON"));
        Ok(())
    })
}

fn failed(client: &Client, error: ClientError) -> Failure {
    match error {
        ClientError::Problem(problem) => runtime(format!(
            "{}: {} (HTTP {}): {}",
            client.base_url(),
            problem.code,
            problem.status,
            problem.detail
        )),
        other => runtime(format!("{}: {other}", client.base_url())),
    }
}

struct Nodes {
    clients: Vec<Client>,
}

impl Nodes {
    fn connect(common: &Common) -> Result<Self, Failure> {
        let clients = common
            .gateways
            .iter()
            .map(|url| crate::tools::sdk_client(url))
            .collect::<Result<_, _>>()?;
        Ok(Nodes { clients })
    }

    fn first(&self) -> &Client {
        &self.clients[0]
    }

    async fn map(&self) -> Result<ShardMap, Failure> {
        let view = self.first().shard_map().await.map_err(|e| failed(self.first(), e))?;
        if view.ledger.is_none() {
            return Err(invalid(
                "the shard map is the configuration file's: set [traceability] map_ledger \
                 so changes are recorded",
            ));
        }
        serde_json::from_value(view.map).map_err(|e| runtime(format!("shard map: {e}")))
    }

    /// A ledger's id and settings, by name.
    async fn settings(&self, name: &str) -> Result<(LedgerId, LedgerSettings), Failure> {
        let client = self.first();
        let ledgers = client.ledgers().await.map_err(|e| failed(client, e))?;
        let view = ledgers
            .iter()
            .find(|view| view.name == name)
            .ok_or_else(|| invalid(format!("no ledger {name} on {}", client.base_url())))?;
        let id = sdk::wire::parse_hash("id", &view.id).map_err(|e| runtime(e.to_string()))?;
        let settings = client.settings(&LedgerId(id)).await.map_err(|e| failed(client, e))?;
        let bytes = hex::decode(&settings.settings_hex)
            .map_err(|e| runtime(format!("settings_hex: {e}")))?;
        let settings =
            LedgerSettings::decode(&bytes).map_err(|e| runtime(format!("settings: {e}")))?;
        Ok((LedgerId(id), settings))
    }

    /// Creates the ledger on every node (an existing identical one is fine).
    async fn create(&self, settings: &LedgerSettings) -> Result<String, Failure> {
        let mut id = String::new();
        for client in &self.clients {
            match client.create_ledger(settings).await {
                Ok(view) => id = view.id,
                Err(ClientError::Problem(problem)) if problem.code == "LEDGER_EXISTS" => {
                    let ledgers = client.ledgers().await.map_err(|e| failed(client, e))?;
                    let existing = ledgers.iter().find(|v| v.name == settings.name);
                    let settings_there = match existing {
                        Some(view) => {
                            let id = sdk::wire::parse_hash("id", &view.id)
                                .map_err(|e| runtime(e.to_string()))?;
                            client.settings(&LedgerId(id)).await.map_err(|e| failed(client, e))?
                        }
                        None => return Err(runtime(problem.detail)),
                    };
                    if settings_there.settings_hex != hex::encode(settings.encode()) {
                        return Err(runtime(format!(
                            "{}: a different ledger named {} exists",
                            client.base_url(),
                            settings.name
                        )));
                    }
                    id = existing.map(|v| v.id.clone()).unwrap_or_default();
                }
                Err(error) => return Err(failed(client, error)),
            }
        }
        Ok(id)
    }

    /// Records `next` as the next epoch.
    async fn record(&self, next: &ShardMap) -> Result<u64, Failure> {
        let view = self.first().put_shard_map(next).await.map_err(|e| failed(self.first(), e))?;
        Ok(view.epoch)
    }
}

async fn create(
    common: &Common,
    category: &str,
    ledger: &str,
    like: &str,
    prefixes: &[String],
) -> Result<serde_json::Value, Failure> {
    let nodes = Nodes::connect(common)?;
    let mut map = nodes.map().await?;
    if map.categories.contains_key(category) {
        return Err(invalid(format!("category {category} exists")));
    }
    let (_, template) = nodes.settings(like).await?;
    let settings = LedgerSettings {
        name: ledger.to_owned(),
        created_ms: sdk::builder::now_ms(),
        parents: Vec::new(),
        ..template
    };
    let id = nodes.create(&settings).await?;
    map.epoch += 1;
    map.categories.insert(category.to_owned(), vec![ledger.to_owned()]);
    for prefix in prefixes {
        map.prefixes.insert(prefix.clone(), category.to_owned());
    }
    map.validate().map_err(|e| invalid(e.to_string()))?;
    let epoch = nodes.record(&map).await?;
    Ok(json!({"category": category, "ledger": ledger, "id": id, "epoch": epoch}))
}

/// Seals `ledger` (unless sealed) and answers its lineage entry.
async fn seal(nodes: &Nodes, common: &Common, name: &str, note: &str) -> Result<Lineage, Failure> {
    let client = nodes.first();
    let (id, _) = nodes.settings(name).await?;
    let view = client.ledger(&id).await.map_err(|e| failed(client, e))?;
    let height = match view.sealed {
        Some(seal) => seal.height,
        None => {
            let key = crate::keys::read_key(&common.key, None)
                .map_err(|e| invalid(format!("--key {}: {e}", common.key.display())))?;
            let tx = TxBuilder::new(id)
                .operation(Operation::Seal { note: note.to_owned() })
                .sign(&[&key])
                .map_err(|e| invalid(e.to_string()))?;
            let outcomes = client
                .submit_and_wait(&id, &[tx], common.timeout)
                .await
                .map_err(|e| failed(client, e))?;
            let outcome = &outcomes[0];
            if outcome.result.as_deref() != Some("committed") {
                return Err(runtime(format!(
                    "sealing {name}: {} {}",
                    outcome.status,
                    outcome.result.as_deref().unwrap_or("")
                )));
            }
            outcome.height.ok_or_else(|| runtime("sealing: no height in the outcome"))?
        }
    };
    let block = client
        .block(&id, height)
        .await
        .map_err(|e| failed(client, e))?
        .ok_or_else(|| runtime(format!("{name}: no block at its sealing height {height}")))?;
    let block_hash =
        sdk::wire::parse_hash("hash", &block.hash).map_err(|e| runtime(e.to_string()))?;
    Ok(Lineage { ledger_id: id, height, block_hash })
}

/// Split (`one_parent`) or merge: seals the category's ledgers, creates `children`
/// continuing them, records the next map.
async fn continue_category(
    common: &Common,
    category: &str,
    children: &[String],
    one_parent: bool,
) -> Result<serde_json::Value, Failure> {
    let nodes = Nodes::connect(common)?;
    let mut map = nodes.map().await?;
    let parents = map
        .categories
        .get(category)
        .cloned()
        .ok_or_else(|| invalid(format!("no category {category} in the shard map")))?;
    if one_parent && parents.len() != 1 {
        return Err(invalid(format!(
            "category {category} has {} ledgers: split one ledger at a time (merge first)",
            parents.len()
        )));
    }
    if !one_parent && parents.len() < 2 {
        return Err(invalid(format!("category {category} has one ledger: nothing to merge")));
    }
    let note =
        format!("{} into {}", if one_parent { "split" } else { "merged" }, children.join(", "));
    let mut lineage = Vec::new();
    for parent in &parents {
        lineage.push(seal(&nodes, common, parent, &note).await?);
    }
    let (_, template) = nodes.settings(&parents[0]).await?;
    // Deterministic settings: every node given them makes the same ledger.
    let created_ms = {
        let client = nodes.first();
        let block = client
            .block(&lineage[0].ledger_id, lineage[0].height)
            .await
            .map_err(|e| failed(client, e))?
            .ok_or_else(|| runtime("the sealing block vanished"))?;
        block.timestamp_ms
    };
    let mut created = Vec::new();
    for child in children {
        let settings = LedgerSettings {
            name: child.clone(),
            created_ms,
            parents: lineage.clone(),
            ..template.clone()
        };
        let id = nodes.create(&settings).await?;
        created.push(json!({"ledger": child, "id": id}));
    }
    map.epoch += 1;
    map.categories.insert(category.to_owned(), children.to_vec());
    map.validate().map_err(|e| invalid(e.to_string()))?;
    let epoch = nodes.record(&map).await?;
    Ok(json!({
        "category": category,
        "sealed": parents.iter().zip(&lineage).map(|(name, l)| json!({
            "ledger": name,
            "height": l.height,
            "block_hash": hex::encode(l.block_hash),
        })).collect::<Vec<_>>(),
        "children": created,
        "epoch": epoch,
    }))
}
