//! The VM generation ID (Microsoft's "Virtual Machine Generation ID", which Linux's vmgenid
//! driver reads): 16 bytes at a fixed MMIO address ([`VMGENID_ADDR`]) the DSDT's `VGEN` device
//! names. A VM restored from a snapshot gets a new one and the GED tells the guest (`Notify
//! (VGEN, 0x80)`), so the guest can reseed its RNG: two clones of one state do not go on with
//! the same random numbers. A reset keeps it, as the specification says.
use super::ged::Ged;
use crate::bus::BusDevice;
use crate::snapshot::codec::{self, StateError};
use minnow_acpi::layout::GED_EVENT_VMGENID;
pub use minnow_acpi::layout::{VMGENID_ADDR, VMGENID_LEN};
use std::sync::{Arc, Mutex};

pub struct VmGenId {
    guid: [u8; 16],
    ged: Arc<Mutex<Ged>>,
    /// Restored with a new GUID: the guest is told once the whole machine is back.
    renewed: bool,
}

/// 16 bytes from the kernel's random source.
pub fn random_guid() -> [u8; 16] {
    let mut guid = [0u8; 16];
    match crate::devices::virtio::rng::fill_random(&mut guid) {
        Ok(()) => guid,
        // getrandom(2) cannot fail otherwise on a supported kernel; a fixed pattern still
        // differs from whatever the VM had.
        Err(_) => [0xA5; 16],
    }
}

impl VmGenId {
    /// `guid` (`-device vmgenid,guid=`), or a random one; `ged` signals a new one.
    pub fn new(guid: Option<[u8; 16]>, ged: Arc<Mutex<Ged>>) -> Self {
        Self {
            guid: guid.unwrap_or_else(random_guid),
            ged,
            renewed: false,
        }
    }

    pub fn guid(&self) -> [u8; 16] {
        self.guid
    }
}

/// `guid` as a UUID's text, the first three fields stored little-endian (as the specification
/// and QEMU store them).
pub fn guid_text(guid: &[u8; 16]) -> String {
    let mut b = *guid;
    b[..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..].concat()
    )
}

impl BusDevice for VmGenId {
    /// The GUID's bytes; past it, zeros.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| self.guid.get(o.checked_add(i)?))
                .copied()
                .unwrap_or(0);
        }
    }

    /// Read-only: the guest cannot change its generation.
    fn write(&mut self, _offset: u64, _data: &[u8]) {}

    fn kind(&self) -> &'static str {
        "vmgenid"
    }

    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        codec::encode("vmgenid", &self.guid)
    }

    /// A restored VM is a new generation: a fresh GUID; the guest is told in
    /// [`BusDevice::after_restore`].
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let saved: [u8; 16] = codec::decode("vmgenid", bytes)?;
        self.guid = loop {
            let fresh = random_guid();
            if fresh != saved {
                break fresh;
            }
        };
        self.renewed = true;
        Ok(())
    }

    fn after_restore(&mut self) {
        if std::mem::take(&mut self.renewed) {
            self.ged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .signal(GED_EVENT_VMGENID);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitSignal;
    use crate::irq::IrqLine;

    #[test]
    fn the_guid_reads_back_as_the_uuid_it_was_given() {
        let text = "324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87";
        let args = ["-device".to_string(), format!("vmgenid,guid={text}")];
        let c = crate::config::parse(args)
            .expect("parses")
            .config()
            .expect("a config");
        let guid = c.vmgenid_guid.expect("a GUID");
        assert_eq!(guid[..4], [0xaf, 0x6e, 0x4e, 0x32], "little-endian first field");
        assert_eq!(guid_text(&guid), text);
    }

    #[test]
    fn a_restore_is_a_new_generation_the_guest_hears_of() {
        let irq = IrqLine::new(9).unwrap();
        let probe = irq.try_clone().unwrap();
        let ged = Arc::new(Mutex::new(Ged::new(ExitSignal::default(), irq)));
        let mut dev = VmGenId::new(Some([7; 16]), ged.clone());
        let mut read = [0u8; 8];
        dev.read(8, &mut read);
        assert_eq!(read, [7; 8]);
        dev.write(0, &[1; 4]);
        let saved = dev.save_state().unwrap();
        assert!(probe.event().read().is_err(), "no event yet");
        dev.restore_state(&saved).unwrap();
        assert_ne!(dev.guid(), [7; 16]);
        assert!(
            probe.event().read().is_err(),
            "not before the whole machine is back"
        );
        dev.after_restore();
        assert!(probe.event().read().is_ok(), "the GED's interrupt");
        let mut sel = [0u8; 4];
        ged.lock().unwrap().read(0, &mut sel);
        assert_eq!(u32::from_le_bytes(sel), GED_EVENT_VMGENID);
        let mut past = [0xFFu8; 4];
        dev.read(16, &mut past);
        assert_eq!(past, [0; 4]);
    }
}
