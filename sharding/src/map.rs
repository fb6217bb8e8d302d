//! The shard map: which ledger records a product's events.
//!
//! A business category (`dairy`, `liquor`, …) has one ledger, or `k` ledgers after a
//! split; GS1 company prefixes and single GTINs are assigned to categories. Routing is
//! one pure function ([`ShardMap::route`]) of the map and the request, so the gateway,
//! the SDK and the load generator route identically, and a client can route offline.
//!
//! # Rules
//! - A GTIN-14's category: an exact `gtins` entry, else the longest `prefixes` entry that
//!   the GTIN's digits 2..=13 (after the indicator digit, before the check digit) start
//!   with; else [`RouteError::UnassignedGtin`].
//! - A key without a GTIN (an SSCC pallet, a GLN): the longest `prefixes` entry its
//!   company digits start with ([`crate::gs1::Identifier::company_digits`]).
//! - Within a category of `k` ledgers, a trace code goes to ledger number
//!   `bucket(code, k)`: the first 8 bytes of SHA-256(`"polyledger-route-v1" ‖ code`)
//!   as a big-endian `u64`, modulo `k`. The code is the canonical identifier
//!   ([`crate::gs1::canonicalize`]), so URN and Digital Link forms of one item meet.
//! - The map has an `epoch`, raised by one with every change ([`ShardMap::successor`]);
//!   its identity is [`ShardMap::digest`] over the canonical JSON ([`ShardMap::to_canonical_json`]).
//!
//! # JSON form
//! ```json
//! {"epoch": 1,
//!  "categories": {"dairy": ["dairy-0"], "liquor": ["liquor-0", "liquor-1"]},
//!  "prefixes": {"0614141": "dairy"},
//!  "gtins": {"00614141999996": "liquor"}}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separator of the routing hash.
pub const ROUTE_DOMAIN: &[u8] = b"polyledger-route-v1";
/// Most ledgers one category may be split over.
pub const LEDGERS_PER_CATEGORY_MAX: usize = 1024;

/// Why a request cannot be routed, or a map is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such category in the map.
    #[error("unknown category `{0}`")]
    UnknownCategory(String),
    /// The GTIN matches no prefix and no GTIN entry.
    #[error("GTIN {0} is not assigned to a category")]
    UnassignedGtin(String),
    /// The key's company prefix matches no `prefixes` entry.
    #[error("company digits {0} match no prefix of the map")]
    UnassignedCompany(String),
    /// Not a valid GTIN-14.
    #[error("`{0}` is not a GTIN-14 with a valid check digit")]
    BadGtin(String),
    /// The map breaks a rule (the field and why).
    #[error("shard map: {0}")]
    Invalid(String),
}

/// A shard map (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMap {
    /// Version: 1 for the first map, +1 for each change.
    pub epoch: u64,
    /// Category → its ledgers, in bucket order.
    pub categories: BTreeMap<String, Vec<String>>,
    /// GS1 company prefix (4 to 12 digits) → category.
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// GTIN-14 → category (overrides prefixes).
    #[serde(default)]
    pub gtins: BTreeMap<String, String>,
}

