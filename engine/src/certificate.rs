//! BFT commit certificates: the precommit signatures of more than two thirds of a ledger's
//! consensus participants on one block hash (`docs/FORMAT.md` §18).
//!
//! A certificate lets anyone check a block — and every proof anchored in its header —
//! without trusting the node that served it: recompute the block hash from the header,
//! then check that participants holding more than 2/3 of the voting power signed a
//! precommit for exactly that hash at exactly that height. Every participant has one vote.
//!
//! This module is pure (no storage): the SDK verifies certificates with it offline, the
//! `bft` consensus provider signs and checks votes with [`vote_sign_bytes`], and
//! `verify::verify_ledger` checks every stored certificate of a BFT ledger against the
//! participant set at that height.

use std::collections::BTreeMap;

use crypto_parallel::{PublicKey, Signature, VerifyItem};

use crate::codec::{DecodeError, Reader, Writer};
use crate::model::{Hash32, LedgerId};

/// Format version of a certificate.
pub const CERTIFICATE_VERSION: u8 = 1;
/// Most signatures a certificate may carry (one per participant).
pub const CERTIFICATE_SIGNERS_MAX: usize = 1024;
/// Domain tag that starts every signed consensus message, so a vote's bytes can never be
/// taken for a transaction's or another protocol's.
pub const VOTE_DOMAIN: &[u8; 16] = b"polyledger/bft/1";

/// What a signed consensus message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum VoteKind {
    /// A first-round vote for a proposed block (or nil).
    Prevote = 1,
    /// A vote to commit a block (or nil); more than 2/3 of them for one block decide it.
    Precommit = 2,
    /// The proposer's signature over its proposal's block hash.
    Proposal = 3,
}

impl VoteKind {
    /// The kind for its byte.
    pub fn from_u8(byte: u8) -> Option<VoteKind> {
        match byte {
            1 => Some(VoteKind::Prevote),
            2 => Some(VoteKind::Precommit),
            3 => Some(VoteKind::Proposal),
            _ => None,
        }
    }
}

/// The bytes a participant signs for a vote or proposal:
/// `"polyledger/bft/1" ‖ kind u8 ‖ ledger id [32] ‖ height u64 ‖ round u32 ‖
/// value flag u8 (0 nil, 1 block) ‖ block hash [32] (only when flag = 1)`; for a proposal
/// the block is followed by `pol_round i64` (-1: none).
pub fn vote_sign_bytes(
    kind: VoteKind,
    ledger: &LedgerId,
    height: u64,
    round: u32,
    value: Option<&Hash32>,
) -> Vec<u8> {
    let mut writer = Writer::with_capacity(16 + 1 + 32 + 8 + 4 + 1 + 32 + 8);
    writer.raw(VOTE_DOMAIN).u8(kind as u8).raw(&ledger.0).u64(height).u32(round);
    match value {
        None => writer.u8(0),
        Some(hash) => writer.u8(1).raw(hash),
    };
    writer.into_bytes()
}

/// The bytes a proposer signs for its proposal: [`vote_sign_bytes`] of kind `Proposal` for
/// the block, followed by `pol_round i64` (the round of the prevote quorum the proposer
/// re-proposes from; -1 for a fresh proposal).
pub fn proposal_sign_bytes(
    ledger: &LedgerId,
    height: u64,
    round: u32,
    block_hash: &Hash32,
    pol_round: i64,
) -> Vec<u8> {
    let mut bytes = vote_sign_bytes(VoteKind::Proposal, ledger, height, round, Some(block_hash));
    bytes.extend_from_slice(&pol_round.to_be_bytes());
    bytes
}

/// A commit certificate as stored with its block and served by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Height of the certified block.
    pub height: u64,
    /// The round in which it was decided.
    pub round: u32,
    /// The certified block's hash.
    pub block_hash: Hash32,
    /// `(member, signature)`, strictly ascending by member.
    pub signatures: Vec<(u64, Signature)>,
}

