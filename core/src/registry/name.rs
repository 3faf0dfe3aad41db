//! The small-string type that holds a user id in its entry: inline up to 22 bytes, so
//! most entries allocate nothing.

/// User ids up to this many bytes are stored inside the user entry: most ids (numbers,
/// short names) cost no allocation, so creating and dropping an entry is cheap.
pub(super) const INLINE_NAME: usize = 22;

/// A user id, inline when short (24 bytes either way).
#[derive(Debug, Clone)]
pub(super) enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

/// `dst[..src.len()] = src` for up to `INLINE_NAME` bytes, in at most three fixed-size
/// moves that overlap where the length needs it, each an array assignment: the .wasm
/// (opt-level "s") does a slice's `copy_from_slice` with a call that ends in a
/// `memory.copy`, which V8 (Node 20) runs as a call out to C++, whatever the length.
fn copy_short(dst: &mut [u8; INLINE_NAME], src: &[u8]) {
    fn at<const N: usize>(dst: &mut [u8], src: &[u8], i: usize) {
        let from = src.get(i..i + N).and_then(|s| <&[u8; N]>::try_from(s).ok());
        let to = dst
            .get_mut(i..i + N)
            .and_then(|d| <&mut [u8; N]>::try_from(d).ok());
        if let (Some(from), Some(to)) = (from, to) {
            *to = *from;
        }
    }
    let n = src.len();
    if n >= 8 {
        at::<8>(dst, src, 0);
        if n > 16 {
            at::<8>(dst, src, 8);
        }
        at::<8>(dst, src, n - 8);
    } else if n >= 4 {
        at::<4>(dst, src, 0);
        at::<4>(dst, src, n - 4);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

impl Name {
    pub(super) const EMPTY: Name = Name::Inline {
        len: 0,
        bytes: [0; INLINE_NAME],
    };

    #[cfg(test)]
    pub(super) fn new(s: &str) -> Self {
        let mut name = Name::EMPTY;
        name.set(s);
        name
    }

    /// Sets the name in place: building an inline name and then moving it copies the
    /// bytes twice, and reading them back right after the byte-wise copy stalls on
    /// store forwarding (a quarter of a native acquire for a new user).
    pub(super) fn set(&mut self, s: &str) {
        match self {
            Name::Inline { len, bytes } if s.len() <= INLINE_NAME => {
                copy_short(bytes, s.as_bytes());
                *len = s.len() as u8;
            }
            _ if s.len() <= INLINE_NAME => {
                *self = Name::EMPTY;
                self.set(s);
            }
            _ => *self = Name::Heap(s.into()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE_NAME)],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // Always valid: copied whole from a `&str`.
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Name::Heap(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_every_inline_length_copy_whole() {
        let mut name = Name::new(&"#".repeat(INLINE_NAME));
        for len in (0..=INLINE_NAME + 1).chain((0..=INLINE_NAME).rev()) {
            let s: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
            name.set(&s);
            assert_eq!(name.as_str(), s);
        }
    }

    #[test]
    fn names_inline_up_to_the_limit_and_boxed_beyond() {
        for len in [0, 1, INLINE_NAME, INLINE_NAME + 1, 256] {
            let s = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let name = Name::new(&s);
            assert_eq!(name.as_str(), s);
            assert_eq!(name.as_bytes(), s.as_bytes());
            assert_eq!(matches!(name, Name::Inline { .. }), s.len() <= INLINE_NAME);
        }
        let mut name = Name::new(&"x".repeat(40));
        name.set("short");
        assert_eq!(name.as_str(), "short");
        name.set("abc");
        assert_eq!(name.as_str(), "abc");
        name.set(&"y".repeat(23));
        assert_eq!(name.as_str(), "y".repeat(23));
    }
}
