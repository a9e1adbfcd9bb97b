//! The byte-level CDR writer (little endian), used by the trace generator and by tests. It pads
//! the payload to a multiple of 4 bytes as ROS 2 middlewares do.

use super::RmfRelease;
use super::reader::HEADER_LEN;

#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
    /// Layout used by typed codecs whose wire form depends on the RMF release.
    pub release: RmfRelease,
}

macro_rules! write_prim {
    ($name:ident, $t:ty) => {
        #[inline(always)]
        pub fn $name(&mut self, v: $t) {
            self.align(std::mem::size_of::<$t>());
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    };
}

impl CdrWriter {
    pub fn new(release: RmfRelease) -> Self {
        Self::with_buffer(Vec::new(), release)
    }

    /// Reuses `buf` (cleared) to avoid an allocation per message.
    pub fn with_buffer(mut buf: Vec<u8>, release: RmfRelease) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0x00, 0x01, 0x00, 0x00]);
        CdrWriter { buf, release }
    }

    #[inline(always)]
    pub fn align(&mut self, n: usize) {
        let body = self.buf.len() - HEADER_LEN;
        let pad = ((body + n - 1) & !(n - 1)) - body;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    #[inline(always)]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    #[inline(always)]
    pub fn i8(&mut self, v: i8) {
        self.buf.push(v as u8);
    }

    #[inline(always)]
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    write_prim!(u16, u16);
    write_prim!(i16, i16);
    write_prim!(u32, u32);
    write_prim!(i32, i32);
    write_prim!(u64, u64);
    write_prim!(i64, i64);
    write_prim!(f32, f32);
    write_prim!(f64, f64);

    #[inline(always)]
    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32 + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// Raw bytes, no alignment.
    #[inline(always)]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// The finished payload, padded to a multiple of 4.
    pub fn finish(mut self) -> Vec<u8> {
        self.align(4);
        self.buf
    }
}