/// Why a certificate does not certify a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The bytes are not a certificate.
    #[error("malformed certificate: {0}")]
    Malformed(#[from] DecodeError),
    /// Signers not strictly ascending (a member listed twice, or out of order).
    #[error("certificate signers not strictly ascending at member {0}")]
    NotCanonical(u64),
    /// It certifies another height.
    #[error("certificate is for height {certificate}, the block is at {block}")]
    WrongHeight {
        /// The certificate's height.
        certificate: u64,
        /// The block's.
        block: u64,
    },
    /// It certifies another block.
    #[error("certificate is for block {certificate}, not {block}")]
    WrongBlock {
        /// Hex of the certificate's block hash.
        certificate: String,
        /// Hex of the block's hash.
        block: String,
    },
    /// A signer is not a participant at that height.
    #[error("certificate signed by member {0}, not a participant at this height")]
    NotAParticipant(u64),
    /// A signature does not verify.
    #[error("member {0}'s precommit signature does not verify")]
    BadSignature(u64),
    /// Valid signatures, but not more than 2/3 of the participants.
    #[error(
        "certificate carries {signed} of {participants} participants' precommits; more than 2/3 are needed"
    )]
    NoQuorum {
        /// Valid distinct signers.
        signed: usize,
        /// Participants at that height.
        participants: usize,
    },
}

impl Certificate {
    /// `version u8 ‖ height u64 ‖ round u32 ‖ block hash [32] ‖ count u16 ‖
    /// (member u64 ‖ signature bytes16)*` (signature bytes = `code ‖ raw`).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(47 + self.signatures.len() * 84);
        writer
            .u8(CERTIFICATE_VERSION)
            .u64(self.height)
            .u32(self.round)
            .raw(&self.block_hash)
            .u16(self.signatures.len() as u16);
        for (member, signature) in &self.signatures {
            writer.u64(*member).bytes16(&signature.to_bytes());
        }
        writer.into_bytes()
    }

    /// Decodes a certificate; signers must be strictly ascending.
    pub fn decode(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("certificate version")?;
        if version != CERTIFICATE_VERSION {
            return Err(DecodeError::UnknownTag {
                what: "certificate version",
                tag: version.into(),
            }
            .into());
        }
        let height = reader.u64("certificate height")?;
        let round = reader.u32("certificate round")?;
        let block_hash = reader.array("certificate block hash")?;
        let count = reader.u16("certificate signer count")? as usize;
        if count > CERTIFICATE_SIGNERS_MAX {
            return Err(DecodeError::TooLong {
                what: "certificate signers",
                len: count,
                max: CERTIFICATE_SIGNERS_MAX,
            }
            .into());
        }
        let mut signatures: Vec<(u64, Signature)> = Vec::with_capacity(count);
        for _ in 0..count {
            let member = reader.u64("certificate signer")?;
            let raw = reader.bytes16(256, "certificate signature")?;
            let signature = Signature::from_bytes(raw).map_err(|e| DecodeError::Invalid {
                what: "certificate signature",
                reason: e.to_string(),
            })?;
            if signatures.last().is_some_and(|(last, _)| *last >= member) {
                return Err(CertificateError::NotCanonical(member));
            }
            signatures.push((member, signature));
        }
        reader.finish("certificate")?;
        Ok(Certificate { height, round, block_hash, signatures })
    }

    /// Checks that this certificate commits `block_hash` at `height` of `ledger`: every
    /// signer is one of `participants` (the voting members at that height, by member
    /// number), every signature is a valid precommit (checked in one batch on the crypto
    /// pool), and the signers are more than 2/3 of the participants.
    pub fn verify(
        &self,
        ledger: &LedgerId,
        height: u64,
        block_hash: &Hash32,
        participants: &BTreeMap<u64, PublicKey>,
    ) -> Result<(), CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight { certificate: self.height, block: height });
        }
        if &self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock {
                certificate: hex::encode(self.block_hash),
                block: hex::encode(block_hash),
            });
        }
        let message =
            vote_sign_bytes(VoteKind::Precommit, ledger, height, self.round, Some(block_hash));
        let mut items = Vec::with_capacity(self.signatures.len());
        for (member, signature) in &self.signatures {
            let key = participants.get(member).ok_or(CertificateError::NotAParticipant(*member))?;
            items.push(VerifyItem { public_key: key, message: &message, signature });
        }
        let verdicts = crypto_parallel::verify_batch(&items);
        for ((member, _), verdict) in self.signatures.iter().zip(verdicts) {
            if verdict.is_err() {
                return Err(CertificateError::BadSignature(*member));
            }
        }
        if !is_quorum(self.signatures.len(), participants.len()) {
            return Err(CertificateError::NoQuorum {
                signed: self.signatures.len(),
                participants: participants.len(),
            });
        }
        Ok(())
    }
}

/// More than 2/3 of `participants` (each one vote).
pub fn is_quorum(signed: usize, participants: usize) -> bool {
    participants > 0 && 3 * signed > 2 * participants
}
