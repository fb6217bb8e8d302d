//! Canonical encoding primitives.
//!
//! Everything that is hashed or signed is encoded with these few rules, so that a second
//! implementation can recompute every hash (`docs/FORMAT.md` §5): fixed-width big-endian
//! integers; byte strings prefixed by their length as u16 or u32; sequences prefixed by
//! their count as u32; enums by a u8 tag. Decoding is strict: every length is bounded,
//! trailing bytes are an error, and there is exactly one encoding per value.

/// Why bytes could not be decoded. Untrusted input ends here, never in a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside `what`.
    #[error("truncated input while reading {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// A length or count exceeds its limit.
    #[error("{what} too long: {len} > {max}")]
    TooLong {
        /// The field being read.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The limit (see `limits.rs`).
        max: usize,
    },
    /// An enum tag or format version this build does not know.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// The enum being read.
        what: &'static str,
        /// The tag found.
        tag: u64,
    },
    /// Bytes left over after a complete value.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The value that was decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A field decoded but its value is invalid (bad key, bad UTF-8, out of range).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Appends canonical encodings to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buffer: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Writer { buffer: Vec::with_capacity(capacity) }
    }

    /// A writer that appends to `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Writer { buffer: bytes }
    }

    /// Room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.buffer.reserve(additional);
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }

    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.buffer.push(value);
        self
    }

    /// Big-endian u16.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.buffer.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian u32.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.buffer.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian u64.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.buffer.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Big-endian two's-complement i64.
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.buffer.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Bytes as they are, no length (for fixed-width fields).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buffer.extend_from_slice(bytes);
        self
    }

    /// u16 length, then the bytes. Callers check the limit before encoding.
    pub fn bytes16(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).expect("length checked against its limit");
        self.u16(len).raw(bytes)
    }

    /// u32 length, then the bytes.
    pub fn bytes32(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).expect("length checked against its limit");
        self.u32(len).raw(bytes)
    }
}

/// Reads canonical encodings from a slice.
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Fails unless every byte was read.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { what, count: self.input.len() })
        }
    }

    /// The next `len` bytes.
    pub fn raw(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < len {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Ok(head)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.raw(N, what)?;
        Ok(bytes.try_into().expect("length checked"))
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Big-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// u16 length (at most `max`), then the bytes.
    pub fn bytes16(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        self.raw(len, what)
    }

    /// u32 length (at most `max`), then the bytes.
    pub fn bytes32(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        self.raw(len, what)
    }

    /// A u32 count (at most `max`).
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let count = self.u32(what)? as usize;
        if count > max {
            return Err(DecodeError::TooLong { what, len: count, max });
        }
        Ok(count)
    }
}

/// `tag ‖ left ‖ right` in a fixed array: the input of a tree node's hash, built without
/// an allocation (there is one per hashed node). `N` must be `tag.len() + 64`.
pub(crate) fn pair_message<const N: usize>(
    tag: &[u8],
    left: &[u8; 32],
    right: &[u8; 32],
) -> [u8; N] {
    assert_eq!(N, tag.len() + 64, "a tagged pair is the tag and two 32-byte hashes");
    let mut message = [0u8; N];
    message[..tag.len()].copy_from_slice(tag);
    message[tag.len()..tag.len() + 32].copy_from_slice(left);
    message[tag.len() + 32..].copy_from_slice(right);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut writer = Writer::default();
        writer.u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0f).i64(-1);
        let bytes = writer.into_bytes();
        assert_eq!(&bytes[..15], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(&bytes[15..], &[0xff; 8]);
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u8("a"), Ok(1));
        assert_eq!(reader.u16("b"), Ok(0x0203));
        assert_eq!(reader.u32("c"), Ok(0x04050607));
        assert_eq!(reader.u64("d"), Ok(0x08090a0b0c0d0e0f));
        assert_eq!(reader.i64("e"), Ok(-1));
        reader.finish("all").unwrap();
    }

    #[test]
    fn limits_and_truncation_are_errors() {
        let mut writer = Writer::default();
        writer.bytes16(b"hello");
        let bytes = writer.into_bytes();
        assert!(matches!(Reader::new(&bytes).bytes16(4, "x"), Err(DecodeError::TooLong { .. })));
        assert!(matches!(
            Reader::new(&bytes[..4]).bytes16(10, "x"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut reader = Reader::new(&bytes);
        reader.u8("x").unwrap();
        assert!(matches!(reader.finish("x"), Err(DecodeError::TrailingBytes { count: 6, .. })));
    }
}
