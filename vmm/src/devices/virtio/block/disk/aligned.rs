//! A byte buffer aligned for O_DIRECT (to a page, which covers every device's alignment).
use std::alloc::{alloc_zeroed, dealloc, Layout};

/// The alignment of every [`AlignedBuf`].
pub const ALIGN: usize = 4096;

pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Option<Layout>,
}

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub fn new() -> Self {
        Self {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            layout: None,
        }
    }

    /// The first `len` bytes, grown (never shrunk) to hold them.
    pub fn get(&mut self, len: usize) -> std::io::Result<&mut [u8]> {
        let have = self.layout.map_or(0, |l| l.size());
        if have < len {
            let size = len.next_multiple_of(ALIGN);
            let layout = Layout::from_size_align(size, ALIGN)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
            // SAFETY: the layout has a non-zero size (len > have >= 0).
            let ptr = unsafe { alloc_zeroed(layout) };
            if ptr.is_null() {
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            self.release();
            self.ptr = ptr;
            self.layout = Some(layout);
        }
        // SAFETY: `ptr` points to at least `len` initialised (zeroed, then written) bytes that
        // this value owns, or is dangling with `len` 0.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr, len) })
    }

    fn release(&mut self) {
        if let Some(layout) = self.layout.take() {
            // SAFETY: `ptr` came from `alloc_zeroed` with this layout.
            unsafe { dealloc(self.ptr, layout) };
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_and_grow() {
        let mut b = AlignedBuf::new();
        assert_eq!(b.get(0).unwrap().len(), 0);
        let p = b.get(100).unwrap();
        assert_eq!(p.as_ptr() as usize % ALIGN, 0);
        p[99] = 7;
        assert_eq!(b.get(8192).unwrap().as_ptr() as usize % ALIGN, 0);
    }
}
