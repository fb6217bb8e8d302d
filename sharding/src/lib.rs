//! Traceability routing, shared by the gateway, the SDK and the load generator so that a
//! client routes offline exactly as the nodes do.
//!
//! - [`gs1`]: GS1 identifiers as EPC URNs (`urn:epc:id:sgtin:…`) or GS1 Digital Link URIs
//!   (`https://id.gs1.org/01/…/21/…`), check digits verified, normalised to one canonical
//!   form (the Digital Link URI on `id.gs1.org`), which is the trace code.
//! - [`epcis`]: EPCIS 2.0 capture documents: validation with a JSON pointer per problem,
//!   and the trace codes each event names.
//! - [`map`]: the shard map: business category → one or more ledgers, GS1 company
//!   prefixes and GTINs → category, versioned by epoch; [`map::ShardMap::route`] is the
//!   one routing function.

pub mod epcis;
pub mod gs1;
pub mod map;

pub use gs1::{IdError, Identifier};
pub use map::{RouteError, ShardMap, Target};
