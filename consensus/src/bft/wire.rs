//! The `bft` provider's messages (`docs/FORMAT.md` §18): `version u8 (1) ‖ tag u8 ‖ body`.
//!
//! - `1` proposal: `height u64 ‖ round u32 ‖ pol_round i64 ‖ block hash [32] ‖
//!   proposer u64 ‖ signature bytes16 ‖ payload bytes32 ‖ count u16 ‖ (vote bytes16)*` —
//!   the block body travels once, with the proposal; a re-proposal (`pol_round` ≥ 0)
//!   carries the prevotes of `pol_round` for its block (each an encoded vote message), so
//!   members that missed them can accept it;
//! - `2` vote: `kind u8 (1 prevote, 2 precommit) ‖ height u64 ‖ round u32 ‖
//!   flag u8 (0 nil, 1 block) ‖ [block hash [32]] ‖ voter u64 ‖ signature bytes16` — a vote
//!   carries only the hash;
//! - `3` sync request: `height u64` — "send me the decided blocks from this height";
//! - `4` decided: `height u64 ‖ payload bytes32 ‖ certificate bytes32` — a decided block's
//!   proposal with its commit certificate, which the receiver verifies before it executes.
//!
//! Signatures (`code ‖ raw`, see crypto-parallel) are over
//! `engine::certificate::{vote_sign_bytes, proposal_sign_bytes}`.

use crypto_parallel::{PrivateKey, Signature};
use engine::certificate::{VoteKind, proposal_sign_bytes, vote_sign_bytes};
use engine::codec::{DecodeError, Reader, Writer};
use engine::model::{Hash32, LedgerId};

use crate::MemberId;

/// Format version of the messages.
pub const WIRE_VERSION: u8 = 1;
/// Largest certificate accepted in a message (1,024 signers of ~100 bytes).
pub const CERTIFICATE_BYTES_MAX: usize = 128 << 10;
const SIGNATURE_BYTES_MAX: usize = 256;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A round's proposal and the block body it proposes.
    Proposal(SignedProposal),
    /// A prevote or precommit.
    Vote(SignedVote),
    /// Asks for decided blocks from `height` on.
    SyncRequest {
        /// The first height wanted.
        height: u64,
    },
    /// A decided block (its proposal bytes) and its commit certificate.
    Decided {
        /// Its height.
        height: u64,
        /// The proposal as decided.
        payload: Vec<u8>,
        /// `engine::certificate::Certificate` bytes.
        certificate: Vec<u8>,
    },
}

/// A proposal as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProposal {
    /// The height proposed for.
    pub height: u64,
    /// The round proposed in.
    pub round: u32,
    /// -1: a fresh proposal; else the round whose prevote quorum it re-proposes.
    pub pol_round: i64,
    /// The hash of the block the payload executes to.
    pub block: Hash32,
    /// The round's proposer.
    pub proposer: MemberId,
    /// Over `proposal_sign_bytes`.
    pub signature: Signature,
    /// The block proposal (the application's bytes).
    pub payload: Vec<u8>,
    /// For a re-proposal: the prevote quorum of `pol_round` for `block`.
    pub polka: Vec<SignedVote>,
}

/// Most votes a proposal's polka may carry.
pub const POLKA_VOTES_MAX: usize = 1024;

/// A vote as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVote {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The height voted on.
    pub height: u64,
    /// The round voted in.
    pub round: u32,
    /// `None`: a vote for nil.
    pub block: Option<Hash32>,
    /// Who votes.
    pub voter: MemberId,
    /// Over `vote_sign_bytes`.
    pub signature: Signature,
}

impl SignedVote {
    /// Signs a vote with `key`.
    pub fn sign(
        key: &PrivateKey,
        ledger: &LedgerId,
        kind: VoteKind,
        height: u64,
        round: u32,
        block: Option<Hash32>,
        voter: MemberId,
    ) -> SignedVote {
        let signature = key.sign(&vote_sign_bytes(kind, ledger, height, round, block.as_ref()));
        SignedVote { kind, height, round, block, voter, signature }
    }

    /// The bytes its signature covers.
    pub fn sign_bytes(&self, ledger: &LedgerId) -> Vec<u8> {
        vote_sign_bytes(self.kind, ledger, self.height, self.round, self.block.as_ref())
    }
}

impl SignedProposal {
    /// Signs a proposal with `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &PrivateKey,
        ledger: &LedgerId,
        height: u64,
        round: u32,
        pol_round: i64,
        block: Hash32,
        proposer: MemberId,
        payload: Vec<u8>,
    ) -> SignedProposal {
        let signature = key.sign(&proposal_sign_bytes(ledger, height, round, &block, pol_round));
        SignedProposal {
            height,
            round,
            pol_round,
            block,
            proposer,
            signature,
            payload,
            polka: Vec::new(),
        }
    }

    /// The bytes its signature covers.
    pub fn sign_bytes(&self, ledger: &LedgerId) -> Vec<u8> {
        proposal_sign_bytes(ledger, self.height, self.round, &self.block, self.pol_round)
    }
}

