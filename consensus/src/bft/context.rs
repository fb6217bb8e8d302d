//! polyledger's types for Malachite's Tendermint driver: heights are ledger heights,
//! addresses are member numbers, a value is the hash of the block a proposal executes to,
//! votes and proposals are signed with the participants' node keys (SM2 by default) over
//! `engine::certificate::vote_sign_bytes`.

use std::fmt;

use crypto_parallel::{PublicKey, Signature};
use engine::model::Hash32;
use malachite_types::{self as mt, NilOrVal, Round, VoteType};

use crate::MemberId;

/// A ledger height.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);
    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A participant, by member number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member(pub MemberId);

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member {}", self.0)
    }
}

impl mt::Address for Member {}

/// A proposed value: the hash of the block the proposal executes to (its own id).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash32);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl mt::Value for BlockId {
    type Id = BlockId;
    fn id(&self) -> BlockId {
        *self
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vote {
    /// The height voted on.
    pub height: Height,
    /// The round voted in.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// Prevote or precommit.
    pub kind: VoteType,
    /// Who votes.
    pub voter: Member,
}

impl mt::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Member {
        &self.voter
    }
    fn extension(&self) -> Option<&mt::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mt::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _: mt::SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A round's proposal: the block hash (its body travels beside it, once).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// The height proposed for.
    pub height: Height,
    /// The round proposed in.
    pub round: Round,
    /// The proposed block.
    pub value: BlockId,
    /// The round of the prevote quorum this re-proposes (Nil: a fresh proposal).
    pub pol_round: Round,
    /// Who proposes.
    pub proposer: Member,
}

impl mt::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockId {
        &self.value
    }
    fn take_value(self) -> BlockId {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Member {
        &self.proposer
    }
}

/// Proposal parts (streamed proposals) are not used: a proposal carries its whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoParts;

impl mt::ProposalPart<Ctx> for NoParts {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A participant with one vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its member number.
    pub member: Member,
    /// Its node key.
    pub key: PublicKey,
}

impl mt::Validator<Ctx> for Validator {
    fn address(&self) -> &Member {
        &self.member
    }
    fn public_key(&self) -> &PublicKey {
        &self.key
    }
    fn voting_power(&self) -> mt::VotingPower {
        1
    }
}

/// The participants of one height, ascending by member number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators(pub Vec<Validator>);

impl Validators {
    /// Sorted by member; duplicates keep the first.
    pub fn new(mut validators: Vec<Validator>) -> Self {
        validators.sort_by_key(|v| v.member);
        validators.dedup_by_key(|v| v.member);
        Validators(validators)
    }

    /// The key of `member`, if it is one of them.
    pub fn key(&self, member: MemberId) -> Option<&PublicKey> {
        self.0.iter().find(|v| v.member.0 == member).map(|v| &v.key)
    }

    /// The proposer of `round` at `height`: round robin over the sorted members.
    pub fn proposer(&self, height: u64, round: u32) -> MemberId {
        let n = self.0.len() as u64;
        self.0[((height.wrapping_add(round as u64)) % n) as usize].member.0
    }
}

impl mt::ValidatorSet<Ctx> for Validators {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn total_voting_power(&self) -> mt::VotingPower {
        self.0.len() as u64
    }
    fn get_by_address(&self, address: &Member) -> Option<&Validator> {
        self.0.iter().find(|v| v.member == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.0.get(index)
    }
}

/// A signature as Malachite stores it (ordered by its bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sig(pub Signature);

impl PartialOrd for Sig {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sig {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.to_bytes().cmp(&other.0.to_bytes())
    }
}

/// The participants' signature scheme (the algorithm of their node keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheme;

impl mt::SigningScheme for Scheme {
    type DecodingError = String;
    type Signature = Sig;
    type PublicKey = PublicKey;
    type PrivateKey = ();
    fn decode_signature(bytes: &[u8]) -> Result<Sig, String> {
        Signature::from_bytes(bytes).map(Sig).map_err(|e| e.to_string())
    }
    fn encode_signature(signature: &Sig) -> Vec<u8> {
        signature.0.to_bytes()
    }
}

/// The context tying the types together.
#[derive(Clone, Debug)]
pub struct Ctx;

impl mt::Context for Ctx {
    type Address = Member;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = Validators;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = Scheme;

    fn select_proposer<'a>(
        &self,
        validators: &'a Validators,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let member = validators.proposer(height.0, round.as_u32().unwrap_or(0));
        validators.0.iter().find(|v| v.member.0 == member).expect("the proposer is a validator")
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        proposer: Member,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        voter: Member,
    ) -> Vote {
        Vote { height, round, value, kind: VoteType::Prevote, voter }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        voter: Member,
    ) -> Vote {
        Vote { height, round, value, kind: VoteType::Precommit, voter }
    }
}