/// What a record is routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A category by name.
    Category(&'a str),
    /// A GTIN-14; its category comes from the map.
    Gtin(&'a str),
    /// A GS1 key without a GTIN (an SSCC, a GLN): the digits that begin with its
    /// company prefix ([`crate::gs1::Identifier::company_digits`]); its category is the
    /// longest matching `prefixes` entry.
    Company(&'a str),
}

/// The bucket of `code` among `k` (`k >= 1`).
pub fn bucket(code: &str, k: usize) -> usize {
    let mut hasher = Sha256::new();
    hasher.update(ROUTE_DOMAIN);
    hasher.update(code.as_bytes());
    let digest = hasher.finalize();
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % k as u64) as usize
}

fn valid_gtin(gtin: &str) -> bool {
    gtin.len() == 14
        && gtin.bytes().all(|b| b.is_ascii_digit())
        && crate::gs1::check_digit(&gtin[..13]) == gtin.as_bytes()[13] - b'0'
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl ShardMap {
    /// Parses and validates the JSON form.
    pub fn from_json(text: &str) -> Result<ShardMap, RouteError> {
        let map: ShardMap =
            serde_json::from_str(text).map_err(|e| RouteError::Invalid(e.to_string()))?;
        map.validate()?;
        Ok(map)
    }

    /// Checks every rule: epoch >= 1; categories with 1..=1024 distinct ledgers, no
    /// ledger in two categories; names of ASCII letters, digits, `-_.`; prefixes of 4
    /// to 12 digits and GTIN-14s with valid check digits, each naming a category.
    pub fn validate(&self) -> Result<(), RouteError> {
        let invalid = |why: String| Err(RouteError::Invalid(why));
        if self.epoch == 0 {
            return invalid("epoch starts at 1".into());
        }
        if self.categories.is_empty() {
            return invalid("no categories".into());
        }
        let mut ledgers = BTreeSet::new();
        for (category, list) in &self.categories {
            if !valid_name(category) {
                return invalid(format!("category name `{category}`"));
            }
            if list.is_empty() || list.len() > LEDGERS_PER_CATEGORY_MAX {
                return invalid(format!(
                    "category `{category}` needs 1 to {LEDGERS_PER_CATEGORY_MAX} ledgers"
                ));
            }
            for ledger in list {
                if !valid_name(ledger) {
                    return invalid(format!("category `{category}`: ledger name `{ledger}`"));
                }
                if !ledgers.insert(ledger.as_str()) {
                    return invalid(format!("ledger `{ledger}` is listed twice"));
                }
            }
        }
        for (prefix, category) in &self.prefixes {
            if !(4..=12).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return invalid(format!("prefix `{prefix}` must be 4 to 12 digits"));
            }
            if !self.categories.contains_key(category) {
                return invalid(format!("prefix `{prefix}`: unknown category `{category}`"));
            }
        }
        for (gtin, category) in &self.gtins {
            if !valid_gtin(gtin) {
                return invalid(format!("`{gtin}` is not a GTIN-14 with a valid check digit"));
            }
            if !self.categories.contains_key(category) {
                return invalid(format!("GTIN {gtin}: unknown category `{category}`"));
            }
        }
        Ok(())
    }

    /// The category of a GTIN-14.
    pub fn category_of_gtin(&self, gtin: &str) -> Result<&str, RouteError> {
        if !valid_gtin(gtin) {
            return Err(RouteError::BadGtin(gtin.to_owned()));
        }
        if let Some(category) = self.gtins.get(gtin) {
            return Ok(category);
        }
        self.category_of_company(&gtin[1..13])
            .ok_or_else(|| RouteError::UnassignedGtin(gtin.to_owned()))
    }

    /// The category of the longest `prefixes` entry `digits` start with.
    pub fn category_of_company(&self, digits: &str) -> Option<&str> {
        (4..=12.min(digits.len()))
            .rev()
            .find_map(|len| self.prefixes.get(&digits[..len]))
            .map(String::as_str)
    }

    /// The ledger that records `trace_code` (a canonical identifier) for `target`.
    pub fn route(&self, target: Target<'_>, trace_code: &str) -> Result<&str, RouteError> {
        let category = match target {
            Target::Category(name) => name,
            Target::Gtin(gtin) => self.category_of_gtin(gtin)?,
            Target::Company(digits) => self
                .category_of_company(digits)
                .ok_or_else(|| RouteError::UnassignedCompany(digits.to_owned()))?,
        };
        let ledgers = self
            .categories
            .get(category)
            .ok_or_else(|| RouteError::UnknownCategory(category.to_owned()))?;
        Ok(&ledgers[bucket(trace_code, ledgers.len())])
    }

    /// The canonical JSON form: keys sorted, no whitespace (what [`ShardMap::digest`]
    /// covers and what the system ledger records).
    pub fn to_canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a shard map always serialises")
    }

    /// SHA-256 of the canonical JSON.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_canonical_json().as_bytes()).into()
    }

    /// Checks that `next` may follow this map: valid, and its epoch one higher. (A split
    /// replaces a category's ledgers by its children; the parent's history stays
    /// reachable through the ledgers' lineage, not through the map.)
    pub fn successor(&self, next: &ShardMap) -> Result<(), RouteError> {
        next.validate()?;
        if next.epoch != self.epoch + 1 {
            return Err(RouteError::Invalid(format!(
                "epoch {} cannot follow epoch {}",
                next.epoch, self.epoch
            )));
        }
        Ok(())
    }
}