impl Message {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(match self {
            Message::Proposal(p) => 160 + p.payload.len(),
            Message::Decided { payload, certificate, .. } => 32 + payload.len() + certificate.len(),
            _ => 160,
        });
        writer.u8(WIRE_VERSION);
        match self {
            Message::Proposal(p) => {
                writer
                    .u8(1)
                    .u64(p.height)
                    .u32(p.round)
                    .i64(p.pol_round)
                    .raw(&p.block)
                    .u64(p.proposer)
                    .bytes16(&p.signature.to_bytes())
                    .bytes32(&p.payload)
                    .u16(p.polka.len() as u16);
                for vote in &p.polka {
                    writer.bytes16(&Message::Vote(vote.clone()).encode());
                }
            }
            Message::Vote(v) => {
                writer.u8(2).u8(v.kind as u8).u64(v.height).u32(v.round);
                match &v.block {
                    None => writer.u8(0),
                    Some(hash) => writer.u8(1).raw(hash),
                };
                writer.u64(v.voter).bytes16(&v.signature.to_bytes());
            }
            Message::SyncRequest { height } => {
                writer.u8(3).u64(*height);
            }
            Message::Decided { height, payload, certificate } => {
                writer.u8(4).u64(*height).bytes32(payload).bytes32(certificate);
            }
        }
        writer.into_bytes()
    }

    /// Decodes a message; payloads over `max_payload` bytes are refused.
    pub fn decode(bytes: &[u8], max_payload: usize) -> Result<Message, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("bft message version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnknownTag {
                what: "bft message version",
                tag: version.into(),
            });
        }
        let signature = |reader: &mut Reader<'_>| -> Result<Signature, DecodeError> {
            let raw = reader.bytes16(SIGNATURE_BYTES_MAX, "bft signature")?;
            Signature::from_bytes(raw)
                .map_err(|e| DecodeError::Invalid { what: "bft signature", reason: e.to_string() })
        };
        let message = match reader.u8("bft message tag")? {
            1 => {
                let height = reader.u64("proposal height")?;
                let round = reader.u32("proposal round")?;
                let pol_round = reader.i64("proposal pol_round")?;
                if pol_round < -1 || pol_round >= round as i64 {
                    return Err(DecodeError::Invalid {
                        what: "proposal pol_round",
                        reason: format!("{pol_round} for round {round}"),
                    });
                }
                let block = reader.array("proposal block hash")?;
                let proposer = reader.u64("proposer")?;
                let signature = signature(&mut reader)?;
                let payload = reader.bytes32(max_payload, "proposal payload")?.to_vec();
                let count = reader.u16("polka count")? as usize;
                if count > POLKA_VOTES_MAX {
                    return Err(DecodeError::TooLong {
                        what: "polka votes",
                        len: count,
                        max: POLKA_VOTES_MAX,
                    });
                }
                let mut polka = Vec::with_capacity(count);
                for _ in 0..count {
                    match Message::decode(reader.bytes16(1024, "polka vote")?, 0)? {
                        Message::Vote(vote) => polka.push(vote),
                        _ => {
                            return Err(DecodeError::Invalid {
                                what: "polka vote",
                                reason: "not a vote".into(),
                            });
                        }
                    }
                }
                Message::Proposal(SignedProposal {
                    height,
                    round,
                    pol_round,
                    block,
                    proposer,
                    signature,
                    payload,
                    polka,
                })
            }
            2 => {
                let kind = match VoteKind::from_u8(reader.u8("vote kind")?) {
                    Some(kind @ (VoteKind::Prevote | VoteKind::Precommit)) => kind,
                    _ => {
                        return Err(DecodeError::Invalid {
                            what: "vote kind",
                            reason: "not a prevote or precommit".into(),
                        });
                    }
                };
                let height = reader.u64("vote height")?;
                let round = reader.u32("vote round")?;
                let block = match reader.u8("vote value flag")? {
                    0 => None,
                    1 => Some(reader.array("vote block hash")?),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "vote value flag",
                            tag: tag.into(),
                        });
                    }
                };
                let voter = reader.u64("voter")?;
                let signature = signature(&mut reader)?;
                Message::Vote(SignedVote { kind, height, round, block, voter, signature })
            }
            3 => Message::SyncRequest { height: reader.u64("sync height")? },
            4 => Message::Decided {
                height: reader.u64("decided height")?,
                payload: reader.bytes32(max_payload, "decided payload")?.to_vec(),
                certificate: reader.bytes32(CERTIFICATE_BYTES_MAX, "decided certificate")?.to_vec(),
            },
            tag => {
                return Err(DecodeError::UnknownTag { what: "bft message tag", tag: tag.into() });
            }
        };
        reader.finish("bft message")?;
        Ok(message)
    }
}
