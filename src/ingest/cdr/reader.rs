//! The byte-level CDR reader: encapsulation header, aligned primitives, strings and sequence
//! counts, with bounds checks that turn every malformed payload into a [`CdrError`].

use super::{CdrError, RmfRelease};

/// Size of the encapsulation header that precedes the body.
pub const HEADER_LEN: usize = 4;

/// Reads one serialized message. Positions are relative to the body (alignment origin).
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    body: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// Layout used by typed codecs whose wire form depends on the RMF release.
    pub release: RmfRelease,
}

macro_rules! read_prim {
    ($name:ident, $t:ty, $what:literal) => {
        #[inline(always)]
        pub fn $name(&mut self) -> Result<$t, CdrError> {
            const N: usize = std::mem::size_of::<$t>();
            let bytes: [u8; N] = self.aligned_array::<N>($what)?;
            Ok(if self.big_endian {
                <$t>::from_be_bytes(bytes)
            } else {
                <$t>::from_le_bytes(bytes)
            })
        }
    };
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header and positions the reader at the body.
    pub fn new(payload: &'a [u8], release: RmfRelease) -> Result<Self, CdrError> {
        if payload.len() < HEADER_LEN {
            return Err(CdrError::NoHeader { len: payload.len() });
        }
        let big_endian = match (payload[0], payload[1]) {
            (0x00, 0x01) => false,
            (0x00, 0x00) => true,
            (a, b) => return Err(CdrError::Representation(a, b)),
        };
        Ok(CdrReader {
            body: &payload[HEADER_LEN..],
            pos: 0,
            big_endian,
            release,
        })
    }

    /// Offset from the start of the serialized message (header included).
    #[inline]
    pub fn offset(&self) -> usize {
        self.pos + HEADER_LEN
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    #[inline(always)]
    fn truncated(&self, what: &'static str, need: usize) -> CdrError {
        CdrError::Truncated {
            offset: self.offset(),
            what,
            need,
            available: self.remaining(),
        }
    }

    /// Skips padding up to a multiple of `n` (1, 2, 4 or 8) from the body start.
    #[inline(always)]
    pub fn align(&mut self, n: usize) -> Result<(), CdrError> {
        let aligned = (self.pos + n - 1) & !(n - 1);
        if aligned > self.body.len() {
            return Err(self.truncated("alignment padding", aligned - self.pos));
        }
        self.pos = aligned;
        Ok(())
    }

    #[inline(always)]
    fn aligned_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CdrError> {
        let start = (self.pos + N - 1) & !(N - 1);
        match self.body.get(start..start + N) {
            Some(s) => {
                self.pos = start + N;
                // The slice has length N by construction.
                let mut out = [0u8; N];
                out.copy_from_slice(s);
                Ok(out)
            }
            None => {
                let need = (start + N).saturating_sub(self.pos);
                Err(self.truncated(what, need))
            }
        }
    }

    /// Takes `n` raw bytes (no alignment).
    #[inline(always)]
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CdrError> {
        match self.body.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.truncated(what, n)),
        }
    }

    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8, CdrError> {
        match self.body.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated("uint8", 1)),
        }
    }

    #[inline(always)]
    pub fn i8(&mut self) -> Result<i8, CdrError> {
        self.u8().map(|b| b as i8)
    }

    #[inline(always)]
    pub fn bool(&mut self) -> Result<bool, CdrError> {
        let offset = self.offset();
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(CdrError::Bool { offset, value }),
        }
    }

    read_prim!(u16, u16, "uint16");
    read_prim!(i16, i16, "int16");
    read_prim!(u32, u32, "uint32");
    read_prim!(i32, i32, "int32");
    read_prim!(u64, u64, "uint64");
    read_prim!(i64, i64, "int64");
    read_prim!(f32, f32, "float32");
    read_prim!(f64, f64, "float64");

    /// A string's bytes without the terminating NUL: uint32 length (NUL included), bytes, NUL.
    /// A length of 0 is rejected like a missing NUL: every ROS 2 middleware writes 1 for the
    /// empty string, and strictness is what makes a wrong layout fail instead of misdecoding.
    #[inline(always)]
    pub fn string_bytes(&mut self) -> Result<&'a [u8], CdrError> {
        let len = self.u32()? as usize;
        let start = self.offset();
        let s = self.bytes(len, "string")?;
        match s.split_last() {
            Some((0, text)) => Ok(text),
            _ => Err(CdrError::Unterminated { offset: start, len }),
        }
    }

    /// A sequence count, checked against the bytes left (each element takes at least
    /// `min_elem_size` bytes), so that a corrupt count never causes a huge allocation.
    #[inline(always)]
    pub fn count(&mut self, min_elem_size: usize) -> Result<usize, CdrError> {
        let offset = self.offset();
        let count = self.u32()?;
        let available = self.remaining();
        if (count as usize).saturating_mul(min_elem_size) > available {
            return Err(CdrError::Count {
                offset,
                count,
                available,
            });
        }
        Ok(count as usize)
    }

    /// Checks that only alignment padding (at most 7 zero bytes) follows the message.
    pub fn finish(&self) -> Result<(), CdrError> {
        let rest = &self.body[self.pos..];
        if rest.is_empty() {
            return Ok(());
        }
        let what = if rest.len() > 7 {
            "more than 7 bytes: the message layout does not match"
        } else if rest.iter().any(|&b| b != 0) {
            "non-zero padding: the message layout does not match"
        } else {
            return Ok(());
        };
        Err(CdrError::Trailing {
            offset: self.offset(),
            len: rest.len(),
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> CdrReader<'_> {
        CdrReader::new(bytes, RmfRelease::Jazzy).unwrap()
    }

    #[test]
    fn aligns_from_the_body_start() {
        // u8 at 0, pad to 4, u32 at 4, u64 at 8 (aligned to 8 from the body, not the buffer).
        let bytes = [0, 1, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        let mut r = reader(&bytes);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 1);
        assert_eq!(r.u64().unwrap(), 2);
        r.finish().unwrap();
    }

    #[test]
    fn big_endian() {
        let bytes = [0, 0, 0, 0, 0, 0, 1, 2];
        assert_eq!(reader(&bytes).u32().unwrap(), 0x0102);
    }

    #[test]
    fn rejects_other_representations() {
        let err = CdrReader::new(&[0, 3, 0, 0], RmfRelease::Jazzy).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported encapsulation representation 0x00 0x03 (expected CDR: 0x00 0x01 or 0x00 0x00)"
        );
        assert_eq!(
            CdrReader::new(&[0, 1], RmfRelease::Jazzy).unwrap_err(),
            CdrError::NoHeader { len: 2 }
        );
    }

    #[test]
    fn strings_are_nul_counted() {
        let bytes = [0, 1, 0, 0, 3, 0, 0, 0, b'h', b'i', 0, 0];
        let mut r = reader(&bytes);
        assert_eq!(r.string_bytes().unwrap(), b"hi");
        r.finish().unwrap();
        let bad = [0, 1, 0, 0, 2, 0, 0, 0, b'h', b'i'];
        assert_eq!(
            reader(&bad).string_bytes().unwrap_err(),
            CdrError::Unterminated { offset: 8, len: 2 }
        );
    }

    #[test]
    fn truncation_and_counts_report_offsets() {
        let bytes = [0, 1, 0, 0, 1, 0];
        assert_eq!(
            reader(&bytes).u32().unwrap_err().to_string(),
            "offset 4: uint32 needs 4 bytes, only 2 left"
        );
        let bytes = [0, 1, 0, 0, 255, 255, 255, 255];
        assert!(matches!(
            reader(&bytes).count(1),
            Err(CdrError::Count {
                offset: 4,
                count: u32::MAX,
                available: 0
            })
        ));
    }

    #[test]
    fn trailing_padding() {
        let ok = [0, 1, 0, 0, 1, 0, 0, 0];
        let mut r = reader(&ok);
        r.u8().unwrap();
        r.finish().unwrap();
        let bad = [0, 1, 0, 0, 1, 0, 9, 0];
        let mut r = reader(&bad);
        r.u8().unwrap();
        assert!(matches!(
            r.finish(),
            Err(CdrError::Trailing {
                offset: 5,
                len: 3,
                ..
            })
        ));
    }
}
