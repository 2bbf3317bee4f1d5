//! The one loop every device runs over a queue: take the next chain the driver made available,
//! serve it, put it on the used ring with the bytes written into it.
use super::DeviceError;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

/// What serving a chain came to.
pub enum Served {
    /// Done: this many bytes were written into the chain's writable buffers.
    Used(u32),
    /// Nothing to put in it now (no input waiting): the chain stays available for later, and
    /// the loop stops.
    NotNow,
}

/// Serves the available chains of `queue` with `serve` until there are none or `serve` says
/// [`Served::NotNow`]. Returns whether any chain was used (the driver may need an interrupt).
pub fn serve_chains(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    mut serve: impl FnMut(DescriptorChain<&GuestMemoryMmap>) -> Result<Served, DeviceError>,
) -> Result<bool, DeviceError> {
    let mut used = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        match serve(chain)? {
            Served::Used(written) => {
                queue.add_used(mem, head, written)?;
                used = true;
            }
            Served::NotNow => {
                queue.go_to_previous_position();
                break;
            }
        }
    }
    Ok(used)
}
